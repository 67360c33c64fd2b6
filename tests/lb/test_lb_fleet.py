"""The proof under load: a 3-host sandbox fleet behind the sandbox's LB host (TFS_FLEET_SANDBOX=lbt;
SSH 41400/41401-3, gRPC 41500 (front door)/41501-3, REST 41600/41601-3), reached over SSH as
`ops` with sudo, set up by site.yml (which runs the tfserving_lb role on the LB host). Continuous
gRPC Predict and REST predict clients (tfs_fleet.load, one attempt per request) go through the
front door on 127.0.0.1 while:

  (c) the serving process of one host is killed: the LB takes the host out within its check
      interval, the failed requests are counted and reported, the host comes back by itself;
  (a) a rollout recreates the container on every host: 0 failed requests;
  (b) a rollout of a bad model version stops at the canary and rolls it back: 0 failed requests.

Figures (requests, failures, p50/p99 per phase) go to artifacts/lb/figures.json and figures.md
(`make lb-figures` prints them; docs/lb.md quotes them). TFS_FLEET_LB_KEEP=1 keeps the fleet.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.tfs_fleet.common.plugins.module_utils import haproxy_runtime as hr

from tfs_fleet.load import Load, LoadSpec

from helpers import BIN, REPO, docker, require_docker_image

# A sandbox fleet of its own behind the LB: only the test-lb stage runs it.
pytestmark = [pytest.mark.docker, pytest.mark.fleet]

FLEET = "lbt"
HOSTS = [f"tfs-fleet-{FLEET}-{n}" for n in (1, 2, 3)]
LB = f"tfs-fleet-{FLEET}-lb"
SSH_BASE, GRPC_BASE, REST_BASE = 41400, 41500, 41600
FRONT = LoadSpec(grpc=f"127.0.0.1:{GRPC_BASE}", rest=f"127.0.0.1:{REST_BASE}", interval_s=0.02)
ARCHIVE = Path(
    os.environ.get("TFS_FLEET_STANDIN_ARCHIVE", REPO / "artifacts/images/serving-standin.tar")
)
FIGURES = REPO / "artifacts" / "lb"
RESULTS: dict[str, Any] = {}
SOCKET = "/run/haproxy/admin.sock"
_STAT = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);s.sendall(sys.argv[2].encode()+b'\\n')\n"
    "out=b''\nwhile True:\n    d=s.recv(65536)\n    if not d: break\n    out+=d\n"
    "sys.stdout.write(out.decode())\n"
)


def env() -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "TFS_FLEET_SANDBOX": FLEET,
        "PYTHONPATH": str(REPO / "src"),
    }


def playbook(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ansible-playbook"), *args],
        capture_output=True, text=True, cwd=REPO, env=env(), timeout=timeout,
    )  # fmt: skip


def tail(proc: subprocess.CompletedProcess[str], lines: int = 60) -> str:
    out = (proc.stdout + proc.stderr).splitlines()
    first = [i for i, ln in enumerate(out) if ln.startswith(("fatal:", "failed:"))][:2]
    head = [ln for i in first for ln in out[max(0, i - 3) : i + 15]]
    return "\n".join([*head, "--- last lines:", *out[-lines:]])


def runtime(command: str) -> str:
    return docker("exec", LB, "python3", "-c", _STAT, SOCKET, command).stdout


def stat() -> dict[tuple[str, str], dict[str, str]]:
    return {(r["pxname"], r["svname"]): r for r in hr.parse_stat(runtime("show stat"))}


def servers_status() -> dict[str, str]:
    rows = stat()
    return {f"{b}/{s}": r["status"] for (b, s), r in rows.items() if b in {"tfs_rest", "tfs_grpc"}
            and s not in {"FRONTEND", "BACKEND"}}  # fmt: skip


def admin_states() -> dict[str, int]:
    rows = hr.parse_servers_state(runtime("show servers state"))
    return {f"{r['be_name']}/{r['srv_name']}": hr.admin_flags(r) for r in rows}


def wait_for(predicate: Any, seconds: float, poll: float = 0.5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


def all_up() -> bool:
    status = servers_status()
    return len(status) == 2 * len(HOSTS) and set(status.values()) == {"UP"}


def container_ids() -> dict[str, str]:
    return {
        h: docker("exec", h, "docker", "inspect", "-f", "{{.Id}}", "tfserving").stdout.strip()
        for h in HOSTS
    }


def export_models(base: Path, *specs: str) -> None:
    proc = subprocess.run(
        [str(BIN / "python"), str(REPO / "tests/rollout/make_models.py"), str(base), *specs],
        capture_output=True, text=True, env=env(), timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


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


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The fleet with version 1 served everywhere and the LB in front (site.yml)."""
    require_docker_image()
    if not ARCHIVE.is_file():
        raise AssertionError(f"{ARCHIVE} is missing: run `make standin-archive` first")
    export = tmp_path_factory.mktemp("lb-export")
    export_models(export, "good:1")
    start = time.monotonic()
    up = playbook(
        str(REPO / "playbooks/sandbox.yml"), "-e", "sandbox_host_count=3", "-e", "sandbox_lb=true",
        "-e", f"sandbox_grpc_port_base={GRPC_BASE}", "-e", f"sandbox_rest_port_base={REST_BASE}",
        "-e", f"sandbox_ssh_port_base={SSH_BASE}", timeout=600,
    )  # fmt: skip
    assert up.returncode == 0, tail(up)
    site = playbook(*site_args(export), timeout=2400)
    assert site.returncode == 0, tail(site)
    RESULTS["setup"] = {"fleet_and_site_s": round(time.monotonic() - start)}
    yield export
    save_figures()
    if os.environ.get("TFS_FLEET_LB_KEEP") != "1":
        playbook(str(REPO / "playbooks/sandbox.yml"), "-e", "sandbox_state=absent", timeout=600)


