"""Command line of scripts/bench.py (`make bench`)."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tfs_bench import report
from tfs_bench.figures import SANDBOX_REASON, SPECS, Figure, complete, not_measured
from tfs_bench.server import MODEL, REPO, BenchError, Standin, export_demo

PARTS = ("client_vs_stub", "cold_start", "swap")
PART_FIGURES = {
    "client_vs_stub": ["client_vs_stub_ratio"],
    "cold_start": ["smoke_cold_start_ratio"],
    "swap": ["swap_failed_requests", "swap_p99_ratio"],
}
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISSED = 0, 1, 2, 3

EPILOG = f"""\
Measures, side by side in one run, the figures that need no sandbox fleet ({", ".join(PARTS)})
against the in-process serving stand-in (src/tfs_standin, not TF Serving) on loopback ports,
and lists the sandbox figures as not measured ({SANDBOX_REASON}). Writes OUT/results.json,
PNG plots into PLOTS and the table between the markers of DOC.

exit status: {EXIT_OK} every selected figure measured (goals met or missed: see the table),
{EXIT_FAILED} a measurement failed (recorded as not measured with the error), {EXIT_USAGE} usage,
{EXIT_MISSED} a measured figure missed its goal and --fail-on-miss was given.
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench.py",
        description="tfs-fleet benchmark: the project's speed against its baselines, as ratios",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=REPO / "artifacts" / "bench", metavar="DIR")
    p.add_argument("--doc", type=Path, default=REPO / "docs" / "bench.md", metavar="FILE")
    p.add_argument("--plots", type=Path, default=REPO / "docs" / "bench", metavar="DIR")
    p.add_argument("--no-doc", action="store_true", help="write results.json only")
    p.add_argument("--only", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    p.add_argument("--calls", type=int, default=1000, help="client_vs_stub: calls per client")
    p.add_argument("--rounds", type=int, default=20, help="client_vs_stub: interleaved rounds")
    p.add_argument("--cold-runs", type=int, default=5, help="cold_start: runs per client")
    p.add_argument("--swaps", type=int, default=3, help="swap: versions published under load")
    p.add_argument("--steady", type=float, default=6.0, help="swap: steady seconds per swap")
    p.add_argument("--fail-on-miss", action="store_true", help=f"exit {EXIT_MISSED} on a miss")
    args = p.parse_args(argv)
    args.parts = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown or not args.parts:
        p.error(f"--only: unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    if args.calls <= 0 or args.rounds <= 0 or args.calls % args.rounds:
        p.error("--calls and --rounds must be positive and --calls a multiple of --rounds")
    if args.cold_runs <= 0 or args.swaps <= 0 or args.steady <= 0:
        p.error("--cold-runs, --swaps and --steady must be positive")
    return args


class Progress:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, line: str) -> None:
        print(f"bench [{time.monotonic() - self.t0:6.1f} s] {line}", flush=True)


def _git_commit() -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except OSError:
        return None
    return proc.stdout.strip() or None


def _meta(args: argparse.Namespace, load_before: tuple[float, ...]) -> dict[str, Any]:
    return {
        "generated_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "server": "tfs_standin (the project's stand-in, not TF Serving), loopback",
        "settings": {
            "calls": args.calls,
            "rounds": args.rounds,
            "cold_runs": args.cold_runs,
            "swaps": args.swaps,
            "steady_s": args.steady,
        },
    }


def _measure(
    part: str,
    run: Callable[[], list[Figure]],
    figures: dict[str, Figure],
    progress: Progress,
) -> bool:
    progress(f"{part}: start")
    try:
        for figure in run():
            figures[figure.name] = figure
            progress(f"{part}: {figure.name} = {figure.value} (goal {figure.spec.goal})")
        return True
    except (BenchError, OSError, ValueError, subprocess.SubprocessError) as exc:
        progress(f"{part}: FAILED: {exc}")
        traceback.print_exc()
        for name in PART_FIGURES[part]:
            figures[name] = not_measured(name, f"error: {str(exc).splitlines()[0][:200]}")
        return False


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    progress = Progress()
    load_before = os.getloadavg()
    progress(f"parts {', '.join(args.parts)}; load average {load_before[0]:.2f}")
    # Heavy imports after the usage checks: --help stays fast.
    from tfs_bench import plots
    from tfs_bench.client_ratio import client_vs_stub
    from tfs_bench.cold_start import cold_start
    from tfs_bench.swap import swap_under_load

    figures: dict[str, Figure] = {}
    ok = True
    plotted: list[Path] = []
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tfs-bench-") as tmp:
        base = Path(tmp) / "models"
        progress("exporting the demo model half_plus_two (TensorFlow, a few seconds)")
        try:
            manifest = export_demo(base)
            server = Standin(base / MODEL, args.out / "standin.log").start()
        except BenchError as exc:
            progress(f"set-up FAILED: {exc}")
            for part in args.parts:
                for name in PART_FIGURES[part]:
                    figures[name] = not_measured(name, f"error: {str(exc).splitlines()[0]}")
            server = None
            ok = False
        if server is not None:
            progress(f"stand-in serving on gRPC {server.grpc_target}, REST {server.rest_target}")
            try:
                if "client_vs_stub" in args.parts:

                    def run_client() -> list[Figure]:
                        fig, samples = client_vs_stub(
                            server.grpc_target, args.calls, args.rounds, progress
                        )
                        if not args.no_doc:
                            plotted.append(
                                plots.latency_histogram(samples, args.plots / "client_vs_stub.png")
                            )
                        return [fig]

                    ok &= _measure("client_vs_stub", run_client, figures, progress)
                if "cold_start" in args.parts:

                    def run_cold() -> list[Figure]:
                        fig, samples = cold_start(
                            manifest, server.grpc_target, server.rest_target, args.cold_runs,
                            progress=progress,
                        )  # fmt: skip
                        if not args.no_doc:
                            plotted.append(
                                plots.cold_start_bars(samples, args.plots / "cold_start.png")
                            )
                        return [fig]

                    ok &= _measure("cold_start", run_cold, figures, progress)
                if "swap" in args.parts:

                    def run_swap() -> list[Figure]:
                        figs, load, windows = swap_under_load(
                            server, args.swaps, args.steady, progress=progress
                        )
                        if not args.no_doc:
                            plotted.append(
                                plots.swap_timeline(load, windows, args.plots / "swap.png")
                            )
                        return figs

                    ok &= _measure("swap", run_swap, figures, progress)
            finally:
                server.stop()

    ordered = complete(figures)
    data = report.results(ordered, _meta(args, load_before))
    path = report.write_json(args.out / "results.json", data)
    progress(f"wrote {path}")
    if not args.no_doc:
        plotted.append(plots.ratio_summary(ordered, args.plots / "ratios.png"))
        table = report.markdown_table(ordered)
        doc_dir = args.doc.resolve().parent
        images = "\n".join(f"![{p.stem}]({os.path.relpath(p.resolve(), doc_dir)})" for p in plotted)
        try:
            report.update_doc(args.doc, f"{table}\n{images}\n" if images else table)
        except ValueError as exc:
            progress(f"FAILED: {exc}")
            return EXIT_FAILED
        progress(f"updated {args.doc} and {len(plotted)} plots in {args.plots}")
    print(report.markdown_table(ordered), end="")
    missed = [f.name for f in ordered if f.missed]
    if missed:
        progress(f"missed their goal: {', '.join(missed)}")
    if not ok:
        return EXIT_FAILED
    if missed and args.fail_on_miss:
        return EXIT_MISSED
    return EXIT_OK


assert {n for names in PART_FIGURES.values() for n in names} <= {s.name for s in SPECS}
