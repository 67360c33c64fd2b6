"""The pure parts of `make bench`'s distribution figures (src/tfs_bench/distribution.py): the
network's bridge, the counters over the image play, the figures; and the fleet's
generated-file arguments (src/tfs_bench/fleet.py). No fleet."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfs_bench import cli
from tfs_bench.distribution import (
    IMAGE_PLAY,
    Converge,
    Counters,
    bridge_name,
    distribution_figures,
)
from tfs_bench.fleet import REGISTRY_PORT, BenchFleet, fleet_var_args
from tfs_bench.server import BenchError

PLAYS = ["Preflight", "Registry - the fleet's image registry", IMAGE_PLAY, "Models - sync"]


def test_bridge_name_of_a_network() -> None:
    assert bridge_name("381f3db243cc0a1b2c3d\n") == "br-381f3db243cc"
    for bad in ("", "381f3db243c", "tfs-fleet-bench", "381F3DB243CC00"):
        with pytest.raises(BenchError):
            bridge_name(bad)


def test_counters_over_the_image_play() -> None:
    counters = Counters({
        "Preflight": (1_000, 50), "Registry - the fleet's image registry": (5_000, 60),
        IMAGE_PLAY: (9_000, 70), "Models - sync": (2_809_000, 900_000_070), "": (3_000_000, 1),
    })  # fmt: skip
    # From the image play's start to the next play's start, not to the run's end.
    assert counters.play_bytes(IMAGE_PLAY, PLAYS) == (2_800_000, 900_000_000)
    # The last play runs to the reading at the end.
    last = Counters({"Models - sync": (10, 10), "": (25, 12)})
    assert last.play_bytes("Models - sync", PLAYS) == (15, 2)
    with pytest.raises(BenchError, match="did not run"):
        Counters({"Preflight": (1, 1)}).play_bytes(IMAGE_PLAY, ["Preflight"])
    with pytest.raises(BenchError, match="no reading after"):
        Counters({IMAGE_PLAY: (1, 1)}).play_bytes(IMAGE_PLAY, PLAYS)
    with pytest.raises(BenchError, match="backwards"):
        Counters({IMAGE_PLAY: (5, 1), "": (4, 1)}).play_bytes(IMAGE_PLAY, PLAYS)


def test_bridge_counts_what_the_machine_sends_into_a_network() -> None:
    """On a machine with Docker networks: every br-* counter the module would read is a number
    that only grows (read twice)."""
    bridges = sorted(Path("/sys/class/net").glob("br-*"))
    for bridge in bridges[:3]:
        first = int((bridge / "statistics" / "tx_bytes").read_text())
        assert int((bridge / "statistics" / "tx_bytes").read_text()) >= first >= 0


def test_figures_per_host_and_a_ratio() -> None:
    runs = [
        Converge("archive", 600.0, 6, 6 * 935_000_000, 0, 6 * 1_000_000_000),
        Converge("pull", 420.0, 6, 6 * 2_000_000, 6 * 290_000_000, 6 * 70_000_000),
    ]
    figs = {f.name: f for f in distribution_figures(runs, 932_000_000, {"seconds": 27.0})}
    assert figs["dist_archive_bytes_per_host"].value == 935_000_000
    assert figs["dist_pull_bytes_per_host"].value == 2_000_000
    assert figs["dist_pull_bytes_per_host"].met
    pull = figs["dist_pull_bytes_per_host"].detail
    assert pull["registry_tx_bytes_per_host"] == 290_000_000
    assert pull["converge_bridge_tx_bytes_per_host"] == 70_000_000
    assert pull["push"] == {"seconds": 27.0}
    assert figs["dist_converge_archive_s"].value == 600.0
    assert figs["dist_converge_pull_vs_archive_ratio"].value == 0.7
    assert figs["dist_converge_pull_vs_archive_ratio"].met
    # A "pull" that still sent the image from the controller misses its goal.
    runs[1] = Converge("pull", 420.0, 6, 6 * 935_000_000, 0, 0)
    figs = {f.name: f for f in distribution_figures(runs, 932_000_000, {})}
    assert figs["dist_pull_bytes_per_host"].missed
    with pytest.raises(BenchError, match="one archive and one pull"):
        distribution_figures(runs[:1], 1, {})


def test_fleet_var_args_name_only_files_that_exist(tmp_path: Path) -> None:
    assert fleet_var_args(tmp_path) == []
    (tmp_path / "vault-password").write_text("x\n")
    (tmp_path / "registry.vault.yml").write_text("x\n")
    (tmp_path / "image.yml").write_text("x\n")
    assert fleet_var_args(tmp_path) == [
        "--vault-password-file", str(tmp_path / "vault-password"),
        "-e", f"@{tmp_path / 'registry.vault.yml'}", "-e", f"@{tmp_path / 'image.yml'}",
    ]  # fmt: skip


def test_the_bench_fleet_has_a_registry_host_on_its_own_port(tmp_path: Path) -> None:
    fleet = BenchFleet(hosts=6, lb=False, export_base=tmp_path, out=tmp_path)
    args = fleet.sandbox_args()
    assert "sandbox_registry=true" in args and f"sandbox_registry_port={REGISTRY_PORT}" in args
    assert "sandbox_monitoring=false" in args


def test_cli_runs_distribution_first_among_the_fleet_parts() -> None:
    args = cli.parse_args([])
    fleet_parts = [p for p in args.parts if p in cli.FLEET_PARTS]
    assert fleet_parts == ["distribution", "rerun", "rollout", "sync"]
    assert cli.parse_args(["--only", "distribution"]).parts == ["distribution"]
    assert "dist_pull_bytes_per_host" in cli.unselected_reasons(cli.parse_args(["--only", "rerun"]))
