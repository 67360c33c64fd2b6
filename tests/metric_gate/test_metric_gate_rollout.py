"""The proof of the rollout's metric gate on a sandbox fleet of its own (TFS_FLEET_SANDBOX=mon:
2 serving hosts, SSH 127.0.0.1:43401-43402, gRPC 43501-43502, REST 43601-43602, and the
monitoring host, SSH 43490, Prometheus 127.0.0.1:43090), under continuous client load:

1. version 2 answers like version 1 (the smoke test passes) but does a fixed amount of extra
   work per request (tests/rollout/make_models.py slow:2): the canary is rolled back by the
   metric gate, the report names the p99 figure, the other host is never touched;
2. version 3 (good) passes the same gate on both hosts;
3. the drift metrics show the skew while the canary soaks and none after the rollout.

Every wait is bounded; the fleet is removed at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# A sandbox fleet of its own with Prometheus: the test-metric-gate stage runs it.
pytestmark = [pytest.mark.docker, pytest.mark.fleet]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FLEET = "mon"
HOSTS = [f"tfs-fleet-{FLEET}-1", f"tfs-fleet-{FLEET}-2"]
SSH_BASE, GRPC_BASE, REST_BASE, PROMETHEUS_PORT = 43400, 43500, 43600, 43090
PROMETHEUS = f"http://127.0.0.1:{PROMETHEUS_PORT}"
MODEL = "half_plus_two"
SOAK = 45
ARCHIVE = Path(
    os.environ.get("TFS_FLEET_STANDIN_ARCHIVE", REPO / "artifacts/images/serving-standin.tar")
)
STANDIN_REF = os.environ.get("TFS_FLEET_STANDIN_REF") or "tfs-fleet/serving-standin:latest"


def env() -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "TFS_FLEET_SANDBOX": FLEET,
        "TFS_FLEET_SANDBOX_MONITORING": "true",
        "TFS_FLEET_SANDBOX_PROMETHEUS_PORT": str(PROMETHEUS_PORT),
        "PYTHONPATH": str(REPO / "src"),
    }


def playbook(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ansible-playbook"), *args], capture_output=True, text=True, cwd=REPO,
        env=env(), timeout=timeout, check=False,
    )  # fmt: skip


def tail(proc: subprocess.CompletedProcess[str], lines: int = 80) -> str:
    out = (proc.stdout + proc.stderr).splitlines()
    first = [i for i, line in enumerate(out) if line.startswith(("fatal:", "failed:"))][:3]
    head = [ln for i in first for ln in out[max(0, i - 3) : i + 10]]
    return "\n".join([*head, "--- last lines:", *out[-lines:]])


def query(expr: str) -> list[dict[str, Any]]:
    url = f"{PROMETHEUS}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


class Load:
    """REST predict round-robin on the hosts' published ports (bounded in time and count)."""

    def __init__(self, max_seconds: float = 900, max_requests: int = 200_000) -> None:
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self.sent = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in HOSTS]

    def _loop(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        body = json.dumps({"instances": [[1.0]]}).encode()
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self.sent >= self.max_requests:
                return
            host = HOSTS[self.sent % len(HOSTS)]
            self.sent += 1
            port = REST_BASE + int(host.rsplit("-", 1)[1])
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/models/{MODEL}:predict", data=body, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    response.read()
            except (OSError, urllib.error.URLError) as exc:
                self.failures.append(f"{host}: {exc}")
            time.sleep(0.05)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    if not ARCHIVE.is_file():
        raise AssertionError(f"{ARCHIVE} is missing: run `make standin-archive` first")
    work = tmp_path_factory.mktemp("metric-gate")
    library, export = work / "library", work / "export"
    made = subprocess.run(
        [sys.executable, str(REPO / "tests/rollout/make_models.py"), str(library),
         "good:1", "slow:2", "good:3"],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]
    (export / MODEL).mkdir(parents=True)
    subprocess.run(["cp", "-a", str(library / MODEL / "1"), str(export / MODEL / "1")], check=True)
    up = playbook(
        "playbooks/sandbox.yml", "-e", "sandbox_host_count=2",
        "-e", f"sandbox_grpc_port_base={GRPC_BASE}", "-e", f"sandbox_rest_port_base={REST_BASE}",
        "-e", f"sandbox_ssh_port_base={SSH_BASE}",
    )  # fmt: skip
    assert up.returncode == 0, tail(up)
    common = [
        "-e", f"tfserving_models_export_base={export}",
        "-e", f"tfserving_verify_export_base={export}",
        "-e", f"tfserving_image_archive_path={ARCHIVE}",
        "-e", f"tfserving_image_archive_ref={STANDIN_REF}",
        "-e", "tfserving_monitoring_scrape_interval=5s",
    ]  # fmt: skip
    try:
        site = playbook("-i", "inventories/sandbox", "site.yml", *common, timeout=2400)
        assert site.returncode == 0, tail(site)
        yield {"library": library, "export": export, "work": work, "common": common}  # type: ignore[misc]
    finally:
        playbook("playbooks/sandbox.yml", "-e", "sandbox_state=absent")


def rollout(fleet: dict[str, Any], version: int, run_id: str) -> subprocess.CompletedProcess[str]:
    subprocess.run(
        ["cp", "-a", str(fleet["library"] / MODEL / str(version)),
         str(fleet["export"] / MODEL / str(version))], check=True,
    )  # fmt: skip
    return playbook(
        "-i", "inventories/sandbox", "playbooks/rollout.yml", *fleet["common"],
        "-e", f"tfserving_rollout_report_dir={fleet['work'] / 'runs'}",
        "-e", f"tfserving_rollout_run_id={run_id}",
        "-e", f"tfserving_rollout_prometheus_url={PROMETHEUS}",
        "-e", f"tfserving_rollout_soak_seconds={SOAK}",
        "-e", "tfserving_verify_wait_seconds=90",
        timeout=1500,
    )  # fmt: skip


def report(fleet: dict[str, Any], run_id: str) -> dict[str, Any]:
    return json.loads((fleet["work"] / "runs" / run_id / "report.json").read_text())


def latest_versions() -> dict[str, str]:
    return {
        s["metric"]["host"]: s["value"][1]
        for s in query(f'tfs_fleet_model_latest_version{{model="{MODEL}"}}')
    }


def test_slow_version_rolled_back_by_the_metric_gate_under_load(fleet: dict[str, Any]) -> None:
    with Load() as load:
        time.sleep(20)  # the baseline's traffic in Prometheus before the canary soaks
        run = rollout(fleet, 2, "slow-v2")
    assert run.returncode != 0, tail(run)
    hosts = {h["host"]: h for h in report(fleet, "slow-v2")["hosts"]}
    canary = hosts[HOSTS[0]]
    assert canary["status"] == "rolled-back", canary
    assert canary["gate"] == "failed", canary
    assert "metric gate after 45 s: p99 latency" in canary["detail"], canary["detail"]
    assert "that of the hosts not updated" in canary["detail"], canary["detail"]
    assert hosts[HOSTS[1]]["status"] not in ("updated", "rolled-back"), hosts[HOSTS[1]]
    assert _wait_versions("1")
    assert load.sent > 100


def _wait_versions(version: str, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if set(latest_versions().values()) == {version} and len(latest_versions()) == 2:
            return True
        time.sleep(3)
    raise AssertionError(f"drift metrics never agreed on version {version}: {latest_versions()}")


def test_good_version_passes_and_the_drift_shows_the_skew_only_during(
    fleet: dict[str, Any],
) -> None:
    skew_seen: list[dict[str, str]] = []
    stop = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 1200
        while not stop.is_set() and time.monotonic() < deadline:
            versions = latest_versions()
            if len(set(versions.values())) > 1:
                skew_seen.append(versions)
            time.sleep(3)

    watcher = threading.Thread(target=watch, daemon=True)
    with Load() as load:
        time.sleep(10)
        watcher.start()
        run = rollout(fleet, 3, "good-v3")
        stop.set()
        watcher.join(timeout=30)
    assert run.returncode == 0, tail(run)
    result = report(fleet, "good-v3")
    for host in result["hosts"]:
        assert host["status"] == "updated", host
        assert host["detail"].startswith("metric gate passed after 45 s"), host["detail"]
    assert skew_seen and skew_seen[0] == {HOSTS[0]: "3", HOSTS[1]: "1"}, skew_seen[:3]
    assert _wait_versions("3")
    skew = query(
        f'max by (model) (tfs_fleet_model_latest_version{{model="{MODEL}"}})'
        f' != min by (model) (tfs_fleet_model_latest_version{{model="{MODEL}"}})'
    )
    assert skew == []
    assert not load.failures[:1] or len(load.failures) < load.sent * 0.01, load.failures[:5]
