"""Verifier shared by the serving scenarios (molecule/tfserving: one host; molecule/site: the
whole site.yml on a sandbox fleet): facts on each host, and the smoke test from the controller
against that host's published ports."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

MODELS = "/srv/tfserving/models/half_plus_two"
EXPORT = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "models" / "half_plus_two"
REPO = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "")
# molecule/tfserving converges with mutual TLS and a test CA (converge.yml); molecule/site
# with the sandbox's settings (plain gRPC).
TLS_DIR = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "tls"
TLS = SCENARIO == "tfserving"


def inspect(host, name="tfserving"):
    return json.loads(host.check_output(f"docker inspect {name}"))[0]


def test_container_running_with_restart_policy_and_log_rotation(host):
    info = inspect(host)
    assert info["State"]["Running"] is True
    assert info["Config"]["Image"] == "tfs-fleet/serving-standin:latest"
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert info["HostConfig"]["LogConfig"]["Config"] == {"max-file": "3", "max-size": "50m"}
    assert "MODEL_NAME=half_plus_two" in info["Config"]["Env"]


def test_models_mounted_read_only(host):
    mounts = {m["Destination"]: m for m in inspect(host)["Mounts"]}
    assert mounts["/models"]["Source"] == "/srv/tfserving/models"
    assert mounts["/models"]["RW"] is False


def test_prometheus_metrics_on_the_rest_port(host):
    """TF Serving's metrics are on by default: the monitoring config asks for Prometheus at
    TF Serving's own path, and the server answers there inside the host (REST port 8501)."""
    assert "--monitoring_config_file=/etc/tfs-fleet/monitoring.config" in inspect(host)["Args"]
    config = host.file("/etc/tfs-fleet/monitoring.config").content_string
    assert "enable: true" in config and 'path: "/monitoring/prometheus/metrics"' in config
    bound = inspect(host)["HostConfig"]["PortBindings"]["8501/tcp"][0]["HostIp"]
    address = "127.0.0.1" if bound in ("", "0.0.0.0") else bound
    page = host.check_output(
        f"curl -sf --max-time 10 http://{address}:8501/monitoring/prometheus/metrics"
    )
    assert "# TYPE :tensorflow:serving:request_count counter" in page
    assert "# TYPE :tensorflow:serving:request_latency histogram" in page


def test_ports_published(host):
    ports = inspect(host)["HostConfig"]["PortBindings"]
    assert ports["8500/tcp"][0]["HostPort"] == "8500"
    assert ports["8501/tcp"][0]["HostPort"] == "8501"


def test_ports_bound_to_the_asked_address(host):
    """tfserving scenario: the host's own address (not 0.0.0.0, not loopback, which the
    published test ports could not reach); site: the sandbox's explicit 0.0.0.0."""
    ports = inspect(host)["HostConfig"]["PortBindings"]
    if SCENARIO == "tfserving":
        facts = host.ansible("ansible.builtin.setup", "filter=ansible_default_ipv4", check=False)
        expected = facts["ansible_facts"]["ansible_default_ipv4"]["address"]
        assert expected not in ("0.0.0.0", "127.0.0.1", "")
    else:
        expected = rendered(host, "tfserving_bind_address")
    assert ports["8500/tcp"][0]["HostIp"] == expected
    assert ports["8501/tcp"][0]["HostIp"] == expected


def test_container_hardening_as_docker_reports_it(host):
    config = inspect(host)["HostConfig"]
    assert config["SecurityOpt"] == ["no-new-privileges"]
    assert config["CapDrop"] == ["ALL"]
    assert not config["CapAdd"]
    assert config["ReadonlyRootfs"] is True
    assert config["Privileged"] is False
    assert list(config["Tmpfs"]) == ["/tmp"]
    # The server really runs that way: / is read-only, /tmp is writable, no capability left.
    assert host.run("docker exec tfserving touch /probe").rc != 0
    assert host.run("docker exec tfserving touch /tmp/probe").rc == 0
    status = host.check_output("docker exec tfserving cat /proc/1/status")
    caps = {
        line.split(":")[0]: line.split()[1]
        for line in status.splitlines()
        if line.startswith("Cap")
    }
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == "0000000000000000"
    assert "NoNewPrivs:\t1" in status


