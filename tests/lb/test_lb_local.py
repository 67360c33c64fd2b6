"""The load balancer role's template, health check, runtime-API module and reload on a real
HAProxy (this machine's distribution package) in front of two in-process servers that run the
exported half_plus_two with TensorFlow (tests/toolkit's stand-in). No Docker."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from ansible_collections.tfs_fleet.common.plugins.module_utils import haproxy_runtime as hr
from lbharness import Lb, module, render, running_lb, server_entry
from toolkit_helpers import export_demo
from toolkit_serving_server import Serving, load_model

from tfs_fleet.client import GrpcClient, RestClient, RetryPolicy
from tfs_fleet.load import Load, LoadSpec

# A real HAProxy in front of in-process servers: seconds per test (pytest-docker stage).
pytestmark = pytest.mark.slow

MODEL = "half_plus_two"
REST, GRPC = "tfs_rest", "tfs_grpc"


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Serving]]:
    base = tmp_path_factory.mktemp("lb-export")
    export_demo(base)
    servers = [Serving({MODEL: load_model(MODEL, base / MODEL)}).start() for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


def entries(backends: list[Serving]) -> list[dict]:
    return [server_entry(f"h{n}", s.grpc_target, s.rest_target) for n, s in enumerate(backends, 1)]


@pytest.fixture
def lb(tmp_path: Path, backends: list[Serving]) -> Iterator[Lb]:
    with running_lb(tmp_path, entries(backends), [MODEL]) as balancer:
        for name in ("h1", "h2"):
            assert balancer.wait_status(REST, name, "UP") == "UP", balancer.stat()
        yield balancer


def stot(lb: Lb, backend: str, server: str) -> int:
    return int(lb.stat()[(backend, server)]["stot"])


def test_predict_through_both_front_doors_balanced_per_request(lb: Lb) -> None:
    """One gRPC channel (one HTTP/2 connection): its requests reach both servers."""
    before = {s: stot(lb, GRPC, s) for s in ("h1", "h2")}
    with GrpcClient(lb.grpc, timeout_s=5, retry=RetryPolicy(attempts=1)) as client:
        for _ in range(20):
            out = client.predict(MODEL, {"x": np.array([[1.0]], dtype=np.float32)})
            assert float(next(iter(out.outputs.values())).reshape(-1)[0]) == 2.5
    after = {s: stot(lb, GRPC, s) for s in ("h1", "h2")}
    assert all(after[s] - before[s] >= 5 for s in after), (before, after)
    rest = RestClient(lb.rest, timeout_s=5)
    assert [float(rest.predict_rows(MODEL, [[3.0]]).reshape(-1)[0]) for _ in range(4)] == [3.5] * 4


def test_metrics_listener_serves_only_metrics(lb: Lb) -> None:
    """The listener the monitoring server scrapes: HAProxy's Prometheus exporter with the
    servers' state, and nothing else (no stats page, no admin)."""
    with urllib.request.urlopen(f"http://{lb.metrics}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert f'haproxy_server_status{{proxy="{REST}",server="h1"' in text, text[:500]
    for path in ("/stats", "/"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://{lb.metrics}{path}", timeout=5)
        assert refused.value.code == 404


def test_a_server_whose_model_is_not_available_is_down(lb: Lb, backends: list[Serving]) -> None:
    """The check asks for the model status: LOADING is not enough; the gRPC server tracks it."""
    backends[1].set_state(MODEL, 1, "LOADING")
    try:
        assert lb.wait_status(REST, "h2", "DOWN", seconds=15) == "DOWN"
        assert lb.state(GRPC, "h2") == "DOWN"
        assert lb.stat()[(REST, "h2")]["check_status"] == "L7RSP", lb.stat()[(REST, "h2")]
        assert lb.status(REST, "h1") == "UP"
    finally:
        backends[1].set_state(MODEL, 1, "AVAILABLE")
    assert lb.wait_status(REST, "h2", "UP", seconds=15) == "UP"
    assert lb.state(GRPC, "h2") == "UP"


def test_a_pinned_version_must_be_available(tmp_path: Path, backends: list[Serving]) -> None:
    """Pinned: version 1 (served) makes the servers UP, version 2 (never exported) DOWN."""
    with running_lb(tmp_path / "v1", entries(backends), [{"name": MODEL, "version": 1}]) as lb1:
        assert lb1.wait_status(REST, "h1", "UP") == "UP"
        assert "/v1/models/half_plus_two/versions/1 " in lb1.config.read_text()
    with running_lb(tmp_path / "v2", entries(backends), [{"name": MODEL, "version": 2}]) as lb2:
        assert lb2.wait_status(REST, "h1", "DOWN") == "DOWN"
        row = lb2.stat()[(REST, "h1")]
        assert row["check_status"] == "L7STS" and row["check_code"] == "404", row


def test_an_invalid_configuration_never_lands(tmp_path: Path, backends: list[Serving]) -> None:
    """The template's validate (haproxy -c) refuses it; the file in place stays as it was."""
    dest = tmp_path / "haproxy.cfg"
    dest.write_text("# the configuration in service\n")
    from ansible_collections.tfs_fleet.common.plugins.filter.lb import lb_model_checks

    run = render(
        dest,
        {
            "_tfserving_lb_servers": entries(backends),
            "_tfserving_lb_checks": lb_model_checks([MODEL], []),
            "tfserving_lb_balance": "no-such-algorithm",
        },
    )
    assert run.returncode != 0
    assert "failed to validate" in run.stdout, run.stdout[-2000:]
    assert dest.read_text() == "# the configuration in service\n"


def test_drain_and_undrain_through_the_runtime_api(lb: Lb) -> None:
    pairs = [{"backend": REST, "server": "h1"}, {"backend": GRPC, "server": "h1"}]
    common = {"socket": lb.socket, "servers": pairs}
    checked = module({**common, "state": "drain", "wait": "idle"}, check=True)
    assert checked["changed"] and lb.status(GRPC, "h1") == "UP", checked
    drained = module({**common, "state": "drain", "wait": "idle", "timeout": 20})
    assert drained["changed"] and len(drained["commands"]) == 2, drained
    assert [r["scur"] for r in drained["servers"]] == ["0", "0"]
    assert lb.status(GRPC, "h1") == "DRAIN"
    again = module({**common, "state": "drain", "wait": "idle"})
    assert not again["changed"], again
    # A drained server gets no new request; the other takes them all.
    before = {s: stot(lb, GRPC, s) for s in ("h1", "h2")}
    with GrpcClient(lb.grpc, timeout_s=5, retry=RetryPolicy(attempts=1)) as client:
        for _ in range(10):
            client.predict(MODEL, {"x": np.array([[1.0]], dtype=np.float32)})
    assert stot(lb, GRPC, "h1") == before["h1"]
    assert stot(lb, GRPC, "h2") - before["h2"] >= 10
    marked = module({**common, "state": "drain", "mark_down": pairs[:1]})
    assert marked["commands"] == [f"set server {REST}/h1 health down"], marked
    assert lb.state(GRPC, "h1") == "DOWN"  # the gRPC server follows (track)
    start = time.monotonic()
    ready = module({**common, "state": "ready", "wait": "up", "timeout": 20})
    assert ready["changed"] and [r["status"] for r in ready["servers"]] == ["UP", "UP"], ready
    assert time.monotonic() - start < 20


def test_the_module_reads_the_admin_state_of_a_drain_by_hand(lb: Lb) -> None:
    """Issue 23: an operator's `set server tfs_rest/h2 state drain` on the runtime API is read
    back as drain for the REST server and the gRPC one that tracks it; nothing is set."""
    pairs = [{"backend": b, "server": s} for s in ("h1", "h2") for b in (REST, GRPC)]
    assert hr.command(lb.socket, f"set server {REST}/h2 state drain").strip() == ""
    try:
        read = module({"socket": lb.socket, "servers": pairs})
        assert not read["changed"] and read["commands"] == [], read
        assert read["admin"] == {
            f"{REST}/h1": "ready", f"{GRPC}/h1": "ready",
            f"{REST}/h2": "drain", f"{GRPC}/h2": "drain",
        }, read  # fmt: skip
    finally:
        hr.command(lb.socket, f"set server {REST}/h2 state ready")


def test_the_module_reports_missing_servers_and_waits_bounded(
    lb: Lb, backends: list[Serving]
) -> None:
    ghost = [{"backend": REST, "server": "not-configured"}]
    failed = module({"socket": lb.socket, "servers": ghost, "state": "drain"})
    assert failed.get("failed") and "not-configured" in failed["msg"], failed
    skipped = module({"socket": lb.socket, "servers": ghost, "state": "drain", "missing": "skip"})
    assert not skipped.get("failed") and "not-configured" in skipped["skipped_reason"], skipped
    nosock = module({"socket": "/nonexistent/admin.sock", "servers": ghost, "missing": "skip"})
    assert "no HAProxy runtime socket" in nosock["skipped_reason"], nosock
    backends[0].set_state(MODEL, 1, "LOADING")
    try:
        # HAProxy may still report h1 UP (its next check has not run): the drain forces the
        # health DOWN, so the undrain waits for fresh checks, and times out here.
        down = module(
            {"socket": lb.socket, "servers": [{"backend": REST, "server": "h1"}], "state": "drain",
             "mark_down": [{"backend": REST, "server": "h1"}]},
        )  # fmt: skip
        assert down["servers"][0]["status"] == "DOWN", down
        start = time.monotonic()
        late = module(
            {"socket": lb.socket, "servers": [{"backend": REST, "server": "h1"}], "state": "ready",
             "wait": "up", "timeout": 6},
        )  # fmt: skip
        assert late.get("failed") and "not UP" in late["msg"] and "h1" in late["msg"], late
        assert time.monotonic() - start < 60
    finally:
        backends[0].set_state(MODEL, 1, "AVAILABLE")
    assert lb.wait_status(REST, "h1", "UP") == "UP"


def test_a_reload_under_load_drops_no_request(lb: Lb) -> None:
    """Three graceful reloads (USR2 to the master, as systemctl reload does) while gRPC and REST
    clients run through the front doors: no failed request."""
    spec = LoadSpec(grpc=lb.grpc, rest=lb.rest, clients_per_kind=2, interval_s=0.01, max_seconds=60)
    with Load(spec) as load:
        time.sleep(2)
        load.mark("reloads")
        for _ in range(3):
            lb.reload()
            time.sleep(2)
        load.mark("after")
        time.sleep(1)
    report = load.report()
    assert report["failed"] == 0, report
    assert report["phases"]["reloads"]["grpc"]["ok"] > 20, report
    assert report["phases"]["reloads"]["rest"]["ok"] > 20, report
