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
from dataclasses import dataclass
from pathlib import Path

from tfs_fleet.client import TlsConfig
from tfs_fleet.golden import GoldenError, GoldenRequest, from_sample, load_golden
from tfs_fleet.manifest import MANIFEST_NAME, Manifest, ManifestError, load_manifest
from tfs_fleet.savedmodel import (
    WARMUP_FILE,
    SavedModelError,
    SavedModelInfo,
    find_saved_model_file,
    read_saved_model,
    signatures_from_doc,
)
from tfs_fleet.smoke import SmokeOptions, Target, failure_lines, format_table, smoke_fleet
from tfs_fleet.warmup import WarmupError, WarmupRecord, read_warmup

EPILOG = """\
examples:
  smoke_test.py --saved-model /srv/models/mnist/7 --previous-saved-model /srv/models/mnist/6 \\
      --golden mnist_golden.json --grpc gpu1:8500 --rest gpu1:8501 --grpc gpu2:8500 --rest gpu2:8501
  smoke_test.py --manifest /srv/models/half_plus_two/1/tfs_fleet_manifest.json \\
      --grpc gpu1:8500 --rest gpu1:8501 --version 1

What the hosts must serve comes from the SavedModel version directory (--saved-model DIR:
saved_model.pb or saved_model.pbtxt, the MetaGraph whose tags equal --saved-model-tags, as TF
Serving loads it; saved_model.cpb, a chunked SavedModel, cannot be read here). --manifest FILE
(export_model.py's tfs_fleet_manifest.json) means the SavedModel of its own directory plus the
manifest's golden sample. The n-th --grpc pairs with the n-th --rest (one pair per host).

Checks per host, each PASS, FAIL or NOT RUN (with its reason) in the table and in --json:
  status               gRPC GetModelStatus until the version is AVAILABLE (bounded by --wait)
  signatures           REST metadata serves exactly the SavedModel's signatures (names, method,
                       every input/output key, dtype, shape); with --previous-saved-model every
                       signature of that version is still served
  predict <signature>  one per signature whose inputs are all numeric: a Predict of ones built
                       from the signature (unknown dimensions 1, unknown rank [1]); the answer
                       must have exactly the declared outputs, dtypes and fitting shapes, all
                       finite. A signature that takes strings (serialized tf.Example: classify,
                       regress) is not built: it is PASS or FAIL by the warmup records or golden
                       requests that call it, NOT RUN otherwise
  warmup               assets.extra/tf_serving_warmup_requests (PredictionLog TFRecords, at most
                       1000) replayed with Predict / Classify / Regress / MultiInference; every
                       call must succeed with finite floats
  golden               the manifest's sample and/or --golden FILE: every answer compared within
                       its tolerances (--rtol/--atol override them all)
Built predicts and golden requests are sent --repeat times; every answer is checked. A host
passes when no check FAILed and status, signatures and at least one check of its answers
(a built predict, warmup or golden) PASSed; a NOT RUN does not fail it, but it is not verified
for that check. When nothing could be called, the host fails (check "answers").

--golden FILE: JSON in TF Serving's REST formats (tensorflow_serving/util/json_tensor.h):
  {"rtol": 1e-5, "atol": 1e-6,
   "requests": [
    {"signature": "predict_images", "method": "predict",
     "inputs": {"images": [[0.0, 0.5]]}, "outputs": {"scores": [[0.1, 0.9]]}, "rtol": 1e-4},
    {"signature": "serving_default", "method": "classify",
     "examples": [{"x": 1.0, "word": "a", "raw": {"b64": "AAE="}}], "context": {"c": 1},
     "results": [[["0", 0.1], ["1", 0.9]]]},
    {"signature": "regress_x_to_y", "method": "regress",
     "examples": [{"x": 2.0}], "results": [3.0]}]}
  Predict "inputs" name every input (values in the signature's dtype; strings as text or
  {"b64": ...}), "outputs" the ones to compare; classify "results" are per example the
  [label, score] pairs in the model's order, regress "results" one value per example;
  "signature" defaults to serving_default, "method" to predict, "name" labels an entry. Example
  features: an integer is int64, a number with a fraction float, a string or {"b64": ...}
  bytes, a list several values of one kind. A file that does not fit the SavedModel's
  signatures is refused (exit 2) before any request, naming the file and the entry.

Every request ends within --timeout (the whole request, however slowly the server answers),
and the whole run within --deadline (default: --wait + (--repeat + 3) * --timeout); REST
answers over --max-message-mb are refused unread.

gRPC over TLS: --tls-ca CA.pem (server certificate check); mutual TLS adds --tls-cert and
--tls-key (the client's certificate and key).

exit status: 0 every host passed; 1 a host failed a check (stderr names host and check) or
             the run deadline passed; 2 bad arguments, SavedModel, manifest or golden file
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
        description="Smoke-test TF Serving hosts after a deploy against the SavedModel they\n"
        "should serve: version AVAILABLE, the SavedModel's signatures served, Predicts built\n"
        "from the signatures, the version's warmup records and golden requests answered.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--grpc", action="append", default=[], metavar="HOST:PORT", required=True)
    p.add_argument("--rest", action="append", default=[], metavar="HOST:PORT", required=True)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--saved-model",
        type=Path,
        metavar="DIR",
        help="the SavedModel version directory the hosts should serve (saved_model.pb or "
        ".pbtxt), on this machine",
    )
    source.add_argument(
        "--manifest",
        type=Path,
        metavar="PATH",
        help="tfs_fleet_manifest.json written by export_model.py: the SavedModel of its "
        "directory plus its golden sample",
    )
    p.add_argument(
        "--saved-model-tags",
        default="serve",
        metavar="TAGS",
        help="comma-separated tag set of the MetaGraph to read, as TF Serving's "
        "--saved_model_tags (%(default)s)",
    )
    p.add_argument(
        "--previous-saved-model",
        type=Path,
        metavar="DIR",
        help="the version the fleet served before: each of its signatures must still be served",
    )
    p.add_argument(
        "--golden",
        type=Path,
        metavar="FILE",
        help="JSON requests with expected answers (format below)",
    )
    p.add_argument(
        "--model",
        help="served model name (default: the manifest's model_name, else the name of the "
        "directory above the version directory)",
    )
    p.add_argument(
        "--version",
        type=int,
        metavar="N",
        help="version to check (default: with --saved-model the version directory's number, "
        "with --manifest the highest AVAILABLE one)",
    )
    p.add_argument(
        "--signature",
        action="append",
        default=[],
        metavar="NAME",
        help="a signature that must be served (repeatable; the signatures check compares all "
        "of them with the SavedModel anyway)",
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
        (
            "--rtol",
            _tolerance,
            None,
            None,
            "relative tolerance of every golden comparison (default: each request's own)",
        ),
        (
            "--atol",
            _tolerance,
            None,
            None,
            "absolute tolerance of every golden comparison (default: each request's own)",
        ),
        (
            "--repeat",
            count,
            5,
            "N",
            "calls of each built predict and golden request per host, every answer checked "
            "(%(default)s)",
        ),
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


class SetupError(ValueError):
    """Something to fix before any request: exit 2 with this message."""


@dataclass
class Plan:
    """What the run checks, all read before the first request."""

    model: str
    saved_model: SavedModelInfo
    version: int | None
    golden: list[GoldenRequest]
    manifest: Path | None = None
    previous: SavedModelInfo | None = None
    warmup: list[WarmupRecord] | None = None
    warmup_error: str | None = None


def _tags(text: str) -> frozenset[str]:
    tags = frozenset(t.strip() for t in text.split(",") if t.strip())
    if not tags:
        raise SetupError(f"--saved-model-tags {text!r}: give at least one tag (e.g. serve)")
    return tags


def _read(flag: str, directory: Path, tags: frozenset[str]) -> SavedModelInfo:
    try:
        return read_saved_model(directory, tags)
    except SavedModelError as exc:
        raise SetupError(f"{flag} {exc}") from exc


def _manifest_sample(manifest: Manifest) -> GoldenRequest:
    sample = manifest.golden()
    return from_sample(
        f"manifest {manifest.path} sample",
        sample.signature,
        sample.inputs,
        sample.expected,
        sample.rtol,
        sample.atol,
    )


def _load_manifest(path: Path) -> Manifest:
    try:
        manifest = load_manifest(path)
        _ = manifest.model_name, manifest.signatures
        return manifest
    except ManifestError as exc:
        raise SetupError(str(exc)) from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SetupError(
            f"--manifest {path}: unusable manifest ({type(exc).__name__}: {exc})"
        ) from exc


def plan_run(args: argparse.Namespace) -> Plan:
    """Read the SavedModel(s), manifest, golden file and warmup records; SetupError on
    anything unusable (nothing has been sent yet)."""
    tags = _tags(args.saved_model_tags)
    manifest: Manifest | None = None
    golden: list[GoldenRequest] = []
    if args.saved_model is not None:
        info = _read("--saved-model", args.saved_model, tags)
        beside = args.saved_model / MANIFEST_NAME
        if beside.is_file():
            manifest = _load_manifest(beside)
        version = args.version if args.version is not None else info.version
        default_model = args.saved_model.resolve().parent.name
    else:
        manifest = _load_manifest(args.manifest)
        directory = args.manifest.parent
        try:
            find_saved_model_file(directory)
            info = _read("--manifest", directory, tags)
        except SavedModelError:
            # A manifest without its SavedModel beside it: the signatures it records.
            try:
                signatures = signatures_from_doc(manifest.signatures, f"--manifest {args.manifest}")
            except SavedModelError as exc:
                raise SetupError(str(exc)) from exc
            warmup_file = directory / WARMUP_FILE
            info = SavedModelInfo(
                path=directory,
                format="manifest",
                tags=tags,
                signatures=signatures,
                warmup_file=warmup_file if warmup_file.is_file() else None,
            )
        version = args.version
        default_model = ""
    if manifest is not None:
        try:
            golden.append(_manifest_sample(manifest))
        except ManifestError as exc:
            raise SetupError(str(exc)) from exc
        default_model = manifest.model_name
    previous = None
    if args.previous_saved_model is not None:
        previous = _read("--previous-saved-model", args.previous_saved_model, tags)
    if args.golden is not None:
        try:
            golden.extend(load_golden(args.golden, info.signatures))
        except GoldenError as exc:
            raise SetupError(str(exc)) from exc
    warmup, warmup_error = None, None
    if info.warmup_file is not None:
        try:
            warmup = read_warmup(info.warmup_file)
        except WarmupError as exc:
            warmup_error = str(exc)
    model = args.model or default_model
    if not model:
        raise SetupError("--model is needed: no manifest or directory names the model")
    return Plan(
        model=model,
        saved_model=info,
        version=version,
        golden=golden,
        manifest=manifest.path if manifest is not None else None,
        previous=previous,
        warmup=warmup,
        warmup_error=warmup_error,
    )


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
        plan = plan_run(args)
    except SetupError as exc:
        return _fail(str(exc))
    deadline_s = args.deadline
    if deadline_s is None:
        deadline_s = args.wait + (args.repeat + 3) * args.timeout
    started = time.monotonic()
    watchdog = _arm_watchdog(deadline_s + 0.5)
    try:
        opts = SmokeOptions(
            model=plan.model,
            saved_model=plan.saved_model,
            previous=plan.previous,
            golden=plan.golden,
            warmup=plan.warmup,
            warmup_error=plan.warmup_error,
            version=plan.version,
            require_signatures=list(args.signature),
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
            info = plan.saved_model
            doc = {
                "ok": ok,
                "model": opts.model,
                "version": plan.version,
                "saved_model": str(info.path),
                "saved_model_format": info.format,
                "saved_model_tags": sorted(info.tags),
                "signatures": {name: sig.to_doc() for name, sig in info.public.items()},
                "manifest": str(plan.manifest) if plan.manifest is not None else None,
                "previous_saved_model": (
                    str(plan.previous.path) if plan.previous is not None else None
                ),
                "golden": str(args.golden) if args.golden is not None else None,
                "golden_requests": len(plan.golden),
                "warmup_records": len(plan.warmup) if plan.warmup is not None else None,
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
        sys.stdout.flush()  # the table before the failure lines on a shared terminal
        for line in failure_lines(reports):
            print(f"smoke_test.py: {line}", file=sys.stderr)
        return 0 if ok else 1
    finally:
        watchdog.cancel()
