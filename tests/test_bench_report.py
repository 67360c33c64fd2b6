"""The pure parts of `make bench` (src/tfs_bench): statistics, goals, results.json, the markdown
table and its markers. No TensorFlow, no server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tfs_bench import cli, report
from tfs_bench.big_predict import GIB, big_predict_figure, check_answer, vm_hwm_bytes
from tfs_bench.figures import SANDBOX_REASON, SPECS, Goal, complete, measured, not_measured
from tfs_bench.server import BenchError
from tfs_bench.stats import median, percentile, ratio

from helpers import REPO

# Issue 16 names every figure results.json must carry; big_predict_peak_rss_gib (the stand-in's
# memory for a 400 MB Predict) moved here from a test's bound.
ISSUE_FIGURES = {
    "rerun_1host_s", "rerun_6host_s", "rerun_scaling_ratio", "rerun_vs_stock_ratio",
    "sync_vs_rsync_ratio", "resync_bytes", "resync_vs_full_ratio", "client_vs_stub_ratio",
    "smoke_cold_start_ratio", "swap_failed_requests", "swap_p99_ratio",
    "big_predict_peak_rss_gib", "rollout_failed_requests", "rollout_p99_ratio",
    "control_plane_rollout_1000host_s", "control_plane_verify_1000host_s",
    # issue 25: the image's distribution, archive against pull
    "dist_archive_bytes_per_host", "dist_pull_bytes_per_host", "dist_converge_archive_s",
    "dist_converge_pull_s", "dist_converge_pull_vs_archive_ratio",
}  # fmt: skip


def test_median() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert median([7.0]) == 7.0
    with pytest.raises(ValueError):
        median([])


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # unsorted on purpose
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 50) == 50.0
    assert percentile([float(v) for v in range(1, 1001)], 99) == 990.0
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0], 1) == 1.0
    for bad in (0, -1, 101):
        with pytest.raises(ValueError):
            percentile([1.0], bad)
    with pytest.raises(ValueError):
        percentile([], 99)


def test_ratio() -> None:
    assert ratio(3.0, 2.0) == 1.5
    with pytest.raises(ValueError):
        ratio(1.0, 0.0)


def test_goals_and_met() -> None:
    assert Goal("<=", 1.2).met(1.2) and not Goal("<=", 1.2).met(1.21)
    assert Goal(">=", 2).met(3)
    with pytest.raises(ValueError):
        Goal("<", 1)
    assert measured("client_vs_stub_ratio", 1.1).met
    missed = measured("smoke_cold_start_ratio", 0.3)
    assert not missed.met and missed.missed
    assert measured("swap_failed_requests", 0).met and not measured("swap_failed_requests", 1).met
    unmeasured = not_measured("sync_vs_rsync_ratio", "no fleet")
    assert unmeasured.met is False and not unmeasured.missed
    assert measured("rerun_1host_s", 12.0).met, "a figure without a goal is met once measured"


def test_every_issue_figure_is_listed_and_never_made_up() -> None:
    assert {spec.name for spec in SPECS} == ISSUE_FIGURES
    figures = complete({"client_vs_stub_ratio": measured("client_vs_stub_ratio", 1.05)})
    assert [f.name for f in figures] == [spec.name for spec in SPECS]
    for fig in figures:
        if fig.name == "client_vs_stub_ratio":
            assert fig.value == 1.05 and fig.status == "measured"
        else:
            assert fig.value is None and fig.status.startswith("not measured: ")
            if fig.spec.needs_fleet:
                assert SANDBOX_REASON in fig.status
    with pytest.raises(ValueError):
        complete({"made_up": measured("client_vs_stub_ratio", 1.0)})


def test_results_json(tmp_path: Path) -> None:
    figures = complete({"swap_p99_ratio": measured("swap_p99_ratio", 2.5, p99_steady_ms=1.0)})
    path = report.write_json(tmp_path / "bench" / "results.json", report.results(figures, {"x": 1}))
    data = json.loads(path.read_text())
    assert data["meta"] == {"x": 1}
    assert set(data["figures"]) == ISSUE_FIGURES
    for name, entry in data["figures"].items():
        assert set(entry) >= {"value", "goal", "met", "units", "status"}, name
        assert isinstance(entry["met"], bool), name
    swap = data["figures"]["swap_p99_ratio"]
    assert swap["value"] == 2.5 and swap["met"] is False
    assert swap["goal"] == {"op": "<=", "limit": 2.0} and swap["detail"] == {"p99_steady_ms": 1.0}
    sync = data["figures"]["sync_vs_rsync_ratio"]
    assert sync["value"] is None and sync["status"].startswith("not measured: ")
    assert not list(path.parent.glob(".*.tmp")), "the temporary file is renamed away"


def test_markdown_table() -> None:
    figures = complete(
        {
            "client_vs_stub_ratio": measured("client_vs_stub_ratio", 1.1234),
            "swap_failed_requests": measured("swap_failed_requests", 3),
        }
    )
    lines = report.markdown_table(figures).splitlines()
    assert lines[0].startswith("| Figure |") and len(lines) == 2 + len(SPECS)
    row = {line.split("|")[1].strip(" `"): line for line in lines[2:]}
    assert "| 1.123 | ratio | <= 1.2 | yes |" in row["client_vs_stub_ratio"]
    assert "| 3 | requests | <= 0 | **no** |" in row["swap_failed_requests"]
    assert "| - | ratio | <= 1.1 | - | not measured: " in row["sync_vs_rsync_ratio"]


def test_markers_replaced_and_idempotent(tmp_path: Path) -> None:
    text = f"# t\n\nbefore\n{report.BEGIN}\nold\n{report.END}\nafter\n"
    once = report.replace_between_markers(text, "| new |")
    assert once == f"# t\n\nbefore\n{report.BEGIN}\n| new |\n{report.END}\nafter\n"
    assert report.replace_between_markers(once, "| new |\n") == once
    for broken in ("no markers", f"{report.END}\n{report.BEGIN}\n"):
        with pytest.raises(ValueError):
            report.replace_between_markers(broken, "x")
    doc = tmp_path / "bench.md"
    doc.write_text(text)
    report.update_doc(doc, "| t |")
    assert "| t |" in doc.read_text() and "old" not in doc.read_text()
    with pytest.raises(ValueError):
        report.update_doc(tmp_path / "missing.md", "x")
    # A new file of its own (make bench-control-plane): a title and the markers, then filled.
    fresh = tmp_path / "sweep" / "table.md"
    report.new_doc(fresh, "sweep")
    report.update_doc(fresh, "| s |")
    assert fresh.read_text() == f"# sweep\n\n{report.BEGIN}\n| s |\n{report.END}\n"


def test_doc_option_creates_only_a_file_it_names(tmp_path: Path) -> None:
    default = cli.parse_args([])
    assert default.doc == cli.DEFAULT_DOC and default.new_doc is False
    named = cli.parse_args(["--doc", str(tmp_path / "table.md")])
    assert named.doc == tmp_path / "table.md" and named.new_doc is True
    (tmp_path / "table.md").write_text("x")
    assert cli.parse_args(["--doc", str(tmp_path / "table.md")]).new_doc is False


def test_the_docs_page_carries_the_markers() -> None:
    text = (REPO / "docs" / "bench.md").read_text()
    assert text.index(report.BEGIN) < text.index(report.END)


def test_cli_usage_errors_exit_2() -> None:
    assert cli.main(["--only", "nope"]) == cli.EXIT_USAGE
    assert cli.main(["--calls", "1001", "--rounds", "20"]) == cli.EXIT_USAGE
    assert cli.main(["--swaps", "0"]) == cli.EXIT_USAGE


def test_help_is_fast_and_imports_no_tensorflow() -> None:
    code = (
        "import sys, runpy; sys.argv = ['bench.py', '--help']\n"
        "try:\n    runpy.run_path('scripts/bench.py', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "bad = [m for m in ('tensorflow', 'grpc', 'matplotlib') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "exit status" in proc.stdout and "--only" in proc.stdout


def test_big_predict_figure() -> None:
    """The stand-in's VmHWM before and after one 400 MB Predict -> the figure, in GiB."""
    fig = big_predict_figure(int(0.5 * GIB), int(2.75 * GIB), 4.567)
    assert fig.name == "big_predict_peak_rss_gib" and fig.value == 2.75 and fig.met
    assert fig.spec.units == "GiB" and str(fig.spec.goal) == "<= 3" and not fig.spec.needs_fleet
    assert fig.detail["baseline_gib"] == 0.5 and fig.detail["growth_gib"] == 2.25
    assert fig.detail["request_s"] == 4.57 and fig.detail["floats"] == 100_000_000
    assert big_predict_figure(GIB, int(3.02 * GIB), 1.0).missed
    with pytest.raises(ValueError):
        big_predict_figure(2 * GIB, GIB, 1.0)
    assert cli.PART_FIGURES["big_predict"] == ["big_predict_peak_rss_gib"]
    assert "big_predict" in cli.LOCAL_PARTS and "big_predict" not in cli.SHARED_STANDIN_PARTS


def test_big_predict_reads_vmhwm_and_checks_the_answer() -> None:
    status = "Name:\tpython\nVmPeak:\t 9000000 kB\nVmHWM:\t 3166208 kB\nVmRSS:\t 100 kB\n"
    assert vm_hwm_bytes(status) == 3166208 * 1024
    for bad in ("Name:\tpython\n", "VmHWM:\t 12 MB\n"):
        with pytest.raises(BenchError):
            vm_hwm_bytes(bad)
    check_answer([3.0, 3.0, 3.0], 3)
    for values in ([3.0, 3.0], [2.5, 3.0, 3.0], [3.0, 3.0, 0.0]):
        with pytest.raises(BenchError):
            check_answer(values, 3)
