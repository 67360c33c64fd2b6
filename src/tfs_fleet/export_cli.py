"""Command line of scripts/export_model.py. Arguments are checked before TensorFlow loads."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  export_model.py --demo half_plus_two --export-base /srv/models
      -> /srv/models/half_plus_two/1 (the next run writes .../2)
  export_model.py --demo image --export-base /srv/models --warmup 8 --example-signature tf_example
  export_model.py --keras-model net.keras --model-name resnet --export-base /srv/models --version 7
  export_model.py --checkpoint runs/tag --model-fn mypkg.nets:build --model-name tag \\
      --export-base /srv/models
  export_model.py --saved-model /data/exports/mnist/1 --export-base /srv/models --warmup-records 4
      -> /srv/models/mnist/<next>: the SavedModel you already have, adopted (copied, loaded,
         every signature run once and checked, manifest added; the source is never written)

Each version holds saved_model.pb, variables/, optionally assets.extra/tf_serving_warmup_requests,
and tfs_fleet_manifest.json (signatures, sha256 of every file, golden sample for smoke_test.py).

--saved-model DIR: DIR is one version directory (saved_model.pb or saved_model.pbtxt). Inputs of
each signature: --sample, else the model's own warmup records, else built from the signature
(numbers; unknown dimensions 1). A signature taking strings (serialized tf.Example) without
--sample or warmup records is reported as not run. Refused (exit 3) when the model does not
load, a signature fails, an answer is not finite or not of its declared dtype and shape, or one
of the model's own warmup records fails. The golden sample: --golden-signature, else
serving_default or another signature with numeric inputs that ran. The model's own warmup
records are kept (--warmup-records then adds none).

exit status: 0 published; 1 unexpected error; 2 bad arguments or model source;
             3 validation failed (nothing published); 4 --version already exists (nothing changed)
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="export_model.py",
        description="Export a TensorFlow 2 model, or adopt a SavedModel you already have, as a "
        "numbered TF Serving version: staged in a non-numeric directory, loaded with tag 'serve' "
        "and checked, then renamed into place with a JSON manifest.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("model source (exactly one)")
    one = src.add_mutually_exclusive_group(required=True)
    one.add_argument("--demo", choices=["half_plus_two", "image"], help="built-in demo model")
    one.add_argument("--keras-model", type=Path, metavar="FILE", help="Keras .keras/.h5 file")
    one.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="checkpoint directory (latest checkpoint is restored) or prefix; needs --model-fn",
    )
    one.add_argument(
        "--saved-model",
        type=Path,
        metavar="DIR",
        help="an existing SavedModel version directory (TF1 or TF2) to adopt; only read",
    )
    src.add_argument(
        "--model-fn",
        metavar="MODULE:FUNCTION",
        help="function building the model for --checkpoint (a Keras model with one input, or "
        "a callable tf.Module with a serving_input_spec tf.TensorSpec)",
    )
    src.add_argument(
        "--checkpoint-attr",
        default="model",
        help="attribute the model was saved under: tf.train.Checkpoint(ATTR=model) (%(default)s)",
    )
    out = p.add_argument_group("output")
    out.add_argument("--export-base", type=Path, required=True, metavar="DIR")
    out.add_argument(
        "--model-name",
        help="default: the demo name, Keras file stem, function, or for --saved-model the "
        "directory's name (its parent's when the name is a version number)",
    )
    out.add_argument("--version", type=int, metavar="N", help="default: highest existing + 1")
    out.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    sig = p.add_argument_group("signatures")
    sig.add_argument("--signature-name", default="serving_default", help="(%(default)s)")
    sig.add_argument("--input-key", default="x", help="(%(default)s)")
    sig.add_argument("--output-key", default="pred", help="(%(default)s)")
    sig.add_argument(
        "--example-signature",
        metavar="NAME",
        help="also add signature NAME taking serialized tf.Example strings (parse_example)",
    )
    sig.add_argument("--example-input-key", default="examples", help="(%(default)s)")
    val = p.add_argument_group("validation, golden sample, warmup")
    val.add_argument(
        "--sample",
        type=Path,
        metavar="FILE",
        help="sample input batch: FILE.npy; with --saved-model also FILE.npz (arrays named by "
        "input key) or a TFRecord of serialized tf.Example or of PredictionLog",
    )
    val.add_argument(
        "--golden-signature",
        metavar="NAME",
        help="--saved-model: the signature whose answer the manifest records (default: "
        "serving_default or another one with numeric inputs that ran)",
    )
    val.add_argument("--rtol", type=float, default=1e-5, help="(%(default)s)")
    val.add_argument("--atol", type=float, default=1e-6, help="(%(default)s)")
    val.add_argument(
        "--warmup",
        "--warmup-records",
        dest="warmup",
        type=int,
        default=0,
        metavar="N",
        help="write N (1..1000) warmup records to assets.extra/ (default: none)",
    )
    return p


def _fail(message: str, code: int = 2) -> int:
    print(f"export_model.py: error: {message}", file=sys.stderr)
    return code


SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


def _is_saved_model_dir(path: Path) -> bool:
    return any((path / name).is_file() for name in SAVED_MODEL_FILES)


def saved_model_problem(path: Path) -> str | None:
    """Why ``path`` is not a SavedModel version directory (None when it is); no TensorFlow."""
    where = f"--saved-model {path}"
    if not path.exists():
        return f"{where}: no such directory"
    if not path.is_dir():
        return f"{where}: not a directory (give a SavedModel version directory)"
    if _is_saved_model_dir(path):
        return None
    try:
        versions = sorted(
            (p for p in path.iterdir() if p.is_dir() and p.name.isdigit()),
            key=lambda p: int(p.name),
        )
    except OSError as exc:
        return f"{where}: cannot list it: {exc}"
    versions = [p for p in versions if _is_saved_model_dir(p)]
    hint = ""
    if versions:
        hint = (
            f"; it holds the versions {', '.join(p.name for p in versions[-5:])}: give one of "
            f"them, e.g. --saved-model {versions[-1]}"
        )
    return f"{where}: not a SavedModel directory (no {' or '.join(SAVED_MODEL_FILES)}){hint}"


def precheck(args: argparse.Namespace) -> str | None:
    """Problems that need no TensorFlow; returns a message or None."""
    if args.saved_model is not None:
        problem = saved_model_problem(args.saved_model)
        if problem:
            return problem
        for flag, value, default in (
            ("--signature-name", args.signature_name, "serving_default"),
            ("--input-key", args.input_key, "x"),
            ("--output-key", args.output_key, "pred"),
            ("--example-signature", args.example_signature, None),
        ):
            if value != default:
                return (
                    f"{flag} does not apply to --saved-model: an adopted SavedModel keeps its own "
                    "signatures"
                )
    elif args.golden_signature is not None:
        return "--golden-signature is only used with --saved-model"
    if args.checkpoint is not None and not args.model_fn:
        return "--checkpoint needs --model-fn MODULE:FUNCTION to build the model"
    if args.model_fn and args.checkpoint is None:
        return "--model-fn is only used with --checkpoint"
    if args.model_fn and (":" not in args.model_fn or args.model_fn.startswith(":")):
        return f"--model-fn {args.model_fn!r}: expected MODULE:FUNCTION, e.g. mypkg.nets:build"
    for flag, path in (("--keras-model", args.keras_model), ("--sample", args.sample)):
        if path is not None and not path.is_file():
            return f"{flag} {path}: no such file"
    if args.checkpoint is not None and not (
        args.checkpoint.exists() or Path(f"{args.checkpoint}.index").exists()
    ):
        return f"--checkpoint {args.checkpoint}: no such directory or checkpoint prefix"
    if args.export_base.exists() and not args.export_base.is_dir():
        return f"--export-base {args.export_base}: exists and is not a directory"
    if args.version is not None and args.version < 1:
        return f"--version {args.version}: versions are positive integers"
    if not 0 <= args.warmup <= 1000:
        return f"--warmup {args.warmup}: give 0..1000 records (TF Serving reads at most 1000)"
    return None


def _model_name(args: argparse.Namespace) -> str:
    if args.model_name:
        return str(args.model_name)
    if args.demo:
        return str(args.demo)
    if args.keras_model is not None:
        return str(args.keras_model.stem)
    if args.saved_model is not None:
        path = args.saved_model.resolve()
        return path.parent.name if path.name.isdigit() else path.name
    return str(args.model_fn.rpartition(":")[2])


def _existing_version_dir(model_dir: Path, version: int | None) -> Path | None:
    """The directory TF Serving would read as ``version`` ('7' or '0007'), if any."""
    if version is None or not model_dir.is_dir():
        return None
    for path in model_dir.iterdir():
        if path.is_dir() and path.name.isdigit() and int(path.name) == version:
            return path
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = precheck(args)
    if problem:
        return _fail(problem)
    name = _model_name(args)
    existing = _existing_version_dir(args.export_base / name, args.version)
    if existing is not None:
        return _fail(
            f"--version {args.version}: {existing} already exists; versions are never "
            "overwritten (omit --version to take the next number)",
            4,
        )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print("export_model.py: loading TensorFlow ...", file=sys.stderr, flush=True)
    from tfs_fleet import export as ex

    opts = ex.ExportOptions(
        export_base=args.export_base,
        model_name=name,
        version=args.version,
        signature_name=args.signature_name,
        input_key=args.input_key,
        output_key=args.output_key,
        example_signature=args.example_signature,
        example_input_key=args.example_input_key,
        warmup_records=args.warmup,
        sample_path=args.sample,
        rtol=args.rtol,
        atol=args.atol,
        golden_signature=args.golden_signature,
    )
    try:
        if args.saved_model is not None:
            result = ex.adopt(args.saved_model, opts)
        else:
            result = _export(ex, args, opts)
    except ex.ExportError as exc:
        return _fail(str(exc), exc.exit_code)
    if args.json:
        doc = {
            "model_name": name,
            "version": result.version,
            "path": str(result.path),
            "manifest": str(result.manifest_path),
            "timings_s": result.timings,
        }
        if args.saved_model is not None:
            doc["signature_checks"] = result.checks
        print(json.dumps(doc, indent=1))
    else:
        print(result.path)
    return 0


def _export(ex: Any, args: argparse.Namespace, opts: Any) -> Any:
    """A model built here (demo, Keras file, checkpoint) exported."""
    if args.demo:
        source = ex.demo_source(args.demo)
    elif args.keras_model is not None:
        source = ex.keras_source(args.keras_model)
    else:
        source = ex.checkpoint_source(args.checkpoint, args.model_fn, args.checkpoint_attr)
    return ex.export(source, opts)
