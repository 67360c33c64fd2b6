"""The control-plane part of `make bench` (src/tfs_bench/control_plane.py, light_hosts.py,
playbooks/control_plane_*.yml): the fit and the extrapolation, the recap check, the batches
and soak waves of serial, the options, the inventory, the plot. No Docker, except the one test
marked docker: 3 light hosts, both paths once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tfs_bench import cli
from tfs_bench.control_plane import (
    CpRun,
    batches,
    control_plane_figures,
    extrapolate,
    fit_line,
    fits,
    parse_forks,
    parse_hosts,
    parse_paths,
    parse_strategies,
    project_forks,
    run_problem,
    soak_waves,
)
from tfs_bench.light_hosts import (
    MAX_HOSTS,
    inventory_yaml,
    known_hosts_line,
    record_json,
    status_json,
)
from tfs_bench.server import BenchError

RECAP_OK = """\
PLAY RECAP *********************************************************************
localhost                  : ok=3    changed=1    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0
tfs-fleet-light-1          : ok=34   changed=4    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0
tfs-fleet-light-2          : ok=34   changed=4    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0
"""  # noqa: E501
RECAP_UNREACHABLE = """\
PLAY RECAP *********************************************************************
tfs-fleet-light-1          : ok=34   changed=4    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0
tfs-fleet-light-2          : ok=1    changed=0    unreachable=1    failed=0    skipped=0    rescued=0    ignored=0
"""  # noqa: E501
HOSTS = ["tfs-fleet-light-1", "tfs-fleet-light-2"]


def runs_on_a_line(a: float, b: float, counts: list[int]) -> list[CpRun]:
    out = []
    for strategy, forks, slower in (("linear", 5, 1.0), ("free", 20, 0.5)):
        for path in ("rollout", "verify"):
            scale = slower * (1.0 if path == "rollout" else 0.1)
            out += [CpRun(path, n, strategy, forks, scale * (a + b * n)) for n in counts]
    return out


def test_fit_line_recovers_a_line_and_least_squares() -> None:
    a, b = fit_line([(4, 10.0 + 4 * 2.5), (8, 10.0 + 8 * 2.5), (32, 10.0 + 32 * 2.5)])
    assert a == pytest.approx(10.0) and b == pytest.approx(2.5)
    # Not on a line: the least-squares answer (x 0, 1, 2; y 0, 2, 1): b 0.5, a 0.5.
    a, b = fit_line([(0, 0.0), (1, 2.0), (2, 1.0)])
    assert (a, b) == (pytest.approx(0.5), pytest.approx(0.5))
    with pytest.raises(ValueError, match="two different x"):
        fit_line([(4, 1.0), (4, 2.0)])
    with pytest.raises(ValueError):
        fit_line([])


def test_extrapolation_to_1000_hosts() -> None:
    assert extrapolate((10.0, 2.5), 1000) == pytest.approx(2510.0)
    lines = fits(runs_on_a_line(10.0, 2.5, [4, 8]))
    assert [(f.path, f.strategy, f.forks) for f in lines] == [
        ("rollout", "linear", 5), ("verify", "linear", 5),
        ("rollout", "free", 20), ("verify", "free", 20),
    ]  # fmt: skip
    assert lines[0].estimate_s == pytest.approx(2510.0)
    assert lines[2].estimate_s == pytest.approx(1255.0)
    assert lines[0].as_dict()["at_1000_hosts_s"] == 2510.0
    # The controller's CPU seconds, fitted the same way; runs without them are left out.
    with_cpu = [CpRun("verify", n, "linear", 5, 99.0, 1.0 + 0.5 * n) for n in (4, 8)]
    cpu_line = fits([*with_cpu, CpRun("verify", 16, "linear", 5, 99.0)], cpu=True)[0]
    assert (cpu_line.a, cpu_line.b, cpu_line.points) == (pytest.approx(1.0), pytest.approx(0.5), 2)


def test_figures_take_the_project_setting_and_say_estimate() -> None:
    assert project_forks() == 20, "ansible.cfg's forks"
    runs = runs_on_a_line(10.0, 2.5, [4, 8])
    figs = {f.name: f for f in control_plane_figures(runs, ("free", 20))}
    rollout = figs["control_plane_rollout_1000host_s"]
    verify = figs["control_plane_verify_1000host_s"]
    assert rollout.value == pytest.approx(1255.0) and verify.value == pytest.approx(125.5)
    assert rollout.detail["setting"] == "free, forks 20" and rollout.detail["estimate"] is True
    assert rollout.status == "estimate: free, forks 20, a line fitted on 4-8 light hosts"
    # Without the project's setting (linear, forks 20) in the sweep: the first one measured.
    first = control_plane_figures(runs)[0]
    assert first.detail["setting"] == "linear, forks 5" and first.value == pytest.approx(2510.0)
    assert len(rollout.detail["fits"]) == 2 and len(rollout.detail["runs"]) == 4
    assert rollout.spec.goal is None and "estimate" in rollout.spec.what
    assert rollout.met and not rollout.missed
    only = control_plane_figures([r for r in runs_on_a_line(1, 1, [4, 8]) if r.path == "rollout"])
    assert [f.name for f in only] == ["control_plane_rollout_1000host_s"]
    with pytest.raises(BenchError, match="no runs"):
        control_plane_figures([])


def test_a_line_that_does_not_grow_gives_no_estimate() -> None:
    # Measured: verify linear, forks 20: 2.78 s on 4 hosts, 2.32 s on 8 (about -112 s at 1,000).
    runs = [
        CpRun("verify", 4, "linear", 20, 2.78),
        CpRun("verify", 8, "linear", 20, 2.32),
        CpRun("rollout", 4, "linear", 20, 33.6),
        CpRun("rollout", 8, "linear", 20, 38.7),
    ]
    figs = {f.name: f for f in control_plane_figures(runs)}
    verify = figs["control_plane_verify_1000host_s"]
    assert verify.value is None and not verify.met and not verify.missed
    assert verify.status.startswith("not estimated: on 4-8 light hosts the time of linear, forks")
    assert "-0.115 s/host" in verify.status and "--cp-hosts 8,32" in verify.status
    assert verify.detail["fits"][0]["at_1000_hosts_s"] == pytest.approx(-111.8, abs=0.1)
    assert verify.as_dict()["value"] is None
    # The rollout's line grows: an estimate, as before.
    assert figs["control_plane_rollout_1000host_s"].value == pytest.approx(1303.5, abs=0.1)


def test_recap_check_fails_on_an_unreachable_host() -> None:
    assert run_problem(0, RECAP_OK, HOSTS) is None
    problem = run_problem(0, RECAP_UNREACHABLE, HOSTS)
    assert problem is not None and "tfs-fleet-light-2 failed=0 unreachable=1" in problem
    assert "tfs-fleet-light-1" not in problem
    assert "exited 2" in str(run_problem(2, RECAP_OK, HOSTS))
    missing = run_problem(0, RECAP_OK, [*HOSTS, "tfs-fleet-light-3"])
    assert "tfs-fleet-light-3 not in the recap" in str(missing)
    assert "no PLAY RECAP" in str(run_problem(4, "ERROR! the playbook could not be found", HOSTS))


def test_batches_and_soak_waves_of_the_rollout_serial() -> None:
    assert batches(1000) == [1, 250, 749]
    assert batches(4) == [1, 1, 2]
    assert batches(2) == [1, 1]
    assert batches(7, [2]) == [2, 2, 2, 1]
    # Soak waits run at most forks at a time: 1 + ceil(250 / 20) + ceil(749 / 20).
    assert soak_waves(1000, 20) == 1 + 13 + 38
    assert soak_waves(1000, 1000) == 3
    assert soak_waves(8, 5) == 1 + 1 + 1


def test_option_parsing() -> None:
    assert parse_hosts("12, 4") == [4, 12]
    assert parse_forks("5,20") == [5, 20]
    assert parse_strategies("linear,free,linear") == ["linear", "free"]
    for bad in ("4", "4,x", "4,4", "0,8", f"4,{MAX_HOSTS + 1}", "", "4,-8"):
        with pytest.raises(ValueError):
            parse_hosts(bad)
    for bad in ("0", "5,0", "five", ""):
        with pytest.raises(ValueError):
            parse_forks(bad)
    with pytest.raises(ValueError, match="choose from"):
        parse_strategies("linear,mitogen")
    assert parse_paths("verify,rollout") == ["rollout", "verify"]
    with pytest.raises(ValueError, match="choose from"):
        parse_paths("deploy")


def test_cli_control_plane_options() -> None:
    assert cli.main(["--only", "control_plane", "--cp-hosts", "8"]) == cli.EXIT_USAGE
    assert cli.main(["--only", "control_plane", "--cp-hosts", "4,abc"]) == cli.EXIT_USAGE
    assert cli.main(["--only", "control_plane", "--cp-forks", "0"]) == cli.EXIT_USAGE
    assert cli.main(["--only", "control_plane", "--cp-strategies", "fast"]) == cli.EXIT_USAGE
    assert cli.main(["--no-fleet", "--only", "control_plane"]) == cli.EXIT_USAGE
    args = cli.parse_args(["--only", "control_plane", "--cp-hosts", "48,8,16,32",
                           "--cp-forks", "5,50", "--cp-strategies", "free"])  # fmt: skip
    assert args.parts == ["control_plane"]
    assert args.cp_host_counts == [8, 16, 32, 48] and args.cp_fork_counts == [5, 50]
    assert args.cp_strategy_list == ["free"]
    assert cli.parse_args([]).parts[-1] == "control_plane", "after the fleet parts"
    assert "control_plane" not in cli.parse_args(["--no-fleet"]).parts
    reasons = cli.unselected_reasons(cli.parse_args(["--no-fleet"]))
    assert reasons["control_plane_rollout_1000host_s"] == cli.CP_NO_FLEET_REASON


def test_inventory_and_host_files() -> None:
    addresses = {f"tfs-fleet-light-{n}": f"172.17.0.{n + 7}" for n in (1, 2, 3)}
    inventory = json.loads(inventory_yaml(3, Path("/keys"), addresses))
    light = inventory["all"]["children"]["light"]
    assert list(light["hosts"]) == [f"tfs-fleet-light-{n}" for n in (1, 2, 3)]
    assert light["hosts"]["tfs-fleet-light-2"] == {
        "ansible_host": "172.17.0.9", "ansible_port": 22, "light_rest_endpoint": "172.17.0.9:8501",
    }  # fmt: skip
    assert light["vars"]["ansible_user"] == "ops"
    assert light["vars"]["ansible_ssh_private_key_file"] == "/keys/id_ed25519"
    assert "UserKnownHostsFile=/keys/known_hosts" in light["vars"]["ansible_ssh_common_args"]
    assert inventory["all"]["children"]["canary"]["hosts"] == {"tfs-fleet-light-1": {}}
    with pytest.raises(ValueError):
        inventory_yaml(0)
    with pytest.raises(ValueError, match="without an address"):
        inventory_yaml(4, Path("/keys"), addresses)
    line = known_hosts_line("172.17.0.12", "ssh-ed25519 AAAAC3 root@x")
    assert line == "172.17.0.12 ssh-ed25519 AAAAC3"
    with pytest.raises(BenchError):
        known_hosts_line("172.17.0.12", "garbage")
    status = json.loads(status_json(7))["model_version_status"]
    assert status == [{"version": "7", "state": "AVAILABLE",
                       "status": {"error_code": "OK", "error_message": ""}}]  # fmt: skip
    assert json.loads(record_json(1))["current"]["models"] == {"half_plus_two": [1]}


def test_plot_is_written(tmp_path: Path) -> None:
    from tfs_bench import plots

    runs = runs_on_a_line(10.0, 2.5, [4, 8, 16])
    path = plots.control_plane_lines(runs, fits(runs), tmp_path / "bench" / "control_plane.png")
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


# The benchmark's own harness, end to end: `make test-bench` (and `make bench`, whose control-plane
# figures run the same sweep on 4 and 8 hosts), not `make test`: it measures no product behaviour.
@pytest.mark.docker
@pytest.mark.bench
def test_three_light_hosts_both_paths(tmp_path: Path) -> None:
    from tfs_bench.control_plane import sweep
    from tfs_bench.light_hosts import docker_available, leftover_containers

    if not docker_available():
        pytest.fail("no Docker engine answers (the docker tests need one)")
    runs = sweep([3], ["linear"], [2], tmp_path, progress=lambda line: None)
    assert [(r.path, r.hosts, r.forks) for r in runs] == [("rollout", 3, 2), ("verify", 3, 2)]
    assert all(r.seconds > 0 for r in runs)
    for log in ("rollout-3h-linear-f2.log", "verify-3h-linear-f2.log"):
        output = (tmp_path / log).read_text()
        assert run_problem(0, output, [f"tfs-fleet-light-{n}" for n in (1, 2, 3)]) is None
    assert "changed=" in (tmp_path / "rollout-3h-linear-f2.log").read_text()
    assert not leftover_containers(), "the light hosts are removed at the end"
