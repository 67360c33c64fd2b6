"""The pure parts of `make bench`'s fleet figures (src/tfs_bench/fleet.py, sync.py, rollout.py):
the recap and profile_tasks parsing, the idempotence check, the host-side byte counts, the
padded version, the ratios and the p99 windows, and the CLI's fleet options. No Docker, no
fleet, no TensorFlow."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from ansible_collections.tfs_fleet.common.plugins.module_utils import model_manifest

from tfs_bench import cli
from tfs_bench.figures import NO_FLEET_REASON, SPECS, complete
from tfs_bench.fleet import (
    PORTS,
    SANDBOX_DIR,
    BenchFleet,
    Rerun,
    idempotence_problem,
    profile_tasks,
    recap,
    recap_changed,
    rerun_figures,
    serving_hosts,
    task_seconds,
)
from tfs_bench.rollout import Call, Span, in_span, parse_stat, rollout_figures
from tfs_bench.server import BenchError
from tfs_bench.sync import (
    PADDING,
    SyncRound,
    bytes_written,
    pad_version,
    parse_snapshot,
    rsync_bytes_sent,
    sync_figures,
)

RECAP = """\
PLAY [Verification - smoke test] ***********************************************

PLAY RECAP *********************************************************************
localhost                  : ok=3    changed=0    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0
tfs-fleet-bench-1          : ok=97   changed=0    unreachable=0    failed=0    skipped=60   rescued=0    ignored=0
tfs-fleet-bench-2          : ok=97   changed=2    unreachable=0    failed=0    skipped=60   rescued=0    ignored=0
tfs-fleet-bench-3          : ok=12   changed=0    unreachable=1    failed=0    skipped=0    rescued=0    ignored=0
"""  # noqa: E501


def profile_line(name: str, seconds: float, columns: int = 80) -> str:
    """A line as ansible.posix.profile_tasks writes it (its format string)."""
    return "{0:-<{2}}{1:->9}".format(name + " ", f" {seconds:.02f}s", columns - 9)


def test_recap_parsed_per_host() -> None:
    stats = recap(RECAP)
    assert stats["tfs-fleet-bench-1"] == {
        "ok": 97, "changed": 0, "unreachable": 0, "failed": 0, "skipped": 60, "rescued": 0,
        "ignored": 0,
    }  # fmt: skip
    assert recap_changed(RECAP) == {
        "localhost": 0, "tfs-fleet-bench-1": 0, "tfs-fleet-bench-2": 2, "tfs-fleet-bench-3": 0
    }  # fmt: skip
    assert recap("no recap at all") == {}
    # Only the last recap counts (a run that includes another's output).
    assert recap_changed(RECAP + RECAP.replace("changed=2", "changed=0"))["tfs-fleet-bench-2"] == 0


def test_idempotence_problem() -> None:
    assert idempotence_problem(0, RECAP, ["tfs-fleet-bench-1"]) is None
    assert "changed=2" in str(idempotence_problem(0, RECAP, ["tfs-fleet-bench-2"]))
    assert "unreachable=1" in str(idempotence_problem(0, RECAP, ["tfs-fleet-bench-3"]))
    assert "not in the recap" in str(idempotence_problem(0, RECAP, ["tfs-fleet-bench-9"]))
    assert "exited 2" in str(idempotence_problem(2, RECAP, ["tfs-fleet-bench-1"]))
    assert idempotence_problem(0, "", []) is None


def test_profile_tasks_parsed_slowest_first() -> None:
    long = "tfserving_models : Verify the staged versions against their manifests and publish them"
    output = "\n".join([
        "PLAY RECAP ***", RECAP, "TASKS RECAP ********************************",
        "Tuesday 02 December 2025  18:40:01 +0000 (0:00:00.101)       0:01:05.002 *****",
        "=" * 79,
        profile_line("docker : Install the engine packages", 3.5),
        profile_line("Gathering Facts", 12.25),
        profile_line(long, 101.0),
        profile_line("tfserving_verify : Smoke-test - host - gRPC", 0.4),
    ])  # fmt: skip
    rows = profile_tasks(output)
    assert rows[0] == (long, 101.0)
    assert rows[1:] == [
        ("Gathering Facts", 12.25),
        ("docker : Install the engine packages", 3.5),
        ("tfserving_verify : Smoke-test - host - gRPC", 0.4),
    ]
    assert task_seconds(rows, "Verify the staged versions") == 101.0
    assert task_seconds(rows, "Gathering") == 12.25
    assert task_seconds(rows, "no such task") is None
    assert profile_tasks(RECAP) == []


def test_snapshot_bytes_written() -> None:
    before = parse_snapshot(
        "12 100 1700000000.1 1/saved_model.pb\n13 5 1700000000.2 1/variables/v.index\nbad line\n"
    )
    assert before == {
        "1/saved_model.pb": (12, 100, "1700000000.1"),
        "1/variables/v.index": (13, 5, "1700000000.2"),
    }
    assert bytes_written(before, before) == 0
    after = dict(before)
    after["2/assets/padding.bin"] = (20, 1 << 30, "1700000100.0")  # new file
    after["1/variables/v.index"] = (13, 5, "1700000101.0")  # rewritten in place
    assert bytes_written(before, after) == (1 << 30) + 5
    moved = {"2/a b.bin": (12, 100, "1700000000.1")}  # renamed into place: a new path
    assert parse_snapshot("12 100 1700000000.1 2/a b.bin\n") == moved
    assert bytes_written(before, moved) == 100


def test_rsync_stats() -> None:
    stats = "Number of files: 9\nTotal bytes sent: 1,073,889,123\nTotal bytes received: 220\n"
    assert rsync_bytes_sent(stats) == 1_073_889_123
    assert rsync_bytes_sent("nothing") is None


def test_padded_version_passes_the_roles_manifest_check(tmp_path: Path) -> None:
    version = tmp_path / "half_plus_two" / "2"
    (version / "variables").mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"pb")
    files = {"saved_model.pb": {"sha256": hashlib.sha256(b"pb").hexdigest(), "size": 2}}
    (version / "tfs_fleet_manifest.json").write_text(json.dumps({"files": files}))
    size = pad_version(version, 2, chunk=300_000)  # several chunks, the last one short
    assert size == 2 * 1024 * 1024 == (version / PADDING).stat().st_size
    count, problems = model_manifest.verify(str(version))
    assert (count, problems) == (2, [])
    data = (version / PADDING).read_bytes()
    assert data[:300_000] != data[300_000:600_000], "random, not one chunk repeated"
    with pytest.raises(ValueError):
        pad_version(version, 0)


def rerun_runs() -> list[Rerun]:
    return [
        Rerun("1 host, project", 1, "project", 40.0, [("Gathering Facts", 5.0)]),
        Rerun("1 host, stock", 1, "stock", 160.0, []),
        Rerun("6 hosts, project", 6, "project", 120.0, []),
        Rerun("1 host, project", 1, "project", 50.0, []),
        Rerun("1 host, stock", 1, "stock", 150.0, []),
        Rerun("6 hosts, project", 6, "project", 100.0, []),
    ]


def test_rerun_figures_are_ratios_of_medians() -> None:
    figs = {f.name: f for f in rerun_figures(rerun_runs())}
    assert figs["rerun_1host_s"].value == 45.0
    assert figs["rerun_1host_s"].detail["top_tasks"] == [["Gathering Facts", 5.0]]
    assert figs["rerun_6host_s"].value == 110.0
    assert figs["rerun_scaling_ratio"].value == round(110 / 45, 3)
    assert figs["rerun_scaling_ratio"].missed  # goal <= 1.5
    assert figs["rerun_vs_stock_ratio"].value == round(45 / 155, 3)
    assert figs["rerun_vs_stock_ratio"].met  # goal <= 0.5
    with pytest.raises(BenchError):
        rerun_figures([r for r in rerun_runs() if r.settings != "stock"])


def test_sync_figures() -> None:
    rounds = [
        SyncRound(["role", "rsync"], 30.0, 10.0, 6.0, 1 << 30, 0, 1 << 30, 1 << 30, 40_000),
        SyncRound(["rsync", "role"], 34.0, 12.0, 7.0, 1 << 30, 0, 1 << 30, 1 << 30, 41_000),
    ]
    figs = {f.name: f for f in sync_figures(rounds, 1 << 30)}
    assert figs["sync_vs_rsync_ratio"].value == round(32 / 11, 3)
    assert figs["sync_vs_rsync_ratio"].detail["rsync_task_vs_rsync_ratio"] is None  # no profile
    assert figs["resync_bytes"].value == 0 and figs["resync_bytes"].met
    assert figs["resync_bytes"].detail["eth0_rx_bytes"] == [40_000, 41_000]
    assert figs["resync_vs_full_ratio"].value == round(6.5 / 32, 4)
    for r, seconds in zip(rounds, (10.5, 12.5), strict=True):
        r.role_tasks = {"transfer": seconds}
    inside = sync_figures(rounds, 1 << 30)[0].detail["rsync_task_vs_rsync_ratio"]
    assert inside == round(11.5 / 11, 3)
    rounds[1].resync_bytes_written = 512
    assert sync_figures(rounds, 1 << 30)[1].value == 512  # the worst round counts
    with pytest.raises(BenchError):
        sync_figures([], 1)


def test_rollout_windows_and_p99() -> None:
    steady, during = Span("steady", 0.0, 10.0), Span("rollout", 10.0, 30.0)
    calls = [Call(t * 0.1, 2.0 + (t % 100) / 100, "grpc") for t in range(100)]  # steady
    calls += [Call(10 + t * 0.1, 5.0 if t % 50 else 40.0, "rest") for t in range(200)]
    calls += [Call(29.5, 1.0, "grpc", error="UNAVAILABLE"), Call(31.0, 1.0, "grpc")]
    assert len(in_span(calls, steady)) == 100 and len(in_span(calls, during, "grpc")) == 1
    figs = {f.name: f for f in rollout_figures(calls, steady, during)}
    failed, p99 = figs["rollout_failed_requests"], figs["rollout_p99_ratio"]
    assert failed.value == 1 and failed.detail["failed_in_rollout_window"] == 1
    assert p99.detail["p99_steady_ms"] == 2.98
    assert p99.detail["p99_rollout_ms"] == 40.0  # 4 of 200 slow calls: above the 99th rank
    assert p99.value == round(40.0 / 2.98, 3) and p99.missed
    assert p99.detail["calls_steady"] == 100 and p99.detail["calls_rollout"] == 201
    # A call after the rollout counts in neither window; one before the steady window neither.
    assert p99.detail["per_kind"] == {}  # no kind has calls in both windows
    with pytest.raises(BenchError):
        rollout_figures([Call(1.0, 1.0, "grpc")], steady, during)


def test_haproxy_show_stat_parsed() -> None:
    text = (
        "# pxname,svname,qcur,status,check_status\n"
        "tfs_grpc,FRONTEND,,OPEN,\n"
        "tfs_grpc,tfs-fleet-bench-1,0,UP,L7OK\n"
        "tfs_rest,tfs-fleet-bench-1,0,DOWN,L7STS\n\n"
    )
    rows = parse_stat(text)
    assert [(r["pxname"], r["svname"], r["status"]) for r in rows] == [
        ("tfs_grpc", "FRONTEND", "OPEN"),
        ("tfs_grpc", "tfs-fleet-bench-1", "UP"),
        ("tfs_rest", "tfs-fleet-bench-1", "DOWN"),
    ]
    assert parse_stat("") == [] and parse_stat("Unknown command\n") == []


def test_the_bare_rsync_uses_the_roles_ssh(tmp_path: Path) -> None:
    fleet = BenchFleet(hosts=6, lb=True, export_base=tmp_path, out=tmp_path)
    ssh = fleet.ssh_command("tfs-fleet-bench-3")
    assert ssh[:3] == ["ssh", "-S", "none"], "synchronize's default: no multiplexing"
    assert f"Port={PORTS['ssh'] + 3}" in ssh
    assert f"UserKnownHostsFile={SANDBOX_DIR / 'known_hosts'}" in ssh
    assert "ControlPersist=120s" in ssh and "IdentitiesOnly=yes" in ssh
    assert f"Port={PORTS['ssh']}" in fleet.ssh_command("tfs-fleet-bench-lb")
    assert serving_hosts(2) == ["tfs-fleet-bench-1", "tfs-fleet-bench-2"]
    args = fleet.sandbox_args()
    assert "sandbox_host_count=6" in args and "sandbox_lb=true" in args
    assert "sandbox_ssh_port_base=37400" in args and "sandbox_rest_port_base=37600" in args


def test_cli_fleet_options() -> None:
    assert cli.main(["--no-fleet", "--only", "rerun"]) == cli.EXIT_USAGE
    assert cli.main(["--only", "rerun", "--fleet-hosts", "3"]) == cli.EXIT_USAGE
    assert cli.main(["--fleet-hosts", "10"]) == cli.EXIT_USAGE
    assert cli.main(["--rerun-repeat", "0"]) == cli.EXIT_USAGE
    assert cli.main(["--sync-rounds", "6"]) == cli.EXIT_USAGE
    assert cli.main(["--sync-mib", "0"]) == cli.EXIT_USAGE
    assert cli.main(["--rollout-steady", "0"]) == cli.EXIT_USAGE
    args = cli.parse_args(["--only", "sync,client_vs_stub", "--fleet-hosts", "2"])
    assert args.parts == ["client_vs_stub", "sync"], "the order they run in"
    assert cli.parse_args([]).parts == list(cli.PARTS)
    no_fleet = cli.parse_args(["--no-fleet"])
    assert no_fleet.parts == list(cli.LOCAL_PARTS)
    reasons = cli.unselected_reasons(no_fleet)
    fleet_figures = {n for p in cli.FLEET_PARTS for n in cli.PART_FIGURES[p]}
    docker_figures = {n for p in cli.DOCKER_PARTS for n in cli.PART_FIGURES[p]}
    assert set(reasons) == fleet_figures | docker_figures
    assert {reasons[n] for n in fleet_figures} == {NO_FLEET_REASON}
    figures = complete({}, reasons)
    for fig in figures:
        if fig.name in fleet_figures:
            assert fig.status == f"not measured: {NO_FLEET_REASON}" and fig.value is None
    only = cli.unselected_reasons(cli.parse_args(["--only", "rollout"]))
    assert "rollout_p99_ratio" not in only
    assert only["rerun_1host_s"] == "not selected in this run (--only)"
    assert {n for names in cli.PART_FIGURES.values() for n in names} == {s.name for s in SPECS}
