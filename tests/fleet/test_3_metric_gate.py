"""The rollout's metric gate on the fleet stage's 3 hosts (tests/fleet/conftest.py), with the
Prometheus of the monitoring host that joined them in test_2 (127.0.0.1:30090), under
continuous client load on each host's own REST port:

1. version 13 answers like version 11 (the smoke test passes) but does a fixed amount of extra
   work per request (tests/rollout/make_models.py slow:13): the canary is rolled back by the
   metric gate, the report names the p99 figure, the other hosts are never touched;
2. version 14 (good) passes the same gate on every host;
3. the drift metrics show the skew while the canary soaks and none after the rollout.

Batches [1, 100%]: one soak for the canary, one for the rest. Every wait is bounded."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest
from fleet import HOSTS, LB, MODEL, MONITORING, PROMETHEUS, REST_BASE, FrontDoor, Run

from tfs_fleet import prom_targets

pytestmark = [pytest.mark.docker, pytest.mark.fleet]

SOAK = 30
BASE_VERSION, SLOW_VERSION, GOOD_VERSION = 11, 13, 14


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
            time.sleep(0.1)  # about 10 requests a second per host

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def rollout(door: FrontDoor, version: int, run_id: str) -> Run:
    door.export_version(version)
    return door.rollouts.rollout(
        "-e", f"tfserving_rollout_prometheus_url={PROMETHEUS}",
        "-e", f"tfserving_rollout_soak_seconds={SOAK}",
        "-e", '{"tfserving_rollout_serial": [1, "100%"]}',
        "-e", "tfserving_verify_wait_seconds=90",
        run_id=run_id, timeout=1500,
    )  # fmt: skip


def latest_versions() -> dict[str, str]:
    return {
        s["metric"]["host"]: s["value"][1]
        for s in query(f'tfs_fleet_model_latest_version{{model="{MODEL}"}}')
    }


def test_prometheus_scrapes_every_host_of_the_fleet(front_door: FrontDoor) -> None:
    """`up` is 1 for each serving container, each node exporter (the monitoring host's too),
    HAProxy on the LB host and Prometheus itself."""
    deadline = time.monotonic() + 90
    while True:
        up = {(job, host): is_up for job, _, host, is_up in prom_targets.rows(query("up"))}
        wanted = {
            **{("tfserving", h): True for h in HOSTS},
            **{("node", h): True for h in (*HOSTS, MONITORING)},
            ("haproxy", LB): True,
            ("prometheus", MONITORING): True,
        }
        if up == wanted or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert up == wanted


def test_slow_version_rolled_back_by_the_metric_gate_under_load(front_door: FrontDoor) -> None:
    with Load() as load:
        time.sleep(10)  # two scrapes of the baseline's traffic before the canary soaks
        run = rollout(front_door, SLOW_VERSION, "slow")
    assert run.rc != 0, run.tail()
    hosts = {h["host"]: h for h in front_door.rollouts.report("slow")["hosts"]}
    canary = hosts[HOSTS[0]]
    assert canary["status"] == "rolled-back", canary
    assert canary["gate"] == "failed", canary
    assert f"metric gate after {SOAK} s: p99 latency" in canary["detail"], canary["detail"]
    assert "that of the hosts not updated" in canary["detail"], canary["detail"]
    for other in HOSTS[1:]:
        assert hosts[other]["status"] not in ("updated", "rolled-back"), hosts[other]
    assert _wait_versions(str(BASE_VERSION))
    assert load.sent > 100


def _wait_versions(version: str, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if set(latest_versions().values()) == {version} and len(latest_versions()) == len(HOSTS):
            return True
        time.sleep(3)
    raise AssertionError(f"drift metrics never agreed on version {version}: {latest_versions()}")


def test_good_version_passes_and_the_drift_shows_the_skew_only_during(
    front_door: FrontDoor,
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

    before = latest_versions()
    assert len(before) == len(HOSTS) and len(set(before.values())) == 1, before
    watcher = threading.Thread(target=watch, daemon=True)
    with Load() as load:
        time.sleep(5)
        watcher.start()
        run = rollout(front_door, GOOD_VERSION, "good")
        stop.set()
        watcher.join(timeout=30)
    assert run.rc == 0, run.tail()
    result = front_door.rollouts.report("good")
    for host in result["hosts"]:
        assert host["status"] == "updated", host
        assert host["detail"].startswith(f"metric gate passed after {SOAK} s"), host["detail"]
    # The canary first, the others still on what they served before (whatever the slow
    # version's test left: this test does not depend on its verdict).
    during = {**before, HOSTS[0]: str(GOOD_VERSION)}
    assert skew_seen and skew_seen[0] == during, skew_seen[:3]
    assert _wait_versions(str(GOOD_VERSION))
    skew = query(
        f'max by (model) (tfs_fleet_model_latest_version{{model="{MODEL}"}})'
        f' != min by (model) (tfs_fleet_model_latest_version{{model="{MODEL}"}})'
    )
    assert skew == []
    assert not load.failures[:1] or len(load.failures) < load.sent * 0.01, load.failures[:5]