def test_model_files_match_the_manifest(host):
    for version in ("1", "2"):
        manifest = json.loads((EXPORT / version / "tfs_fleet_manifest.json").read_text())
        for rel, entry in manifest["files"].items():
            remote = host.file(f"{MODELS}/{version}/{rel}")
            assert remote.exists, rel
            assert remote.sha256sum == entry["sha256"], rel
        # The host's manifest is the controller's, byte for byte.
        local_manifest = (EXPORT / version / "tfs_fleet_manifest.json").read_bytes()
        local = hashlib.sha256(local_manifest).hexdigest()
        assert host.file(f"{MODELS}/{version}/tfs_fleet_manifest.json").sha256sum == local


def test_no_staging_directory_left_and_each_version_has_its_publish_record(host):
    names = host.check_output(f"ls -A {MODELS}").split()
    records = sorted(n for n in names if n.startswith(".tfs-fleet-published-"))
    assert sorted(set(names) - set(records)) == ["1", "2"], names
    assert records == [".tfs-fleet-published-1.json", ".tfs-fleet-published-2.json"], names
    # The record holds the controller's sha256 of every file of the version (the manifest's).
    record = json.loads(host.file(f"{MODELS}/.tfs-fleet-published-2.json").content_string)
    manifest = json.loads((EXPORT / "2" / "tfs_fleet_manifest.json").read_text())
    assert record["repairs"] == 0, record
    for path, entry in manifest["files"].items():
        assert record["files"][path]["sha256"] == entry["sha256"], path


def test_model_update_without_restart_and_without_retransfer(host):
    before = json.loads(host.file("/root/before-update.json").content_string)
    assert inspect(host)["State"]["StartedAt"] == before["started"]
    assert int(host.check_output(f"stat -c %i {MODELS}/1")) == before["v1_inode"]


def test_state_file_records_current_and_previous(host):
    state = json.loads(host.file("/etc/tfs-fleet/serving-state.json").content_string)
    assert state["current"]["models"] == {"half_plus_two": [1, 2]}
    assert state["previous"]["models"] == {"half_plus_two": [1]}
    assert state["current"]["image_id"].startswith("sha256:")


def rendered(host, name):
    """A variable as Ansible renders it for this host (templates resolved)."""
    return host.ansible("ansible.builtin.debug", f"var={name}", check=False)[name]


def smoke(host, *tls_flags, wait="60"):
    manifest = EXPORT / "2" / "tfs_fleet_manifest.json"
    grpc = rendered(host, "tfserving_verify_grpc_endpoint")
    rest = rendered(host, "tfserving_verify_rest_endpoint")
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "smoke_test.py"), "--manifest", str(manifest),
         "--grpc", grpc, "--rest", rest, "--version", "2", "--wait", wait, "--json", *tls_flags],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


MUTUAL_TLS = [
    "--tls-ca", str(TLS_DIR / "ca.pem"), "--tls-cert", str(TLS_DIR / "client.pem"),
    "--tls-key", str(TLS_DIR / "client.key"), "--tls-server-name", "localhost",
]  # fmt: skip


def test_smoke_test_passes_on_version_2(host):
    """From the controller, through the published ports (tfserving scenario: mutual TLS)."""
    result = smoke(host, *(MUTUAL_TLS if TLS else []))
    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert report["hosts"][0]["ok"] is True
    assert report["hosts"][0]["version"] == 2


def test_tls_is_required_and_mutual(host):
    if not TLS:
        # molecule/site serves plain gRPC (the sandbox's settings); TLS is this other scenario's.
        # The role default (False) applies: the inventory does not set it (ansible-core 2.19
        # renders an undefined variable as "<< error 1 - '...' is undefined >>", older ones as
        # "VARIABLE IS NOT DEFINED!").
        value = rendered(host, "tfserving_tls_enabled")
        assert value is False or "is undefined" in str(value) or "NOT DEFINED" in str(value), value
        assert "--ssl_config_file=/etc/tfs-fleet/ssl.config" not in inspect(host)["Args"]
        return
    args = inspect(host)["Args"]
    assert "--ssl_config_file=/etc/tfs-fleet/ssl.config" in args
    ssl = host.file("/etc/tfs-fleet/ssl.config")
    assert ssl.mode == 0o600 and ssl.user == "root"
    # Plain gRPC and TLS without a client certificate are both refused.
    plain = smoke(host, wait="3")
    assert (
        plain.returncode == 1 and json.loads(plain.stdout)["hosts"][0]["failed_check"] == "status"
    )
    no_client_cert = smoke(
        host, "--tls-ca", str(TLS_DIR / "ca.pem"), "--tls-server-name", "localhost", wait="3"
    )
    assert no_client_cert.returncode == 1
    assert json.loads(no_client_cert.stdout)["hosts"][0]["failed_check"] == "status"
