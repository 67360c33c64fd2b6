"""Export a TF2 SavedModel as a numbered, validated, atomically published version.

Layout: ``<export base>/<model name>/<version>/{saved_model.pb, variables/, assets.extra/,
tfs_fleet_manifest.json}``. The version is written to a non-numeric staging directory beside the
target (TF Serving only loads directories whose names are numbers), reloaded with the "serve" tag
and compared with the in-memory model, then renamed into place. Nothing numeric appears unless the
whole version validated.

This module imports TensorFlow; :mod:`tfs_fleet.export_cli` checks arguments before it does.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

import tfs_fleet
from tfs_fleet.client import signature_summary
from tfs_fleet.manifest import MANIFEST_FORMAT, MANIFEST_NAME, file_checksums
from tfs_fleet.protos import example_pb2, prediction_log_pb2, saved_model_pb2
from tfs_fleet.tensors import array_to_doc, to_tensor_proto

WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many warmup records
STAGING_PREFIX = ".tfs-fleet-staging-"
DEMOS = ("half_plus_two", "image")


class ExportError(RuntimeError):
    """Export refused or failed; ``exit_code`` is the CLI's exit status."""

    exit_code = 1


class UsageError(ExportError):
    exit_code = 2


class ValidationError(ExportError):
    exit_code = 3


class VersionExistsError(ExportError):
    exit_code = 4


@dataclass
class ModelSource:
    """A callable model plus what is needed to serve it."""

    root: Any  # a trackable object (tf.Module or Keras model) that owns the variables
    call: Callable[[Any], Any]  # batch tensor -> output tensor
    input_spec: Any  # tf.TensorSpec, batch dimension first
    description: str
    sample: np.ndarray | None = None


@dataclass
class ExportOptions:
    export_base: Path
    model_name: str
    version: int | None = None
    signature_name: str = "serving_default"
    input_key: str = "x"
    output_key: str = "pred"
    example_signature: str | None = None  # e.g. "tf_example"; None: no second signature
    example_input_key: str = "examples"
    warmup_records: int = 0
    sample_path: Path | None = None
    sample_batch: int = 3
    rtol: float = 1e-5
    atol: float = 1e-6
    seed: int = 0


@dataclass
class ExportResult:
    version: int
    path: Path
    manifest_path: Path
    timings: dict[str, float] = field(default_factory=dict)


Progress = Callable[[str], None]


def _stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- sources -------------------------------------------------------------------------------


class _HalfPlusTwo(tf.Module):
    """y = 0.5 * x + 2 (the math of TF Serving's reference model)."""

    def __init__(self) -> None:
        super().__init__(name="half_plus_two")
        self.a = tf.Variable(0.5, name="a")
        self.b = tf.Variable(2.0, name="b")

    def __call__(self, x: Any) -> Any:
        return self.a * x + self.b


class _TinyImageNet(tf.Module):
    """A small, deterministic image classifier on 224x224x3 input (10 classes)."""

    def __init__(self, seed: int) -> None:
        super().__init__(name="tiny_image")
        rng = np.random.default_rng(seed)
        self.conv = tf.Variable(rng.normal(0, 0.2, (5, 5, 3, 8)).astype(np.float32), name="conv")
        self.conv_b = tf.Variable(np.zeros(8, np.float32), name="conv_b")
        self.dense = tf.Variable(rng.normal(0, 0.5, (8, 10)).astype(np.float32), name="dense")
        self.dense_b = tf.Variable(rng.normal(0, 0.1, 10).astype(np.float32), name="dense_b")

    def __call__(self, x: Any) -> Any:
        h = tf.nn.relu(tf.nn.conv2d(x, self.conv, strides=4, padding="SAME") + self.conv_b)
        pooled = tf.reduce_mean(h, axis=[1, 2])
        return tf.nn.softmax(tf.matmul(pooled, self.dense) + self.dense_b)


