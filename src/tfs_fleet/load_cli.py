"""Command line of scripts/load_client.py (imports no TensorFlow)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from tfs_fleet.load import Load, LoadSpec

EPILOG = """\
example (the sandbox's load balancer, 30 s, the phase marked 'during' after 10 s):
  load_client.py --grpc 127.0.0.1:18500 --rest 127.0.0.1:18600 --seconds 30 --phase-at 10:during

Each client sends one request at a time (no retry), gRPC Predict and REST predict of the model
with input [[VALUE]]; an error or an answer other than --expect counts as a failure. The JSON
report (stdout) has, per phase and per protocol, requests, failures, p50/p99/max latency in ms
and a few failure samples. Progress goes to stderr.

exit status: 0 no failed request; 1 some request failed (or --max-failures exceeded);
             2 bad arguments
"""


def _phase_at(text: str) -> tuple[float, str]:
    at, _, name = text.partition(":")
    try:
        seconds = float(at)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--phase-at wants SECONDS:NAME, got {text!r}") from None
    if not name or seconds < 0:
        raise argparse.ArgumentTypeError(f"--phase-at wants SECONDS:NAME, got {text!r}")
    return seconds, name


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="load_client.py",
        description="Continuous gRPC/REST Predict clients, bounded; failures and latency as JSON.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--grpc", metavar="HOST:PORT", help="gRPC address (PredictionService.Predict)")
    p.add_argument("--rest", metavar="HOST:PORT", help="REST address (POST /v1/models/M:predict)")
    p.add_argument("--model", default="half_plus_two", help="model name (half_plus_two)")
    p.add_argument("--input", default="x", help="input tensor name for gRPC (x)")
    p.add_argument("--value", type=float, default=1.0, help="the input value (1.0)")
    p.add_argument(
        "--expect", type=float, default=2.5, help="expected answer (2.5); --no-check: none"
    )
    p.add_argument("--no-check", action="store_true", help="do not check the answer")
    p.add_argument("--clients", type=int, default=1, help="clients per protocol (1)")
    p.add_argument(
        "--interval", type=float, default=0.02, help="pause between a client's requests, s"
    )
    p.add_argument("--timeout", type=float, default=5.0, help="deadline of each request, s (5)")
    p.add_argument("--seconds", type=float, default=30.0, help="run this long (30)")
    p.add_argument("--max-requests", type=int, default=1_000_000, help="stop after this many")
    p.add_argument(
        "--phase-at", type=_phase_at, action="append", default=[], metavar="S:NAME",
        help="start phase NAME after S seconds (repeatable; the first one is 'run')",
    )  # fmt: skip
    p.add_argument("--max-failures", type=int, default=0, help="failures tolerated for exit 0 (0)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        spec = LoadSpec(
            grpc=args.grpc, rest=args.rest, model=args.model, input_name=args.input,
            value=args.value, expected=None if args.no_check else args.expect,
            clients_per_kind=args.clients, interval_s=args.interval, timeout_s=args.timeout,
            max_seconds=args.seconds, max_requests=args.max_requests,
        )  # fmt: skip
    except ValueError as exc:
        print(f"load_client.py: {exc}", file=sys.stderr)
        return 2
    load = Load(spec).start()
    start = time.monotonic()
    marks = sorted(args.phase_at)
    try:
        while any(t.is_alive() for t in load._threads):
            elapsed = time.monotonic() - start
            while marks and marks[0][0] <= elapsed:
                load.mark(marks.pop(0)[1])
                print(f"[{elapsed:6.1f} s] phase {load._phase}", file=sys.stderr, flush=True)
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    load.stop()
    report = load.report()
    print(json.dumps(report, indent=2))
    print(
        f"{report['requests']} requests, {report['failed']} failed in {report['seconds']} s",
        file=sys.stderr,
    )
    return 0 if report["failed"] <= args.max_failures else 1
