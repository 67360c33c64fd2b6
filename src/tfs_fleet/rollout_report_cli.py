"""Command line of scripts/rollout_report.py: merge a rollout's host records into the report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tfs_fleet.rollout_report import ReportError, write_host_record, write_report

EPILOG = """\
example:
  rollout_report.py --run-dir artifacts/rollout/20260101T120000Z --run-id 20260101T120000Z \\
      --host gpu1 --host gpu2 --host gpu3 --print

The rollout role calls this with --record-stdin for every host record: the host's line comes on
standard input and is written to <run dir>/hosts/<host>.json first. Run it by hand to re-render
a report. Hosts named with --host come first, in that order (the rollout order); a host without a
record is listed as not-reached, a host that started but never finished as interrupted.

exit status: 0 report written and every host updated or unchanged; 1 report written and some
             host was not (rolled back, skipped, unreachable, interrupted, not reached), only
             with --strict; 2 bad arguments or an unreadable record
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rollout_report.py",
        description="Merge the per-host records of a rollout into report.json and report.txt.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run-dir", type=Path, required=True, help="the run's directory")
    parser.add_argument("--run-id", required=True, help="the run's id (printed in the report)")
    parser.add_argument(
        "--host", action="append", default=[], help="a host in rollout order (repeat)"
    )
    parser.add_argument(
        "--record-stdin",
        action="store_true",
        help="first write the host record read from standard input (JSON with 'host')",
    )
    parser.add_argument("--print", action="store_true", help="print the table on stdout")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when some host was not updated"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.record_stdin:
            write_host_record(args.run_dir, sys.stdin.read())
        report = write_report(args.run_dir, args.run_id, args.host)
    except (ReportError, OSError) as exc:
        print(f"rollout_report.py: {exc}", file=sys.stderr)
        return 2
    if args.print:
        sys.stdout.write((args.run_dir / "report.txt").read_text())
    return 1 if args.strict and not report["ok"] else 0