def demo_source(name: str, seed: int = 0) -> ModelSource:
    if name == "half_plus_two":
        module = _HalfPlusTwo()
        return ModelSource(
            root=module,
            call=module,
            input_spec=tf.TensorSpec([None, 1], tf.float32),
            description="demo half_plus_two (y = 0.5x + 2)",
            sample=np.array([[1.0], [2.0], [5.0]], np.float32),
        )
    if name == "image":
        image = _TinyImageNet(seed=20191222 + seed)
        sample = np.random.default_rng(seed).random((1, 224, 224, 3), dtype=np.float32)
        return ModelSource(
            root=image,
            call=image,
            input_spec=tf.TensorSpec([None, 224, 224, 3], tf.float32),
            description="demo image (224x224x3 -> 10 classes, deterministic weights)",
            sample=sample,
        )
    raise UsageError(f"--demo {name!r}: unknown demo, choose one of {', '.join(DEMOS)}")


def _keras_input_spec(model: Any, where: str) -> Any:
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1:
        raise UsageError(
            f"{where}: the model needs exactly one input (found "
            f"{len(inputs) if inputs else 'none'}); export multi-input models with a "
            "--model-fn builder that exposes serving_input_spec"
        )
    tensor = inputs[0]
    return tf.TensorSpec([None, *list(tensor.shape)[1:]], tf.as_dtype(tensor.dtype))


def keras_source(path: Path) -> ModelSource:
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--keras-model {path}: cannot load it as a Keras model: {exc}") from exc
    spec = _keras_input_spec(model, f"--keras-model {path}")
    return ModelSource(
        root=model,
        call=lambda x: model(x, training=False),
        input_spec=spec,
        description=f"keras model {path}",
    )


def load_model_fn(spec: str) -> Callable[[], Any]:
    """'package.module:function' -> the function; UsageError naming the flag otherwise."""
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise UsageError(f"--model-fn {spec!r}: expected MODULE:FUNCTION, e.g. mypkg.nets:build")
    if os.getcwd() not in sys.path:  # like `python -m`: modules beside the caller import
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(
            f"--model-fn {spec!r}: cannot import module {module_name!r} ({exc}); "
            "put it on PYTHONPATH or run from its directory"
        ) from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise UsageError(
            f"--model-fn {spec!r}: module {module_name!r} has no function {func_name!r}"
        )
    return func


def _resolve_checkpoint(path: Path) -> str:
    if path.is_dir():
        latest = tf.train.latest_checkpoint(str(path))
        if latest is None:
            raise UsageError(
                f"--checkpoint {path}: directory holds no checkpoint ('checkpoint' file)"
            )
        return str(latest)
    if Path(f"{path}.index").is_file():
        return str(path)
    raise UsageError(f"--checkpoint {path}: neither a checkpoint directory nor a checkpoint prefix")


