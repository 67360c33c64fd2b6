"""Verifier of molecule/tfserving_monitoring: the sandbox's real Prometheus (on the monitoring
host, published on 127.0.0.1) over its HTTP API: every target up, TF Serving's (here: the
stand-in's) request counter rising with smoke traffic, the drift metrics, the rules loaded, and
every dashboard panel's query. Every wait is bounded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

REPO = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
sys.path.insert(0, str(REPO / "tests" / "monitoring"))
from dashboard import queries  # noqa: E402

EXPORT = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "models" / "half_plus_two"
FLEET = os.environ.get("TFS_FLEET_SANDBOX", "mmon")
SERVING = f"tfs-fleet-{FLEET}-1"
PROMETHEUS_PORT = int(os.environ.get("TFS_FLEET_SANDBOX_PROMETHEUS_PORT", "28590"))
# The HA pair (molecule.yml): host 90 on Debian 13, host 91 on Debian 12, each its own Prometheus
# from its release's archive, both scraping every target. Every test runs against each.
PAIR = {f"tfs-fleet-{FLEET}-90": PROMETHEUS_PORT, f"tfs-fleet-{FLEET}-91": PROMETHEUS_PORT + 1}
PROMETHEUS = ""
MONITORING = ""
STANDIN = os.environ.get("TFS_FLEET_STANDIN_REF") or "tfs-fleet/serving-standin:latest"
PORT_BASE = int(os.environ.get("TFS_FLEET_SANDBOX_PORT_BASE", "28560"))


@pytest.fixture(scope="module", autouse=True, params=sorted(PAIR))
def prometheus_host(request: pytest.FixtureRequest) -> str:
    """The Prometheus host the module's tests read (PROMETHEUS, MONITORING)."""
    global PROMETHEUS, MONITORING
    MONITORING = request.param
    PROMETHEUS = f"http://127.0.0.1:{PAIR[MONITORING]}"
    return MONITORING


def test_each_prometheus_is_its_own_release() -> None:
    """Prometheus from each release's archive: 2.42 on bookworm (host 91), 2.53 on trixie (90)."""
    version = api("status/buildinfo")["version"]
    want = "2.53." if MONITORING.endswith("-90") else "2.42."
    assert version.startswith(want), (MONITORING, version)


def api(path: str, **params: str) -> Any:
    url = f"{PROMETHEUS}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        body = json.load(exc)
    assert body["status"] == "success", (url, body)
    return body["data"]


def query(expr: str) -> list[dict[str, Any]]:
    data = api("query", query=expr)
    assert data["resultType"] == "vector", data
    return data["result"]


def wait_for(what: str, check, seconds: float = 120, every: float = 3):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {seconds:.0f} s (last: {last!r})")


