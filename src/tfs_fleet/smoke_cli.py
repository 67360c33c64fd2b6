"""Command line of scripts/smoke_test.py (imports no TensorFlow)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from tfs_fleet.manifest import ManifestError, load_manifest
from tfs_fleet.smoke import SmokeOptions, Target, failure_lines, format_table, smoke_fleet

EPILOG = """\
example:
  smoke_test.py --manifest /srv/models/half_plus_two/1/tfs_fleet_manifest.json \\
      --grpc gpu1:8500 --rest gpu1:8501 --grpc gpu2:8500 --rest gpu2:8501 --version 1

The n-th --grpc pairs with the n-th --rest (one pair per host). Checks per host: status (gRPC
GetModelStatus until AVAILABLE, bounded by --wait), metadata (REST metadata shows the signature
as the manifest records it), predict (gRPC Predict with the manifest's golden sample, compared
within the tolerance; latency recorded).

exit status: 0 every host passed; 1 a host failed a check (stderr names host and check);
             2 bad arguments or manifest
"""


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """argparse type: ``kind(text)`` that must be > 0."""

    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text}: must be > 0")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="smoke_test.py",
        description="Smoke-test TF Serving hosts after a deploy: version AVAILABLE, REST "
        "metadata shows the expected signature, Predict returns the manifest's golden output.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--grpc", action="append", default=[], metavar="HOST:PORT", required=True)
    p.add_argument("--rest", action="append", default=[], metavar="HOST:PORT", required=True)
    p.add_argument(
        "--manifest",
        type=Path,
        required=True,
        metavar="PATH",
        help="tfs_fleet_manifest.json written by export_model.py",
    )
    p.add_argument("--model", help="served model name (default: the manifest's model_name)")
    p.add_argument(
        "--version",
        type=int,
        metavar="N",
        help="version to check (default: the highest AVAILABLE one)",
    )
    p.add_argument(
        "--signature",
        help="signature the metadata check looks for (default: the manifest sample's; Predict "
        "always uses the sample's own signature)",
    )
    p.add_argument(
        "--wait",
        type=_positive(float),
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for AVAILABLE (%(default)s)",
    )
    p.add_argument(
        "--poll",
        type=_positive(float),
        default=1.0,
        metavar="SECONDS",
        help="status polling interval (%(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=_positive(float),
        default=10.0,
        metavar="SECONDS",
        help="deadline of each request (%(default)s)",
    )
    p.add_argument("--rtol", type=float, help="relative tolerance (default: the manifest's)")
    p.add_argument("--atol", type=float, help="absolute tolerance (default: the manifest's)")
    p.add_argument(
        "--repeat",
        type=_positive(int),
        default=5,
        metavar="N",
        help="Predict calls per host for the latency figures (%(default)s)",
    )
    p.add_argument(
        "--max-message-mb",
        type=_positive(int),
        default=64,
        metavar="MB",
        help="gRPC max send/receive message size (%(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    return p


def _fail(message: str) -> int:
    print(f"smoke_test.py: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if len(args.grpc) != len(args.rest):
        return _fail(
            f"{len(args.grpc)} --grpc and {len(args.rest)} --rest given; give one pair per host"
        )
    for flag, values in (("--grpc", args.grpc), ("--rest", args.rest)):
        bad = [v for v in values if not v.rpartition(":")[2].isdigit()]
        if bad:
            return _fail(f"{flag} {bad[0]!r}: expected HOST:PORT")
    if args.version is not None and args.version < 1:
        return _fail(f"--version {args.version}: versions are positive integers")
    try:
        manifest = load_manifest(args.manifest)
    except ManifestError as exc:
        return _fail(str(exc))
    signature = args.signature or manifest.golden().signature
    opts = SmokeOptions(
        model=args.model or manifest.model_name,
        manifest=manifest,
        version=args.version,
        signature=signature,
        wait_s=args.wait,
        poll_s=args.poll,
        timeout_s=args.timeout,
        rtol=args.rtol,
        atol=args.atol,
        repeat=args.repeat,
        max_message_bytes=args.max_message_mb * 1024 * 1024,
    )
    targets = [Target(g, r) for g, r in zip(args.grpc, args.rest, strict=True)]
    reports = smoke_fleet(targets, opts)
    ok = all(r.ok for r in reports)
    if args.json:
        doc = {
            "ok": ok,
            "model": opts.model,
            "signature": signature,
            "manifest": str(args.manifest),
            "hosts": [r.to_doc() for r in reports],
        }
        print(json.dumps(doc, indent=1))
    else:
        print(format_table(reports))
    for line in failure_lines(reports):
        print(f"smoke_test.py: {line}", file=sys.stderr)
    return 0 if ok else 1
