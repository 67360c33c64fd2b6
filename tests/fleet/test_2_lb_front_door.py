"""The load balancer under load, on the fleet stage's 3 hosts (tests/fleet/conftest.py) with the
LB host and the monitoring host that join them here (front_door: site.yml, over SSH as `ops`
with the sudo password, runs the tfserving_lb role on the LB host). Continuous gRPC Predict and
REST predict clients (tfs_fleet.load, one attempt per request) go through the front door on
127.0.0.1 (gRPC 30500, REST 30600) while:

  (c) the serving process of one host is killed: the LB takes the host out within its check
      interval, the failed requests are counted and reported, the host comes back by itself;
  (a) a rollout recreates the container on every host: 0 failed requests.

The bad rollout through the front door, stopped at the canary and rolled back with 0 failed
requests, is test_4's three broken user versions (the same LB, the same clients, one rollout
less in the stage).

The rollouts here run without the metric gate (tfserving_rollout_prometheus_url ""; test_3
proves it). Figures (requests, failures, p50/p99 per phase) go to artifacts/lb/figures.json and
figures.md (`make lb-figures` prints them; docs/lb.md quotes them).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fleet import (
    EXPECTED_RELEASE,
    FRONT,
    HOSTS,
    LB,
    LB_SOCKET,
    REPO,
    FrontDoor,
    admin_states,
    all_up,
    docker,
    lb_stat,
    playbook,
    servers_status,
    wait_until,
)

from tfs_bench.fleet import sandbox_playbook_args
from tfs_fleet.load import Load, LoadSpec

pytestmark = [pytest.mark.docker, pytest.mark.fleet]

FIGURES = REPO / "artifacts" / "lb"
RESULTS: dict[str, Any] = {}
NO_METRIC_GATE = (
    "-e",
    "tfserving_rollout_prometheus_url=",
    "-e",
    "tfserving_verify_wait_seconds=240",
)
LB_PLAY = ("-i", str(REPO / "inventories/sandbox"), str(REPO / "playbooks/lb.yml"))


def container_ids() -> dict[str, str]:
    return {
        h: docker("exec", h, "docker", "inspect", "-f", "{{.Id}}", "tfserving").stdout.strip()
        for h in HOSTS
    }


def save_figures() -> None:
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / "figures.json").write_text(json.dumps(RESULTS, indent=2) + "\n")
    lines = [
        "| Case | Phase | gRPC requests / failed | gRPC p50 / p99 ms | REST requests / failed"
        " | REST p50 / p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for case, result in RESULTS.items():
        for phase, figs in result.get("load", {}).get("phases", {}).items():
            g, r = figs.get("grpc", {}), figs.get("rest", {})
            lines.append(
                f"| {case} | {phase} | {g.get('requests')} / {g.get('failed')} | "
                f"{g.get('p50_ms')} / {g.get('p99_ms')} | {r.get('requests')} / {r.get('failed')}"
                f" | {r.get('p50_ms')} / {r.get('p99_ms')} |"
            )
        extra = {k: v for k, v in result.items() if k != "load"}
        if extra:
            lines.append(f"| {case} | notes | {json.dumps(extra)} | | | |")
    (FIGURES / "figures.md").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module", autouse=True)
def figures() -> Any:
    yield
    save_figures()


def test_front_door_answers_and_every_server_is_up(front_door: FrontDoor) -> None:
    assert wait_until(all_up, 120), servers_status()
    load = Load(LoadSpec(**{**FRONT.__dict__, "max_requests": 200, "interval_s": 0}))
    load.start().wait()
    report = load.report()
    assert report["failed"] == 0 and report["requests"] == 200, report
    # Per-request balancing: the gRPC requests of one channel reached every host.
    assert all(int(lb_stat()[("tfs_grpc", h)]["stot"]) > 0 for h in HOSTS), lb_stat()
    listening = docker("exec", LB, "ss", "-ltnH").stdout
    assert "127.0.0.1:8404" in listening and "0.0.0.0:8404" not in listening, listening
    metrics = docker("exec", LB, "curl", "-sf", "http://127.0.0.1:8404/metrics").stdout
    assert 'haproxy_server_status{proxy="tfs_rest",server="tfs-fleet-rollout-1"' in metrics
    mode = docker("exec", LB, "stat", "-c", "%a %G", LB_SOCKET).stdout.split()
    assert mode == ["660", "haproxy"], mode


def test_each_host_runs_its_release_and_its_packages(front_door: FrontDoor) -> None:
    """Each host runs the Debian release the fleet's OS gives it (issue 26: on the default mixed
    fleet the serving hosts alternate 12 and 13, an OS upgrade half done, and the LB and
    monitoring hosts run 13), and site.yml installed that release's own packages: the
    engine (docker.io 20.10 on bookworm, 26.1 on trixie) and HAProxy (2.6 or 3.0)."""
    release = {
        h: docker("exec", h, "sh", "-c", ". /etc/os-release; echo $VERSION_ID").stdout.strip()
        for h in EXPECTED_RELEASE
    }
    assert release == EXPECTED_RELEASE, release
    engine = {
        h: docker("exec", h, "docker", "version", "-f", "{{.Server.Version}}").stdout.strip()
        for h in HOSTS
    }
    want = {"12": "20.10.", "13": "26.1."}
    assert all(engine[h].startswith(want[release[h]]) for h in HOSTS), engine
    haproxy = docker("exec", LB, "haproxy", "-v").stdout
    assert {"12": "version 2.6.", "13": "version 3.0."}[release[LB]] in haproxy, haproxy


def test_health_check_needs_the_pinned_version(front_door: FrontDoor) -> None:
    """Pinned to version 11 (served): UP, and the reload under load drops nothing; pinned to
    version 12 (not on any host): every server DOWN; back to the default: UP."""
    with Load(FRONT) as load:
        pinned = playbook(
            *LB_PLAY, "-e", '{"tfserving_lb_models": [{"name": "half_plus_two", "version": 11}]}'
        )
        time.sleep(3)
    assert pinned.rc == 0, pinned.tail()
    assert load.report()["failed"] == 0, load.report()
    RESULTS["reload"] = {"load": load.report()}
    missing = playbook(
        *LB_PLAY, "-e", '{"tfserving_lb_models": [{"name": "half_plus_two", "version": 12}]}',
        "-e", "tfserving_lb_wait_up_timeout_s=0",
    )  # fmt: skip
    assert missing.rc == 0, missing.tail()
    assert wait_until(lambda: set(servers_status().values()) == {"DOWN"}, 30), servers_status()
    row = lb_stat()[("tfs_rest", HOSTS[0])]
    assert row["check_status"] == "L7STS" and row["check_code"] == "404", row
    back = playbook(*LB_PLAY)
    assert back.rc == 0, back.tail()
    assert all_up(), servers_status()


def test_killed_server_is_taken_out_and_comes_back(front_door: FrontDoor) -> None:
    """(c) kill -9 of host 2's serving process: DOWN within the check interval, failures
    counted, the restart policy brings the container back and the LB takes it back by itself."""
    assert wait_until(all_up, 60), servers_status()
    victim = HOSTS[1]
    with Load(FRONT) as load:
        time.sleep(5)
        load.mark("kill")
        pid = docker("exec", victim, "docker", "inspect", "-f", "{{.State.Pid}}", "tfserving")
        t0 = time.monotonic()
        docker("exec", victim, "kill", "-9", pid.stdout.strip())
        down = wait_until(lambda: lb_stat()[("tfs_rest", victim)]["status"] == "DOWN", 30, poll=0.2)
        t_down = time.monotonic() - t0
        load.mark("out")
        back = wait_until(lambda: lb_stat()[("tfs_rest", victim)]["status"] == "UP", 400, poll=1)
        t_back = time.monotonic() - t0
        load.mark("back")
        time.sleep(5)
    report = load.report()
    RESULTS["c_killed"] = {
        "load": report, "down_after_s": round(t_down, 2), "up_again_after_s": round(t_back, 1),
        "failed": report["failed"],
    }  # fmt: skip
    save_figures()
    print(f"\n(c) killed server: DOWN after {t_down:.2f} s, UP after {t_back:.1f} s, "
          f"{report['failed']} of {report['requests']} requests failed")  # fmt: skip
    assert down, lb_stat()[("tfs_rest", victim)]
    # fall 2 checks at fastinter 0.5 s after the first failed one at inter 2 s, check timeout 2 s
    assert t_down <= 2 + 2 * 0.5 + 2 + 1.5, t_down
    assert back, lb_stat()[("tfs_rest", victim)]
    assert report["phases"]["back"]["grpc"]["failed"] == 0, report
    assert report["phases"]["out"]["grpc"]["ok"] > 0, report


def test_rollout_recreating_every_container_fails_no_request(front_door: FrontDoor) -> None:
    """(a) a changed container setting (an environment variable) recreates the container on
    every host, canary first; each host is drained, updated, gated and undrained."""
    assert wait_until(all_up, 120), servers_status()
    before = container_ids()
    setting = json.dumps({"tfserving_env": {"TFS_FLEET_LB_TEST": str(time.time_ns())}})
    with Load(FRONT) as load:
        time.sleep(5)
        load.mark("during")
        run = front_door.rollouts.rollout(
            *NO_METRIC_GATE, "-e", setting, run_id=f"a-{time.time_ns()}"
        )
        load.mark("after")
        time.sleep(5)
    report = load.report()
    RESULTS["a_recreate_all"] = {"load": report, "rollout_s": None}
    save_figures()
    assert run.rc == 0, run.tail()
    after = container_ids()
    assert all(after[h] and after[h] != before[h] for h in HOSTS), (before, after)
    assert report["failed"] == 0, report
    assert report["phases"]["during"]["grpc"]["ok"] > 50, report
    assert all_up(), servers_status()
    assert set(admin_states().values()) == {0}, admin_states()  # none left drained


def test_daemon_json_that_dockerd_refuses_is_restored_and_the_host_serves_again(
    front_door: FrontDoor,
) -> None:
    """Issue 23 item 6, behind the LB: a docker_daemon_options value that passes the schema but
    that dockerd refuses at start (`hosts`, next to -H fd:// on Debian's unit) is written, the
    restart fails, and the role restores the previous daemon.json, brings the engine back and
    fails naming the variable; the host's container comes back and the LB takes it back; the
    corrected re-run starts at once (systemd's start limit reset) and changes nothing."""
    assert wait_until(all_up, 120), servers_status()
    victim = HOSTS[2]
    before = docker("exec", victim, "cat", "/etc/docker/daemon.json").stdout
    sandbox = {"log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}}
    refused = {**sandbox, "hosts": ["unix:///var/run/docker.sock"]}
    # The export base too: the host is serving, so the change goes through the drained path,
    # whose gate smoke-tests the versions it served (their SavedModels are read there).
    host_setup = sandbox_playbook_args("playbooks/host_setup.yml", front_door.export)
    run = playbook(
        *host_setup, "--limit", victim, "-e", json.dumps({"docker_daemon_options": refused})
    )
    assert run.rc != 0, run.tail()
    flat = " ".join(run.output.split())
    assert "docker_daemon_options.hosts" in flat, run.tail()
    assert "previous daemon.json was restored" in flat, run.tail()
    assert docker("exec", victim, "cat", "/etc/docker/daemon.json").stdout == before
    assert docker("exec", victim, "systemctl", "is-active", "docker").stdout.strip() == "active"
    assert wait_until(all_up, 240), servers_status()
    again = playbook(*host_setup, "--limit", victim)
    assert again.rc == 0, again.tail()
    assert again.changed == {victim: 0}, again.tail()
