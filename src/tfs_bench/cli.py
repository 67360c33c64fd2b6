"""Command line of scripts/bench.py (`make bench`)."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tfs_bench import report
from tfs_bench.figures import NO_FLEET_REASON, SPECS, Figure, complete, not_measured
from tfs_bench.server import MODEL, REPO, BenchError, Standin, export_demo

# The parts in the order they run: the ones on loopback first, then the fleet's (one fleet,
# created and converged once for all of them; the sync comes last: it leaves a 1 GiB version on
# the first host), then the control plane's on light SSH hosts of its own (no bench fleet).
LOCAL_PARTS = ("client_vs_stub", "cold_start", "swap", "big_predict")
# The local parts that share one stand-in; big_predict starts a fresh one of its own.
SHARED_STANDIN_PARTS = ("client_vs_stub", "cold_start", "swap")
FLEET_PARTS = ("distribution", "rerun", "rollout", "sync")
DOCKER_PARTS = ("control_plane",)
PARTS = LOCAL_PARTS + FLEET_PARTS + DOCKER_PARTS
# What --no-fleet skips: every part that needs Docker.
NO_FLEET_PARTS = FLEET_PARTS + DOCKER_PARTS
CP_NO_FLEET_REASON = "--no-fleet (needs Docker: light SSH hosts)"
PART_FIGURES = {
    "client_vs_stub": ["client_vs_stub_ratio"],
    "cold_start": ["smoke_cold_start_ratio"],
    "swap": ["swap_failed_requests", "swap_p99_ratio"],
    "big_predict": ["big_predict_peak_rss_gib"],
    "distribution": [
        "dist_archive_bytes_per_host",
        "dist_pull_bytes_per_host",
        "dist_converge_archive_s",
        "dist_converge_pull_s",
        "dist_converge_pull_vs_archive_ratio",
    ],
    "rerun": ["rerun_1host_s", "rerun_6host_s", "rerun_scaling_ratio", "rerun_vs_stock_ratio"],
    "rollout": ["rollout_failed_requests", "rollout_p99_ratio"],
    "sync": ["sync_vs_rsync_ratio", "resync_bytes", "resync_vs_full_ratio"],
    "control_plane": ["control_plane_rollout_1000host_s", "control_plane_verify_1000host_s"],
}
# The control plane's sweep by default (within the ~3.5 minutes make bench has for it here: 4
# rollouts and 4 verifies; on at most 8 hosts no rollout batch is larger than 5, so forks 5 and
# 20 would run the same schedule); a longer one by hand, e.g. --cp-hosts 8,16,32 --cp-forks 5,20.
CP_DEFAULT_HOSTS = "4,8"
CP_DEFAULT_FORKS = "20"
CP_DEFAULT_STRATEGIES = "linear,free"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISSED = 0, 1, 2, 3
DEFAULT_DOC = REPO / "docs" / "bench.md"

EPILOG = f"""\
Measures, side by side in one run, the figures that need no fleet ({", ".join(LOCAL_PARTS)})
against the serving stand-in (src/tfs_standin, not TF Serving) on loopback ports (big_predict:
the peak memory of a fresh stand-in of its own serving one 400 MB gRPC Predict), then the
fleet's ({", ".join(FLEET_PARTS)}) on a sandbox fleet of its own (TFS_FLEET_SANDBOX=bench:
--fleet-hosts serving hosts and, for rollout, the load balancer host; SSH 127.0.0.1:37400+n,
gRPC 37500+n, REST 37600+n), created and converged once with site.yml over SSH, and removed at
the end, also after a failure (--keep-fleet keeps it); then control_plane: the rollout's and
the verify's control path timed on light SSH hosts (containers with sshd and python3 only,
tfs-fleet-light-N, SSH at their bridge addresses) for every --cp-hosts x --cp-strategies x
--cp-forks, a line fitted per setting and read at 1,000 hosts (an estimate). Writes
OUT/results.json (OUT/fleet, OUT/control_plane: the playbook logs), PNG plots into PLOTS and
the table between the markers of DOC.

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
    p.add_argument(
        "--doc",
        type=Path,
        metavar="FILE",
        help=f"the markdown file whose marked block gets the table (default {DEFAULT_DOC}); "
        "a FILE given here that does not exist yet is created",
    )
    p.add_argument("--plots", type=Path, default=REPO / "docs" / "bench", metavar="DIR")
    p.add_argument("--no-doc", action="store_true", help="write results.json only")
    p.add_argument("--only", help=f"comma list of {', '.join(PARTS)} (default: all)")
    p.add_argument(
        "--no-fleet",
        action="store_true",
        help=f"skip the parts that need Docker ({', '.join(NO_FLEET_PARTS)})",
    )
    p.add_argument("--keep-fleet", action="store_true", help="leave the bench fleet running")
    p.add_argument("--calls", type=int, default=1000, help="client_vs_stub: calls per client")
    p.add_argument("--rounds", type=int, default=20, help="client_vs_stub: interleaved rounds")
    p.add_argument("--cold-runs", type=int, default=5, help="cold_start: runs per client")
    p.add_argument("--swaps", type=int, default=3, help="swap: versions published under load")
    p.add_argument("--steady", type=float, default=6.0, help="swap: steady seconds per swap")
    p.add_argument(
        "--fleet-hosts",
        type=int,
        default=6,
        help="serving hosts of the bench fleet (1-9; rerun needs 6 or more)",
    )
    p.add_argument(
        "--rerun-repeat",
        type=int,
        default=1,
        help="rerun: rounds of the three timed re-runs (1-5; median per case)",
    )
    p.add_argument(
        "--sync-rounds",
        type=int,
        default=1,
        help="sync: rounds, alternating which side goes first (1-5)",
    )
    p.add_argument("--sync-mib", type=int, default=1024, help="sync: padding of the version")
    p.add_argument(
        "--rollout-steady",
        type=float,
        default=20.0,
        help="rollout: seconds of steady load before the rollout",
    )
    p.add_argument(
        "--cp-hosts",
        default=CP_DEFAULT_HOSTS,
        help=f"control_plane: comma list of 2 or more host counts (1-99; default "
        f"{CP_DEFAULT_HOSTS})",
    )
    p.add_argument(
        "--cp-forks",
        default=CP_DEFAULT_FORKS,
        help=f"control_plane: comma list of forks settings (default {CP_DEFAULT_FORKS})",
    )
    p.add_argument(
        "--cp-strategies",
        default=CP_DEFAULT_STRATEGIES,
        help=f"control_plane: comma list of linear, free, host_pinned (default "
        f"{CP_DEFAULT_STRATEGIES})",
    )
    p.add_argument(
        "--cp-paths",
        default="rollout,verify",
        help="control_plane: comma list of rollout, verify (default both)",
    )
    p.add_argument("--fail-on-miss", action="store_true", help=f"exit {EXIT_MISSED} on a miss")
    args = p.parse_args(argv)
    if args.only is None:
        args.parts = [part for part in PARTS if not (args.no_fleet and part in NO_FLEET_PARTS)]
    else:
        args.parts = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown or not args.parts:
        p.error(f"--only: unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    args.parts = [part for part in PARTS if part in args.parts]  # the order they run in
    fleet_parts = [part for part in args.parts if part in NO_FLEET_PARTS]
    args.new_doc = args.doc is not None and not args.doc.exists()
    args.doc = args.doc or DEFAULT_DOC
    if args.no_fleet and fleet_parts:
        p.error(f"--no-fleet and --only {','.join(fleet_parts)}: those parts need Docker")
    if args.calls <= 0 or args.rounds <= 0 or args.calls % args.rounds:
        p.error("--calls and --rounds must be positive and --calls a multiple of --rounds")
    if args.cold_runs <= 0 or args.swaps <= 0 or args.steady <= 0:
        p.error("--cold-runs, --swaps and --steady must be positive")
    if not 1 <= args.fleet_hosts <= 9:
        p.error(f"--fleet-hosts must be 1-9 (got {args.fleet_hosts})")
    if "rerun" in args.parts and args.fleet_hosts < 6:
        p.error(f"rerun times 6 hosts: --fleet-hosts must be at least 6 (got {args.fleet_hosts})")
    if not (1 <= args.rerun_repeat <= 5 and 1 <= args.sync_rounds <= 5):
        p.error("--rerun-repeat and --sync-rounds must be 1-5")
    if not 1 <= args.sync_mib <= 8192 or args.rollout_steady <= 0:
        p.error("--sync-mib must be 1-8192 and --rollout-steady positive")
    from tfs_bench.control_plane import parse_forks, parse_hosts, parse_paths, parse_strategies

    try:
        args.cp_host_counts = parse_hosts(args.cp_hosts)
        args.cp_fork_counts = parse_forks(args.cp_forks)
        args.cp_strategy_list = parse_strategies(args.cp_strategies)
        args.cp_path_list = parse_paths(args.cp_paths)
    except ValueError as exc:
        p.error(str(exc))
    return args


def unselected_reasons(args: argparse.Namespace) -> dict[str, str]:
    """Why each figure of a part that does not run this time is not measured."""
    reasons = {}
    for part, names in PART_FIGURES.items():
        if part in args.parts:
            continue
        if part in FLEET_PARTS and args.no_fleet:
            reason = NO_FLEET_REASON
        elif part in DOCKER_PARTS and args.no_fleet:
            reason = CP_NO_FLEET_REASON
        else:
            reason = "not selected in this run (--only)"
        reasons.update(dict.fromkeys(names, reason))
    return reasons


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


def _meta(
    args: argparse.Namespace, load_before: tuple[float, ...], extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        "generated_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "server": "tfs_standin (the project's stand-in, not TF Serving), loopback and fleet",
        "parts": args.parts,
        "settings": {
            "calls": args.calls,
            "rounds": args.rounds,
            "cold_runs": args.cold_runs,
            "swaps": args.swaps,
            "steady_s": args.steady,
            "fleet_hosts": args.fleet_hosts,
            "rerun_repeat": args.rerun_repeat,
            "sync_rounds": args.sync_rounds,
            "sync_mib": args.sync_mib,
            "rollout_steady_s": args.rollout_steady,
            "cp_hosts": args.cp_host_counts,
            "cp_forks": args.cp_fork_counts,
            "cp_strategies": args.cp_strategy_list,
            "cp_paths": args.cp_path_list,
        },
        **extra,
    }


def _measure(
    part: str,
    run: Callable[[], list[Figure]],
    figures: dict[str, Figure],
    progress: Progress,
    timings: dict[str, float],
) -> bool:
    progress(f"{part}: start")
    start = time.monotonic()
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
    finally:
        timings[f"{part}_s"] = round(time.monotonic() - start, 1)


def _fail_parts(parts: list[str], figures: dict[str, Figure], why: str) -> None:
    for part in parts:
        for name in PART_FIGURES[part]:
            figures[name] = not_measured(name, f"error: {why.splitlines()[0][:200]}")


def _local_parts(
    args: argparse.Namespace,
    manifest: Path,
    figures: dict[str, Figure],
    plotted: list[Path],
    progress: Progress,
    timings: dict[str, float],
) -> bool:
    """client_vs_stub, cold_start, swap on one stand-in on loopback, then big_predict on a
    fresh stand-in of its own (same model base: its peak memory is for that request alone)."""
    from tfs_bench.big_predict import big_predict

    ok = True
    if any(part in SHARED_STANDIN_PARTS for part in args.parts):
        ok &= _shared_standin_parts(args, manifest, figures, plotted, progress, timings)
    if "big_predict" in args.parts:

        def run_big() -> list[Figure]:
            log = args.out / "big_predict-standin.log"
            return [big_predict(manifest.parent.parent, log, progress=progress)]

        ok &= _measure("big_predict", run_big, figures, progress, timings)
    return ok


def _shared_standin_parts(
    args: argparse.Namespace,
    manifest: Path,
    figures: dict[str, Figure],
    plotted: list[Path],
    progress: Progress,
    timings: dict[str, float],
) -> bool:
    """client_vs_stub, cold_start, swap on a stand-in of their own on loopback."""
    from tfs_bench import plots
    from tfs_bench.client_ratio import client_vs_stub
    from tfs_bench.cold_start import cold_start
    from tfs_bench.swap import swap_under_load

    try:
        server = Standin(manifest.parent.parent, args.out / "standin.log").start()
    except BenchError as exc:
        progress(f"stand-in FAILED: {exc}")
        _fail_parts([p for p in args.parts if p in SHARED_STANDIN_PARTS], figures, str(exc))
        return False
    progress(f"stand-in serving on gRPC {server.grpc_target}, REST {server.rest_target}")
    ok = True
    try:
        if "client_vs_stub" in args.parts:

            def run_client() -> list[Figure]:
                fig, samples = client_vs_stub(server.grpc_target, args.calls, args.rounds, progress)
                if not args.no_doc:
                    plotted.append(
                        plots.latency_histogram(samples, args.plots / "client_vs_stub.png")
                    )
                return [fig]

            ok &= _measure("client_vs_stub", run_client, figures, progress, timings)
        if "cold_start" in args.parts:

            def run_cold() -> list[Figure]:
                fig, samples = cold_start(
                    manifest, server.grpc_target, server.rest_target, args.cold_runs,
                    progress=progress,
                )  # fmt: skip
                if not args.no_doc:
                    plotted.append(plots.cold_start_bars(samples, args.plots / "cold_start.png"))
                return [fig]

            ok &= _measure("cold_start", run_cold, figures, progress, timings)
        if "swap" in args.parts:

            def run_swap() -> list[Figure]:
                figs, load, windows = swap_under_load(
                    server, args.swaps, args.steady, progress=progress
                )
                if not args.no_doc:
                    plotted.append(plots.swap_timeline(load, windows, args.plots / "swap.png"))
                return figs

            ok &= _measure("swap", run_swap, figures, progress, timings)
    finally:
        server.stop()
    return ok


def _fleet_parts(
    args: argparse.Namespace,
    served: Path,
    work: Path,
    figures: dict[str, Figure],
    plotted: list[Path],
    progress: Progress,
    timings: dict[str, float],
) -> bool:
    """distribution, rerun, rollout, sync on one bench fleet with a registry host: created, the
    stand-in pushed into its registry, converged (distribution: first with the archive, then
    fresh hosts with pull), always removed at the end (unless --keep-fleet)."""
    from tfs_bench import plots
    from tfs_bench.distribution import distribution
    from tfs_bench.fleet import ARCHIVE, BenchFleet, rerun
    from tfs_bench.rollout import rollout
    from tfs_bench.sync import sync

    parts = [p for p in args.parts if p in FLEET_PARTS]
    export_base = work / "fleet-models"
    shutil.copytree(served, export_base / MODEL / "1")
    out = args.out / "fleet"
    out.mkdir(parents=True, exist_ok=True)
    fleet = BenchFleet(
        hosts=args.fleet_hosts, lb="rollout" in parts, export_base=export_base, out=out,
        progress=progress, timings=timings,
    )  # fmt: skip
    ok = True
    try:
        try:
            fleet.create()
            fleet.push()
            if "distribution" not in parts:
                fleet.converge()
        except (BenchError, OSError, subprocess.SubprocessError) as exc:
            progress(f"fleet set-up FAILED: {exc}")
            _fail_parts(parts, figures, f"fleet set-up: {exc}")
            return False
        if "distribution" in parts:

            def run_distribution() -> list[Figure]:
                figs, _ = distribution(fleet, ARCHIVE)
                return figs

            # Its second converge (pull) is the one the other parts run on.
            if not _measure("distribution", run_distribution, figures, progress, timings):
                rest = [p for p in parts if p != "distribution"]
                _fail_parts(rest, figures, "fleet set-up: the distribution part's converge failed")
                return False
        if "rerun" in parts:

            def run_rerun() -> list[Figure]:
                figs, runs = rerun(fleet, args.rerun_repeat)
                if not args.no_doc:
                    plotted.append(plots.rerun_bars(runs, args.plots / "rerun.png"))
                return figs

            ok &= _measure("rerun", run_rerun, figures, progress, timings)
        if "rollout" in parts:

            def run_rollout() -> list[Figure]:
                figs, calls, spans, _ = rollout(fleet, args.rollout_steady)
                if not args.no_doc:
                    plotted.append(plots.rollout_timeline(calls, spans, args.plots / "rollout.png"))
                return figs

            ok &= _measure("rollout", run_rollout, figures, progress, timings)
        if "sync" in parts:

            def run_sync() -> list[Figure]:
                figs, rounds = sync(fleet, served, work, args.sync_mib, args.sync_rounds)
                if not args.no_doc:
                    plotted.append(plots.sync_bars(rounds, args.plots / "sync.png"))
                return figs

            ok &= _measure("sync", run_sync, figures, progress, timings)
    finally:
        if args.keep_fleet:
            progress(
                "fleet: kept (--keep-fleet); remove it with: TFS_FLEET_SANDBOX=bench "
                ".venv/bin/ansible-playbook playbooks/sandbox.yml -e sandbox_state=absent"
            )
        else:
            fleet.destroy()
    return ok


def _control_plane_part(
    args: argparse.Namespace,
    figures: dict[str, Figure],
    plotted: list[Path],
    progress: Progress,
    timings: dict[str, float],
) -> bool:
    """control_plane on light SSH hosts of its own (started and always removed by the part)."""
    from tfs_bench import plots
    from tfs_bench.control_plane import control_plane_figures, fits, sweep

    def run() -> list[Figure]:
        runs = sweep(
            args.cp_host_counts, args.cp_strategy_list, args.cp_fork_counts,
            args.out / "control_plane", progress, timings, args.cp_path_list,
        )  # fmt: skip
        figs = control_plane_figures(runs)
        if not args.no_doc:
            plotted.append(plots.control_plane_lines(runs, fits(runs),
                                                     args.plots / "control_plane.png"))  # fmt: skip
        why = "not selected in this run (--cp-paths)"
        left_out = [p for p in ("rollout", "verify") if p not in args.cp_path_list]
        return figs + [not_measured(f"control_plane_{p}_1000host_s", why) for p in left_out]

    return _measure("control_plane", run, figures, progress, timings)


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

    figures: dict[str, Figure] = {}
    timings: dict[str, float] = {}
    ok = True
    plotted: list[Path] = []
    args.out.mkdir(parents=True, exist_ok=True)
    model_parts = [p for p in args.parts if p in LOCAL_PARTS + FLEET_PARTS]
    with tempfile.TemporaryDirectory(prefix="tfs-bench-") as tmp:
        base = Path(tmp) / "models"
        manifest = None
        if model_parts:
            progress("exporting the demo model half_plus_two (TensorFlow, a few seconds)")
            try:
                manifest = export_demo(base)
            except BenchError as exc:
                progress(f"set-up FAILED: {exc}")
                _fail_parts(model_parts, figures, str(exc))
                ok = False
        if manifest is not None:
            served = Path(tmp) / "served-v1"
            shutil.copytree(manifest.parent, served)  # before the swap publishes beside it
            if any(part in LOCAL_PARTS for part in args.parts):
                ok &= _local_parts(args, manifest, figures, plotted, progress, timings)
            if any(part in FLEET_PARTS for part in args.parts):
                ok &= _fleet_parts(args, served, Path(tmp), figures, plotted, progress, timings)
        if "control_plane" in args.parts:
            ok &= _control_plane_part(args, figures, plotted, progress, timings)

    timings["total_s"] = round(time.monotonic() - progress.t0, 1)
    ordered = complete(figures, unselected_reasons(args))
    data = report.results(ordered, _meta(args, load_before, {"timings_s": timings}))
    path = report.write_json(args.out / "results.json", data)
    progress(f"wrote {path}")
    if not args.no_doc:
        plotted.append(plots.ratio_summary(ordered, args.plots / "ratios.png"))
        table = report.markdown_table(ordered)
        doc_dir = args.doc.resolve().parent
        images = "\n".join(f"![{p.stem}]({os.path.relpath(p.resolve(), doc_dir)})" for p in plotted)
        try:
            if args.new_doc:
                report.new_doc(args.doc, "make bench: results")
                progress(f"created {args.doc}")
            report.update_doc(args.doc, f"{table}\n{images}\n" if images else table)
        except ValueError as exc:
            progress(f"FAILED: {exc}")
            return EXIT_FAILED
        progress(f"updated {args.doc} and {len(plotted)} plots in {args.plots}")
    print(report.markdown_table(ordered), end="")
    progress(f"timings (s): {timings}")
    missed = [f.name for f in ordered if f.missed]
    if missed:
        progress(f"missed their goal: {', '.join(missed)}")
    if not ok:
        return EXIT_FAILED
    if missed and args.fail_on_miss:
        return EXIT_MISSED
    return EXIT_OK


assert {n for names in PART_FIGURES.values() for n in names} <= {s.name for s in SPECS}