def checkpoint_source(checkpoint: Path, model_fn: str, attr: str = "model") -> ModelSource:
    """Build the model with ``model_fn`` and restore ``tf.train.Checkpoint(<attr>=model)``.

    The builder returns a Keras model with one input, or a tf.Module that is callable on a batch
    and has a ``serving_input_spec`` (a tf.TensorSpec with the batch dimension first).
    """
    builder = load_model_fn(model_fn)
    prefix = _resolve_checkpoint(checkpoint)
    try:
        model = builder()
    except Exception as exc:
        raise UsageError(
            f"--model-fn {model_fn}: the function raised {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(model) or not hasattr(model, "trainable_variables"):
        raise UsageError(
            f"--model-fn {model_fn}: returned {type(model).__name__}; it must return a Keras "
            "model or a callable tf.Module"
        )
    spec = getattr(model, "serving_input_spec", None)
    if spec is None:
        spec = _keras_input_spec(model, f"--model-fn {model_fn}")
    if not isinstance(spec, tf.TensorSpec):
        raise UsageError(f"--model-fn {model_fn}: serving_input_spec must be a tf.TensorSpec")
    status = tf.train.Checkpoint(**{attr: model}).restore(prefix).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as exc:
        raise UsageError(
            f"--checkpoint {prefix}: does not match the model from --model-fn {model_fn} "
            f"(saved as tf.train.Checkpoint({attr}=model)?): {str(exc)[:300]}"
        ) from exc
    if not model.trainable_variables:
        raise UsageError(f"--model-fn {model_fn}: the model has no variables to restore")
    call = (lambda x: model(x, training=False)) if hasattr(model, "layers") else model
    return ModelSource(model, call, spec, f"checkpoint {prefix} with {model_fn}")


# ---- versions and staging ------------------------------------------------------------------


def numeric_versions(model_dir: Path) -> dict[int, Path]:
    """Version directories as TF Serving sees them: names that are numbers ('0007' is 7)."""
    if not model_dir.is_dir():
        return {}
    return {int(p.name): p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()}


def choose_version(model_dir: Path, requested: int | None) -> int:
    existing = numeric_versions(model_dir)
    if requested is None:
        return max(existing, default=0) + 1
    if requested < 1:
        raise UsageError(f"--version {requested}: versions are positive integers")
    if requested in existing:
        raise VersionExistsError(
            f"--version {requested}: {existing[requested]} already exists; versions are never "
            "overwritten (omit --version to take the next number)"
        )
    return requested


@contextlib.contextmanager
def _model_lock(model_dir: Path) -> Iterator[None]:
    """Serialize concurrent exporters of one model (the lock file name is not numeric)."""
    with (model_dir / ".tfs-fleet-export.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def publish(
    staging: Path, model_dir: Path, version: int, explicit: bool, finalize: Callable[[int], None]
) -> tuple[int, Path]:
    """Rename the staging directory to its version number, never replacing anything.

    ``finalize(version)`` runs under the lock just before the rename (it writes the manifest with
    the final number: another exporter may have taken an automatic number meanwhile).
    """
    with _model_lock(model_dir):
        taken = numeric_versions(model_dir)
        if version in taken:
            if explicit:
                raise VersionExistsError(
                    f"--version {version}: {taken[version]} appeared during the export; "
                    "nothing was overwritten"
                )
            version = max(taken) + 1
        finalize(version)
        target = model_dir / str(version)
        os.rename(staging, target)
    return version, target


# ---- signatures, validation, manifest ------------------------------------------------------


def _feature_for(spec: Any, key: str) -> Any:
    shape = spec.shape[1:]
    if not shape.is_fully_defined():
        raise UsageError(
            f"--example-signature: input shape {spec.shape} must be fully defined after the "
            "batch dimension to parse tf.Example features"
        )
    if spec.dtype.is_floating:
        return tf.io.FixedLenFeature(shape=shape.as_list(), dtype=tf.float32)
    if spec.dtype.is_integer:
        return tf.io.FixedLenFeature(shape=shape.as_list(), dtype=tf.int64)
    raise UsageError(f"--example-signature: input dtype {spec.dtype.name} has no tf.Example form")


def build_signatures(source: ModelSource, opts: ExportOptions) -> dict[str, Any]:
    spec = source.input_spec
    in_key, out_key = opts.input_key, opts.output_key

    @tf.function(input_signature=[tf.TensorSpec(spec.shape, spec.dtype, name=in_key)])
    def serve(x: Any) -> dict[str, Any]:
        return {out_key: source.call(x)}

    signatures = {opts.signature_name: serve.get_concrete_function()}
    if opts.example_signature:
        feature = _feature_for(spec, in_key)
        ex_spec = tf.TensorSpec([None], tf.string, name=opts.example_input_key)

        @tf.function(input_signature=[ex_spec])
        def serve_examples(serialized: Any) -> dict[str, Any]:
            parsed = tf.io.parse_example(serialized, {in_key: feature})
            return {out_key: source.call(tf.cast(parsed[in_key], spec.dtype))}

        signatures[opts.example_signature] = serve_examples.get_concrete_function()
    return signatures


def make_sample(source: ModelSource, opts: ExportOptions) -> np.ndarray:
    if opts.sample_path is not None:
        try:
            sample = np.load(opts.sample_path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"--sample {opts.sample_path}: not a readable .npy file: {exc}"
            ) from exc
    elif source.sample is not None:
        sample = source.sample
    else:
        dims = source.input_spec.shape[1:]
        if not dims.is_fully_defined():
            raise UsageError(
                f"input shape {source.input_spec.shape} has unknown dimensions: give a sample "
                "batch with --sample FILE.npy"
            )
        rng = np.random.default_rng(opts.seed)
        sample = rng.random((opts.sample_batch, *dims.as_list()))
    sample = np.asarray(sample).astype(np.dtype(source.input_spec.dtype.as_numpy_dtype))
    if not source.input_spec.shape.is_compatible_with(sample.shape):
        raise UsageError(
            f"sample shape {sample.shape} does not fit input {source.input_spec.shape}"
        )
    return sample


def serialize_examples(sample: np.ndarray, key: str) -> list[bytes]:
    """One serialized tf.Example per batch row, the feature named ``key`` (flattened)."""
    out = []
    for row in sample:
        example = example_pb2.Example()
        feature = example.features.feature[key]
        if np.issubdtype(row.dtype, np.floating):
            feature.float_list.value.extend(row.ravel().astype(np.float32).tolist())
        else:
            feature.int64_list.value.extend(row.ravel().astype(np.int64).tolist())
        out.append(example.SerializeToString())
    return out


def _close(name: str, got: np.ndarray, want: np.ndarray, opts: ExportOptions) -> None:
    if got.shape != want.shape or not np.allclose(got, want, rtol=opts.rtol, atol=opts.atol):
        diff = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("nan")
        raise ValidationError(
            f"validation: signature {name!r} of the reloaded SavedModel differs from the "
            f"in-memory model (shapes {got.shape} vs {want.shape}, max abs diff {diff:.3g}, "
            f"rtol={opts.rtol}, atol={opts.atol}); the version was not published"
        )


def validate(staging: Path, opts: ExportOptions, sample: np.ndarray, expected: np.ndarray) -> None:
    """Reload the way TF Serving does (tag "serve") and compare each signature with the model."""
    try:
        loaded = tf.saved_model.load(str(staging), tags=["serve"])
    except Exception as exc:
        raise ValidationError(f"validation: reloading with tag 'serve' failed: {exc}") from exc
    for name in [opts.signature_name, opts.example_signature]:
        if not name:
            continue
        if name not in loaded.signatures:
            raise ValidationError(f"validation: signature {name!r} missing after reload")
        fn = loaded.signatures[name]
        if name == opts.signature_name:
            result = fn(**{opts.input_key: tf.constant(sample)})
        else:
            serialized = serialize_examples(sample, opts.input_key)
            result = fn(**{opts.example_input_key: tf.constant(serialized)})
        if set(result) != {opts.output_key}:
            raise ValidationError(f"validation: signature {name!r} outputs {sorted(result)}")
        _close(name, result[opts.output_key].numpy(), expected, opts)


def read_signature_defs(saved_model_dir: Path) -> dict[str, Any]:
    """Signatures of the 'serve' MetaGraph in saved_model.pb (what TF Serving reports)."""
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((saved_model_dir / "saved_model.pb").read_bytes())
    for meta_graph in proto.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValidationError(f"{saved_model_dir}: no MetaGraph tagged 'serve'")


def write_warmup(staging: Path, opts: ExportOptions, sample: np.ndarray) -> int:
    """TFRecord of PredictionLog, one single-row request per record, cycling through the sample."""
    count = opts.warmup_records
    if not 0 < count <= MAX_WARMUP_RECORDS:
        raise UsageError(f"--warmup {count}: give 1..{MAX_WARMUP_RECORDS} records")
    path = staging / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(count):
            log = prediction_log_pb2.PredictionLog()
            request = log.predict_log.request
            request.model_spec.name = opts.model_name
            request.model_spec.signature_name = opts.signature_name
            row = sample[i % len(sample)][np.newaxis, ...]
            request.inputs[opts.input_key].CopyFrom(to_tensor_proto(row))
            writer.write(log.SerializeToString())
    return count


def build_manifest(
    staging: Path,
    opts: ExportOptions,
    version: int,
    source: ModelSource,
    sample: np.ndarray,
    expected: np.ndarray,
) -> dict[str, Any]:
    sigs = read_signature_defs(staging)
    return {
        "format": MANIFEST_FORMAT,
        "model_name": opts.model_name,
        "version": version,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source.description,
        "tensorflow_version": tf.__version__,
        "tfs_fleet_version": tfs_fleet.__version__,
        "signatures": {
            name: signature_summary(sig)
            for name, sig in sorted(sigs.items())
            if not name.startswith("__")  # __saved_model_init_op: internal, not callable
        },
        "sample": {
            "signature": opts.signature_name,
            "inputs": {opts.input_key: array_to_doc(sample)},
            "expected_outputs": {opts.output_key: array_to_doc(expected)},
            "rtol": opts.rtol,
            "atol": opts.atol,
        },
        "warmup_records": opts.warmup_records,
        "files": file_checksums(staging),
    }


# ---- the export ----------------------------------------------------------------------------


def _check_names(opts: ExportOptions) -> None:
    if not opts.model_name or "/" in opts.model_name or opts.model_name.startswith("."):
        raise UsageError(f"--model-name {opts.model_name!r}: a plain directory name is needed")
    for flag, value in (
        ("--signature-name", opts.signature_name),
        ("--input-key", opts.input_key),
        ("--output-key", opts.output_key),
        ("--example-input-key", opts.example_input_key),
    ):
        if not value or not value.replace("_", "").replace("-", "").isalnum():
            raise UsageError(f"{flag} {value!r}: use letters, digits, '_' or '-'")
    if opts.example_signature is not None and opts.example_signature == opts.signature_name:
        raise UsageError(
            f"--example-signature {opts.example_signature!r}: same key as --signature-name; "
            "give the tf.Example signature its own name (e.g. tf_example)"
        )


def export(
    source: ModelSource, opts: ExportOptions, progress: Progress = _stderr_progress
) -> ExportResult:
    """Stage, validate, write the manifest and publish one version."""
    _check_names(opts)
    model_dir = opts.export_base / opts.model_name
    model_dir.mkdir(parents=True, exist_ok=True)
    version = choose_version(model_dir, opts.version)
    staging = model_dir / f"{STAGING_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
    timings: dict[str, float] = {}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        progress(f"export: {name} ...")
        start = time.perf_counter()
        value = fn()
        timings[name] = round(time.perf_counter() - start, 3)
        progress(f"export: {name} done in {timings[name]:.2f} s")
        return value

    try:
        sample = make_sample(source, opts)
        expected = np.asarray(source.call(tf.constant(sample)))
        signatures = step("trace signatures", lambda: build_signatures(source, opts))
        step("save", lambda: tf.saved_model.save(source.root, str(staging), signatures=signatures))
        step("validate", lambda: validate(staging, opts, sample, expected))
        if opts.warmup_records:
            step("warmup records", lambda: write_warmup(staging, opts, sample))
        manifest = step(
            "manifest", lambda: build_manifest(staging, opts, version, source, sample, expected)
        )

        def write_manifest(final_version: int) -> None:
            manifest["version"] = final_version
            text = json.dumps(manifest, indent=1) + "\n"
            (staging / MANIFEST_NAME).write_text(text, "utf-8")

        version, target = publish(
            staging, model_dir, version, opts.version is not None, write_manifest
        )
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    progress(f"export: published {target} (total {sum(timings.values()):.2f} s)")
    return ExportResult(version, target, target / MANIFEST_NAME, timings)