def site_args(export: Path) -> list[str]:
    return [
        "-i", str(REPO / "inventories/sandbox"), str(REPO / "site.yml"),
        "-e", f"tfserving_models_export_base={export}",
        "-e", f"tfserving_verify_export_base={export}",
        "-e", f"tfserving_image_archive_path={ARCHIVE}",
    ]  # fmt: skip


def rollout_args(export: Path, run_id: str, *extra: str) -> list[str]:
    return [
        "-i", str(REPO / "inventories/sandbox"), str(REPO / "playbooks/rollout.yml"),
        "-e", f"tfserving_models_export_base={export}",
        "-e", f"tfserving_verify_export_base={export}",
        "-e", f"tfserving_image_archive_path={ARCHIVE}",
        "-e", f"tfserving_rollout_report_dir={REPO / 'artifacts/lb/rollout'}",
        "-e", f"tfserving_rollout_run_id={run_id}",
        "-e", "tfserving_verify_wait_seconds=240",
        *extra,
    ]  # fmt: skip


def test_front_door_answers_and_every_server_is_up(fleet: Path) -> None:
    assert wait_for(all_up, 120), servers_status()
    load = Load(LoadSpec(**{**FRONT.__dict__, "max_requests": 200, "interval_s": 0}))
    load.start().wait()
    report = load.report()
    assert report["failed"] == 0 and report["requests"] == 200, report
    # Per-request balancing: the gRPC requests of one channel reached every host.
    assert all(int(stat()[("tfs_grpc", h)]["stot"]) > 0 for h in HOSTS), stat()
    listening = docker("exec", LB, "ss", "-ltnH").stdout
    assert "127.0.0.1:8404" in listening and "0.0.0.0:8404" not in listening, listening
    metrics = docker("exec", LB, "curl", "-sf", "http://127.0.0.1:8404/metrics").stdout
    assert 'haproxy_server_status{proxy="tfs_rest",server="tfs-fleet-lbt-1"' in metrics
    mode = docker("exec", LB, "stat", "-c", "%a %G", SOCKET).stdout.split()
    assert mode == ["660", "haproxy"], mode


