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


def test_ports_published(host):
    ports = inspect(host)["HostConfig"]["PortBindings"]
    assert ports["8500/tcp"][0]["HostPort"] == "8500"
    assert ports["8501/tcp"][0]["HostPort"] == "8501"


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


def test_no_staging_directory_left(host):
    assert host.check_output(f"ls -A {MODELS}").split() == ["1", "2"]


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


def test_smoke_test_passes_on_version_2(host):
    manifest = EXPORT / "2" / "tfs_fleet_manifest.json"
    grpc = rendered(host, "tfserving_verify_grpc_endpoint")
    rest = rendered(host, "tfserving_verify_rest_endpoint")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "smoke_test.py"), "--manifest", str(manifest),
         "--grpc", grpc, "--rest", rest, "--version", "2", "--wait", "60", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert report["hosts"][0]["ok"] is True
    assert report["hosts"][0]["version"] == 2
