"""Command line of scripts/smoke_test.py (imports no TensorFlow)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tfs_fleet.client import TlsConfig
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

Every request ends within --timeout (the whole request, however slowly the server answers),
and the whole run within --deadline (default: --wait + (--repeat + 3) * --timeout); REST
answers over --max-message-mb are refused unread.

gRPC over TLS: --tls-ca CA.pem (server certificate check); mutual TLS adds --tls-cert and
--tls-key (the client's certificate and key).

exit status: 0 every host passed; 1 a host failed a check (stderr names host and check) or
             the run deadline passed; 2 bad arguments or manifest
"""
MAX_MESSAGE_MB = 2047  # gRPC's limit is a signed 32-bit byte count


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """argparse type: ``kind(text)`` that must be > 0."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text}: not a number") from exc
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text}: must be a finite number")
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text}: must be > 0")
        return value

    return parse


def _tolerance(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text}: not a number") from exc
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be a finite number >= 0")
    return value


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
    seconds = _positive(float)
    count = _positive(int)
    for flag, kind, default, metavar, text in (
        ("--wait", seconds, 60.0, "SECONDS", "how long to wait for AVAILABLE (%(default)s)"),
        ("--poll", seconds, 1.0, "SECONDS", "status polling interval (%(default)s)"),
        ("--timeout", seconds, 10.0, "SECONDS", "deadline of each whole request (%(default)s)"),
        (
            "--deadline",
            seconds,
            None,
            "SECONDS",
            "deadline of the whole run (default: --wait + (--repeat + 3) * --timeout)",
        ),
        ("--rtol", _tolerance, None, None, "relative tolerance (default: the manifest's)"),
        ("--atol", _tolerance, None, None, "absolute tolerance (default: the manifest's)"),
        ("--repeat", count, 5, "N", "Predict calls per host for the latency figures (%(default)s)"),
        (
            "--max-message-mb",
            count,
            64,
            "MB",
            "gRPC max send/receive message size and REST answer limit (%(default)s, at most "
            f"{MAX_MESSAGE_MB})",
        ),
    ):
        p.add_argument(flag, type=kind, default=default, metavar=metavar, help=text)
    p.add_argument("--tls-ca", type=Path, metavar="PEM", help="gRPC over TLS: CA certificate(s)")
    p.add_argument("--tls-cert", type=Path, metavar="PEM", help="mutual TLS: client certificate")
    p.add_argument("--tls-key", type=Path, metavar="PEM", help="mutual TLS: client private key")
    p.add_argument(
        "--tls-server-name",
        metavar="NAME",
        help="name the server certificate must carry, when it is not the host in --grpc",
    )
    p.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    return p


def _tls(args: argparse.Namespace) -> tuple[TlsConfig | None, str]:
    if args.tls_ca is None:
        if args.tls_cert or args.tls_key or args.tls_server_name:
            return None, "--tls-cert, --tls-key and --tls-server-name need --tls-ca"
        return None, ""
    if (args.tls_cert is None) != (args.tls_key is None):
        return None, "mutual TLS needs both --tls-cert and --tls-key"
    for flag, path in (
        ("--tls-ca", args.tls_ca),
        ("--tls-cert", args.tls_cert),
        ("--tls-key", args.tls_key),
    ):
        if path is not None and not path.is_file():
            return None, f"{flag} {path}: no such file"
    return (
        TlsConfig(
            ca_file=str(args.tls_ca),
            cert_file=str(args.tls_cert) if args.tls_cert else None,
            key_file=str(args.tls_key) if args.tls_key else None,
            server_name=args.tls_server_name,
        ),
        "",
    )


def _arm_watchdog(seconds: float) -> threading.Timer:
    """Last resort: whatever blocks, the process ends (exit 1) shortly after the deadline."""

    def expire() -> None:
        print(
            f"smoke_test.py: FAIL the run's deadline of {seconds - 0.5:g} s passed before every "
            "host answered",
            file=sys.stderr,
            flush=True,
        )
        os._exit(1)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer


def _fail(message: str) -> int:
    print(f"smoke_test.py: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    entered = time.monotonic()
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
    if args.max_message_mb > MAX_MESSAGE_MB:
        return _fail(f"--max-message-mb {args.max_message_mb}: at most {MAX_MESSAGE_MB}")
    tls, problem = _tls(args)
    if problem:
        return _fail(problem)
    try:
        manifest = load_manifest(args.manifest)
        signature = args.signature or manifest.golden().signature
        _ = manifest.model_name, manifest.signatures
    except ManifestError as exc:
        return _fail(str(exc))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return _fail(f"--manifest {args.manifest}: unusable manifest ({type(exc).__name__}: {exc})")
    deadline_s = args.deadline
    if deadline_s is None:
        deadline_s = args.wait + (args.repeat + 3) * args.timeout
    started = time.monotonic()
    watchdog = _arm_watchdog(deadline_s + 0.5)
    try:
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
            deadline=started + deadline_s,
            tls=tls,
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
                "deadline_s": deadline_s,
                "run_seconds": round(time.monotonic() - entered, 3),
                # The fleet table and failure lines as the plain output prints them (the
                # tfserving_verify role shows these: one implementation of the table).
                "table": format_table(reports).splitlines(),
                "failures": failure_lines(reports),
            }
            print(json.dumps(doc, indent=1))
        else:
            print(format_table(reports))
        for line in failure_lines(reports):
            print(f"smoke_test.py: {line}", file=sys.stderr)
        return 0 if ok else 1
    finally:
        watchdog.cancel()