def test_health_check_needs_the_pinned_version(fleet: Path) -> None:
    """Pinned to version 1 (served): UP, and the reload under load drops nothing; pinned to
    version 2 (not on any host): every server DOWN; back to the default: UP."""
    with Load(FRONT) as load:
        pinned = playbook(
            "-i", str(REPO / "inventories/sandbox"), str(REPO / "playbooks/lb.yml"),
            "-e", '{"tfserving_lb_models": [{"name": "half_plus_two", "version": 1}]}',
        )  # fmt: skip
        time.sleep(3)
    assert pinned.returncode == 0, tail(pinned)
    assert load.report()["failed"] == 0, load.report()
    RESULTS["reload"] = {"load": load.report()}
    missing = playbook(
        "-i", str(REPO / "inventories/sandbox"), str(REPO / "playbooks/lb.yml"),
        "-e", '{"tfserving_lb_models": [{"name": "half_plus_two", "version": 2}]}',
        "-e", "tfserving_lb_wait_up_timeout_s=0",
    )  # fmt: skip
    assert missing.returncode == 0, tail(missing)
    assert wait_for(lambda: set(servers_status().values()) == {"DOWN"}, 30), servers_status()
    row = stat()[("tfs_rest", HOSTS[0])]
    assert row["check_status"] == "L7STS" and row["check_code"] == "404", row
    back = playbook("-i", str(REPO / "inventories/sandbox"), str(REPO / "playbooks/lb.yml"))
    assert back.returncode == 0, tail(back)
    assert all_up(), servers_status()


def test_killed_server_is_taken_out_and_comes_back(fleet: Path) -> None:
    """(c) kill -9 of host 2's serving process: DOWN within the check interval, failures
    counted, the restart policy brings the container back and the LB takes it back by itself."""
    assert wait_for(all_up, 60), servers_status()
    victim = HOSTS[1]
    with Load(FRONT) as load:
        time.sleep(5)
        load.mark("kill")
        pid = docker("exec", victim, "docker", "inspect", "-f", "{{.State.Pid}}", "tfserving")
        t0 = time.monotonic()
        docker("exec", victim, "kill", "-9", pid.stdout.strip())
        down = wait_for(lambda: stat()[("tfs_rest", victim)]["status"] == "DOWN", 30, poll=0.2)
        t_down = time.monotonic() - t0
        load.mark("out")
        back = wait_for(lambda: stat()[("tfs_rest", victim)]["status"] == "UP", 400, poll=1)
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
    assert down, stat()[("tfs_rest", victim)]
    # fall 2 checks at fastinter 0.5 s after the first failed one at inter 2 s, check timeout 2 s
    assert t_down <= 2 + 2 * 0.5 + 2 + 1.5, t_down
    assert back, stat()[("tfs_rest", victim)]
    assert report["phases"]["back"]["grpc"]["failed"] == 0, report
    assert report["phases"]["out"]["grpc"]["ok"] > 0, report


def test_rollout_recreating_every_container_fails_no_request(fleet: Path) -> None:
    """(a) a changed container setting (an environment variable) recreates the container on
    every host, canary first; each host is drained, updated, gated and undrained."""
    assert wait_for(all_up, 120), servers_status()
    before = container_ids()
    setting = json.dumps({"tfserving_env": {"TFS_FLEET_LB_TEST": str(time.time_ns())}})
    with Load(FRONT) as load:
        time.sleep(10)
        load.mark("during")
        run = playbook(*rollout_args(fleet, f"a-{time.time_ns()}", "-e", setting))
        load.mark("after")
        time.sleep(5)
    report = load.report()
    RESULTS["a_recreate_all"] = {"load": report, "rollout_s": None}
    save_figures()
    assert run.returncode == 0, tail(run)
    after = container_ids()
    assert all(after[h] and after[h] != before[h] for h in HOSTS), (before, after)
    assert report["failed"] == 0, report
    assert report["phases"]["during"]["grpc"]["ok"] > 50, report
    assert all_up(), servers_status()
    assert set(admin_states().values()) == {0}, admin_states()  # none left drained


def test_bad_version_stops_at_the_canary_without_failed_requests(fleet: Path) -> None:
    """(b) version 2 answers wrong: the canary's gate fails while it is drained, it is rolled
    back to version 1 and undrained after the rollback's check; the other hosts are untouched."""
    assert wait_for(all_up, 120), servers_status()
    export_models(fleet, "bad:2")
    try:
        with Load(FRONT) as load:
            time.sleep(5)
            load.mark("during")
            run = playbook(*rollout_args(fleet, f"b-{time.time_ns()}"))
            load.mark("after")
            time.sleep(5)
    finally:
        subprocess.run(["rm", "-rf", str(fleet / "half_plus_two" / "2")], check=True)
    report = load.report()
    RESULTS["b_bad_version"] = {"load": report}
    save_figures()
    assert run.returncode != 0, tail(run)
    assert "rolled-back" in run.stdout, tail(run)
    assert report["failed"] == 0, report
    assert wait_for(all_up, 60), servers_status()
    assert set(admin_states().values()) == {0}, admin_states()
