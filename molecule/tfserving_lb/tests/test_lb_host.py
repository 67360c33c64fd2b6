"""Verifier of molecule/tfserving_lb: HAProxy on the LB host (over SSH with sudo), the health
check against the serving host's model status, and Predict through the front door."""

import os
import subprocess
import sys
import time
from pathlib import Path

# The HA pair (molecule.yml): lb on Debian 13, lb2 on Debian 12, each with its front door.
FRONT_DOORS = {"tfs-fleet-mlb-lb": (28530, 28630), "tfs-fleet-mlb-lb2": (28540, 28640)}
testinfra_hosts = list(FRONT_DOORS)
SERVING = "tfs-fleet-mlb-1"
REPO = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
sys.path.insert(0, str(REPO / "src"))
SOCKET = "/run/haproxy/admin.sock"
STAT = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);s.sendall(b'show stat\\n')\n"
    "out=b''\nwhile True:\n    d=s.recv(65536)\n    if not d: break\n    out+=d\n"
    "sys.stdout.write(out.decode())\n"
)


def status(host):
    text = host.check_output(f'python3 -c "{STAT}" {SOCKET}')
    lines = text.lstrip("# ").splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, ln.split(","), strict=False)) for ln in lines[1:] if ln]
    return {(r["pxname"], r["svname"]): r for r in rows}


def wait(host, want, seconds):
    deadline = time.monotonic() + seconds
    row = {}
    while time.monotonic() < deadline:
        row = status(host)[("tfs_rest", SERVING)]
        if row["status"] == want:
            return row
        time.sleep(1)
    return row


def test_haproxy_from_the_distribution_running_and_enabled(host):
    """Each LB host's own release's HAProxy: 2.6 from bookworm, 3.0 from trixie."""
    release = host.system_info.release.split(".")[0]
    assert (host.backend.get_hostname(), release) in {
        ("tfs-fleet-mlb-lb", "13"),
        ("tfs-fleet-mlb-lb2", "12"),
    }
    assert host.package("haproxy").version.startswith({"12": "2.6.", "13": "3.0."}[release])
    assert host.package("haproxy").is_installed
    service = host.service("haproxy")
    assert service.is_running and service.is_enabled
    assert host.run("haproxy -c -q -f /etc/haproxy/haproxy.cfg").rc == 0


def test_grpc_is_http2_both_sides_and_tracks_rest(host):
    cfg = host.file("/etc/haproxy/haproxy.cfg").content_string
    assert "bind 0.0.0.0:8500 proto h2" in cfg
    assert f"server {SERVING} {SERVING}:8500 proto h2 track tfs_rest/{SERVING}" in cfg
    assert "http-check send meth GET uri /v1/models/half_plus_two ver HTTP/1.1" in cfg
    assert "hard-stop-after" in cfg and "master-worker" in cfg


def test_runtime_socket_and_stats_are_local(host):
    sock = host.file(SOCKET)
    assert sock.is_socket and sock.mode == 0o660 and sock.group == "haproxy"
    assert host.socket("tcp://127.0.0.1:8404").is_listening
    assert not host.socket("tcp://0.0.0.0:8404").is_listening
    metrics = host.check_output("curl -sf http://127.0.0.1:8404/metrics")
    assert f'haproxy_server_status{{proxy="tfs_rest",server="{SERVING}",state="UP"}} 1' in metrics


def test_metrics_only_listener_for_the_monitoring_server(host):
    """tfserving_lb_metrics_port (8405, tfserving_monitoring's job "haproxy"): the metrics on
    every address, and neither the stats page nor anything else."""
    assert host.socket("tcp://0.0.0.0:8405").is_listening
    metrics = host.check_output("curl -sf http://127.0.0.1:8405/metrics")
    assert f'haproxy_server_status{{proxy="tfs_rest",server="{SERVING}",state="UP"}} 1' in metrics
    for path in ("/stats", "/"):
        code = host.check_output(
            f"curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:8405{path}"
        )
        assert code == "404", (path, code)


def test_a_server_without_its_model_version_is_down_and_up_with_it(host):
    """The served version moved out of the model directory: TF Serving (the stand-in) unloads
    it, the check sees no AVAILABLE version, HAProxy marks the server DOWN (the gRPC one too);
    moved back, it is UP again."""
    assert wait(host, "UP", 120)["status"] == "UP"
    mv = ["docker", "exec", SERVING, "mv", "-T"]
    subprocess.run(
        [*mv, "/srv/tfserving/models/half_plus_two/1", "/srv/tfserving/v1-aside"], check=True
    )
    try:
        row = wait(host, "DOWN", 60)
        assert row["status"] == "DOWN", row
        assert status(host)[("tfs_grpc", SERVING)]["status"] == "DOWN"
    finally:
        subprocess.run(
            [*mv, "/srv/tfserving/v1-aside", "/srv/tfserving/models/half_plus_two/1"], check=True
        )
    assert wait(host, "UP", 300)["status"] == "UP"


def test_predict_through_the_front_door(host):
    import numpy as np

    from tfs_fleet.client import GrpcClient, RestClient

    assert wait(host, "UP", 300)["status"] == "UP"
    grpc, rest_port = FRONT_DOORS[host.backend.get_hostname()]
    with GrpcClient(f"127.0.0.1:{grpc}", timeout_s=10) as client:
        out = client.predict("half_plus_two", {"x": np.array([[1.0]], dtype=np.float32)})
    assert float(next(iter(out.outputs.values())).reshape(-1)[0]) == 2.5
    rest = RestClient(f"127.0.0.1:{rest_port}", timeout_s=10)
    assert float(rest.predict_rows("half_plus_two", [[3.0]]).reshape(-1)[0]) == 3.5
    assert [(s.version, s.state) for s in rest.status("half_plus_two")] == [(1, "AVAILABLE")]