def test_every_target_is_up() -> None:
    def all_up():
        targets = api("targets", state="active")["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    targets = wait_for("every scrape target up", all_up)
    jobs = sorted((t["labels"]["job"], t["labels"].get("host", "")) for t in targets)
    assert ("tfserving", SERVING) in jobs, jobs
    assert ("node", SERVING) in jobs and ("node", MONITORING) in jobs, jobs
    assert ("prometheus", MONITORING) in jobs, jobs
    tfserving = [t for t in targets if t["labels"]["job"] == "tfserving"]
    assert tfserving[0]["labels"]["container"] == "tfserving"
    assert tfserving[0]["scrapeUrl"].endswith(":8501/monitoring/prometheus/metrics")
    # The same through PromQL: up == 1 for every series, and none at 0.
    up = query("up")
    assert up and all(s["value"][1] == "1" for s in up), up
    assert {s["metric"]["host"] for s in up if s["metric"]["job"] == "tfserving"} == {SERVING}


def _requests() -> float:
    series = query('sum(:tensorflow:serving:request_count{model_name="half_plus_two"})')
    return float(series[0]["value"][1]) if series else 0.0


def test_request_counter_rises_with_smoke_traffic() -> None:
    before = wait_for(
        "a first scrape of the serving container", lambda: query("up{job='tfserving'}")
    )
    assert before
    start = _requests()
    manifest = EXPORT / "1" / "tfs_fleet_manifest.json"
    for _ in range(5):
        result = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "smoke_test.py"), "--manifest", str(manifest),
             "--grpc", f"127.0.0.1:{PORT_BASE + 1}", "--rest", f"127.0.0.1:{PORT_BASE + 101}",
             "--version", "1", "--wait", "60", "--json"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
    # One request TF Serving answers NOT_FOUND (an unknown version): counted as non-OK.
    try:
        urllib.request.urlopen(
            f"http://127.0.0.1:{PORT_BASE + 101}/v1/models/half_plus_two/versions/999", timeout=10
        )
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
    else:
        raise AssertionError("version 999 answered")
    # And a Predict with a string where the model takes floats: INVALID_ARGUMENT.
    bad = urllib.request.Request(
        f"http://127.0.0.1:{PORT_BASE + 101}/v1/models/half_plus_two:predict",
        data=b'{"instances": [["not a number"]]}', method="POST",
    )  # fmt: skip
    try:
        urllib.request.urlopen(bad, timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 400
    else:
        raise AssertionError("a string Predict answered")
    # Each smoke test sends gRPC Predict (counted by TF Serving) and REST requests (all counted).
    after = wait_for("the request counter to rise", lambda: _requests() >= start + 5 or None, 90)
    assert after
    ok = query(':tensorflow:serving:request_count{model_name="half_plus_two",status="OK"}')
    assert ok and ok[0]["metric"]["host"] == SERVING
    latency = query(
        'count(:tensorflow:serving:request_latency_bucket{API="Predict",entrypoint="GRPC"})'
    )
    assert latency and float(latency[0]["value"][1]) == 34  # Exponential(10, 1.8, 33) + +Inf


def test_drift_metrics_from_the_serving_host() -> None:
    latest = wait_for(
        "the drift metrics", lambda: query('tfs_fleet_model_latest_version{model="half_plus_two"}')
    )
    assert [(s["metric"]["host"], s["value"][1]) for s in latest] == [(SERVING, "1")]
    image = query("tfs_fleet_serving_image_info")
    assert len(image) == 1
    assert image[0]["metric"]["image"] == STANDIN
    assert image[0]["metric"]["image_id"].startswith("sha256:")
    assert query("tfs_fleet_gpu_info") == []  # the sandbox hosts have no GPU
    stamp = query("tfs_fleet_last_converge_timestamp_seconds")
    assert stamp and 0 < time.time() - float(stamp[0]["value"][1]) < 7200
    served = query('tfs_fleet_model_version_served{model="half_plus_two"}')
    assert [s["metric"]["version"] for s in served] == ["1"]
    errors = query("node_textfile_scrape_error")
    assert errors and all(s["value"][1] == "0" for s in errors), errors


def test_alert_rules_loaded_and_quiet() -> None:
    groups = api("rules")["groups"]
    names = {r["name"] for g in groups for r in g["rules"]}
    assert {
        "TFSFleetTargetDown", "TFServingErrorRatioHigh", "TFServingP99LatencyHigh",
        "TFServingModelVersionNotLoaded", "TFServingModelLoadFailed", "TFSFleetVersionSkew",
        "TFSFleetGPUXidError", "TFSFleetGPURowRemapFailure",
    } <= names  # fmt: skip
    assert all(r.get("health") == "ok" for g in groups for r in g["rules"]), groups
    # The served version is loaded (the load counter joins the drift metrics): no alert.
    assert query("ALERTS{alertname='TFServingModelVersionNotLoaded'}") == []


def test_every_dashboard_panel_query_runs() -> None:
    """Every query parses (a bad one gets HTTP 400 and fails api()); the non-GPU ones return
    data on the sandbox (the GPU panels read the DCGM exporter, which no host here runs)."""
    for q in queries():
        result = query(q["expr"])
        if q["gpu"] or result:
            continue
        # A rate needs two scrapes after the traffic above: wait for them (bounded).
        wait_for(f"data for panel {q['panel']!r} ({q['expr']})", lambda q=q: query(q["expr"]), 90)
