"""tfs_fleet.load and scripts/load_client.py against the in-process server (tests/toolkit)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from toolkit_helpers import export_demo
from toolkit_serving_server import Serving, load_model

from tfs_fleet.load import Load, LoadSpec, percentile

from helpers import REPO, free_ports

MODEL = "half_plus_two"


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    base = tmp_path_factory.mktemp("load-export")
    export_demo(base)
    server = Serving({MODEL: load_model(MODEL, base / MODEL)}).start()
    yield server
    server.stop()


def test_phases_count_requests_and_latency(serving: Serving) -> None:
    spec = LoadSpec(grpc=serving.grpc_target, rest=serving.rest_target, interval_s=0.01)
    with Load(spec) as load:
        time.sleep(1.0)
        load.mark("during")
        time.sleep(1.0)
    report = load.report()
    assert report["failed"] == 0, report
    assert set(report["phases"]) == {"run", "during"}
    for phase in report["phases"].values():
        for kind in ("grpc", "rest"):
            fig = phase[kind]
            assert fig["ok"] >= 5 and fig["failed"] == 0, fig
            assert 0 < fig["p50_ms"] <= fig["p99_ms"] <= fig["max_ms"], fig
    assert report["requests"] == sum(t["requests"] for t in report["total"].values())


def test_wrong_answers_and_errors_are_failures(serving: Serving) -> None:
    wrong = Load(LoadSpec(grpc=serving.grpc_target, expected=99.0, max_requests=5, interval_s=0))
    wrong.start().wait()
    report = wrong.report()
    assert (
        report["failed"] == 5 and "expected 99.0" in report["total"]["grpc"]["failure_samples"][0]
    )
    serving.set_state(MODEL, 1, "LOADING")
    try:
        down = Load(LoadSpec(rest=serving.rest_target, max_requests=3, interval_s=0))
        down.start().wait()
    finally:
        serving.set_state(MODEL, 1, "AVAILABLE")
    assert down.report()["total"]["rest"]["failed"] == 3


def test_bounds_end_the_run() -> None:
    (port,) = free_ports(1)  # nothing listens: every request fails fast
    start = time.monotonic()
    load = Load(LoadSpec(grpc=f"127.0.0.1:{port}", max_seconds=1.5, timeout_s=0.5, interval_s=0.05))
    load.start().wait()
    assert time.monotonic() - start < 10
    report = load.report()
    assert report["requests"] > 0 and report["failed"] == report["requests"], report


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0
    assert percentile([], 50) is None and percentile([7.0], 99) == 7.0


def test_cli_reports_json_and_exit_status(serving: Serving) -> None:
    script = str(REPO / "scripts" / "load_client.py")
    ok = subprocess.run(
        [sys.executable, script, "--grpc", serving.grpc_target, "--rest", serving.rest_target,
         "--seconds", "2", "--phase-at", "1:during"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["failed"] == 0 and "during" in doc["phases"], doc
    bad = subprocess.run(
        [sys.executable, script, "--grpc", f"127.0.0.1:{free_ports(1)[0]}", "--seconds", "1",
         "--timeout", "0.3"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 1 and json.loads(bad.stdout)["failed"] > 0
    usage = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "gRPC address" in usage.stderr
