"""Export a TF2 SavedModel as a numbered, validated, atomically published version.

Layout: ``<export base>/<model name>/<version>/{saved_model.pb, variables/, assets.extra/,
tfs_fleet_manifest.json}``. The version is written to a non-numeric staging directory beside the
target (TF Serving only loads directories whose names are numbers), reloaded with the "serve" tag
and compared with the in-memory model, then renamed into place. Nothing numeric appears unless the
whole version validated.

:func:`adopt` publishes a SavedModel that was written elsewhere (a TF1 ``SavedModelBuilder``
export, Keras 3's ``model.export``, ...) the same way: copied into the staging directory (the
source is only read), loaded, every signature run once and its answers checked against what the
signature declares, optional warmup records and the manifest added, then renamed into place.

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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import message, text_format

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
    golden_signature: str | None = None  # adopt: the signature of the golden sample


@dataclass
class ExportResult:
    version: int
    path: Path
    manifest_path: Path
    timings: dict[str, float] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)  # adopt: per signature


Progress = Callable[[str], None]
Step = Callable[[str, Callable[[], Any]], Any]  # step(name, fn): timed, with progress lines


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
    """Signatures of the 'serve' MetaGraph in saved_model.pb or saved_model.pbtxt (what TF
    Serving reports)."""
    proto = saved_model_pb2.SavedModel()
    binary, text = saved_model_dir / "saved_model.pb", saved_model_dir / "saved_model.pbtxt"
    try:
        if binary.is_file():
            proto.ParseFromString(binary.read_bytes())
        else:
            text_format.Parse(text.read_text("utf-8"), proto)
    except (OSError, UnicodeDecodeError, message.DecodeError, text_format.ParseError) as exc:
        raise ValidationError(f"{saved_model_dir}: unreadable SavedModel proto: {exc}") from exc
    for meta_graph in proto.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == {"serve"}:
            return dict(meta_graph.signature_def)
    raise ValidationError(
        f"{saved_model_dir}: no MetaGraph tagged exactly 'serve' (TF Serving's default tag set; "
        f"found {[sorted(m.meta_info_def.tags) for m in proto.meta_graphs]})"
    )


def _check_warmup_count(count: int) -> None:
    if not 0 < count <= MAX_WARMUP_RECORDS:
        raise UsageError(f"--warmup {count}: give 1..{MAX_WARMUP_RECORDS} records")


def write_prediction_logs(staging: Path, logs: Iterable[Any]) -> int:
    """assets.extra/tf_serving_warmup_requests: a TFRecord of PredictionLog (TF Serving's
    warmup format); returns the number of records."""
    path = staging / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
            count += 1
    return count


def write_warmup(staging: Path, opts: ExportOptions, sample: np.ndarray) -> int:
    """TFRecord of PredictionLog, one single-row request per record, cycling through the sample."""
    _check_warmup_count(opts.warmup_records)

    def logs() -> Iterator[Any]:
        for i in range(opts.warmup_records):
            log = prediction_log_pb2.PredictionLog()
            request = log.predict_log.request
            request.model_spec.name = opts.model_name
            request.model_spec.signature_name = opts.signature_name
            row = sample[i % len(sample)][np.newaxis, ...]
            request.inputs[opts.input_key].CopyFrom(to_tensor_proto(row))
            yield log

    return write_prediction_logs(staging, logs())


def build_manifest(
    staging: Path,
    opts: ExportOptions,
    version: int,
    source: ModelSource,
    sample: np.ndarray,
    expected: np.ndarray,
) -> dict[str, Any]:
    golden = sample_section(
        opts, opts.signature_name, {opts.input_key: sample}, {opts.output_key: expected}
    )
    return manifest_doc(
        staging, opts.model_name, version, source.description, golden, opts.warmup_records
    )


def sample_section(
    opts: ExportOptions,
    signature: str,
    inputs: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
) -> dict[str, Any]:
    """The manifest's golden sample: a request and the answer the smoke test expects."""
    return {
        "signature": signature,
        "inputs": {key: array_to_doc(value) for key, value in sorted(inputs.items())},
        "expected_outputs": {key: array_to_doc(value) for key, value in sorted(expected.items())},
        "rtol": opts.rtol,
        "atol": opts.atol,
    }


def manifest_doc(
    staging: Path,
    model_name: str,
    version: int,
    description: str,
    sample: dict[str, Any],
    warmup_records: int,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of a staged version (``files`` last: every other file is in place)."""
    sigs = read_signature_defs(staging)
    doc: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "model_name": model_name,
        "version": version,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": description,
        "tensorflow_version": tf.__version__,
        "tfs_fleet_version": tfs_fleet.__version__,
        "signatures": {
            name: signature_summary(sig)
            for name, sig in sorted(sigs.items())
            if not name.startswith("__")  # __saved_model_init_op: internal, not callable
        },
        "sample": sample,
        "warmup_records": warmup_records,
    }
    doc.update(extra or {})
    doc["files"] = file_checksums(staging)
    return doc


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

    def build(staging: Path, version: int, step: Step) -> dict[str, Any]:
        sample = make_sample(source, opts)
        expected = np.asarray(source.call(tf.constant(sample)))
        signatures = step("trace signatures", lambda: build_signatures(source, opts))
        step("save", lambda: tf.saved_model.save(source.root, str(staging), signatures=signatures))
        step("validate", lambda: validate(staging, opts, sample, expected))
        if opts.warmup_records:
            step("warmup records", lambda: write_warmup(staging, opts, sample))
        manifest: dict[str, Any] = step(
            "manifest", lambda: build_manifest(staging, opts, version, source, sample, expected)
        )
        return manifest

    return publish_version(opts, build, progress, "export")


def publish_version(
    opts: ExportOptions,
    build: Callable[[Path, int, Step], dict[str, Any]],
    progress: Progress = _stderr_progress,
    label: str = "export",
) -> ExportResult:
    """What every export shares: names checked, the version chosen, ``build(staging, version,
    step)`` fills the non-numeric staging directory (it does not exist yet) and returns the
    manifest, which is written with the final number just before the atomic rename. Anything
    that fails removes the staging directory; nothing numeric appears."""
    _check_names(opts)
    model_dir = opts.export_base / opts.model_name
    model_dir.mkdir(parents=True, exist_ok=True)
    version = choose_version(model_dir, opts.version)
    staging = model_dir / f"{STAGING_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
    timings: dict[str, float] = {}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        progress(f"{label}: {name} ...")
        start = time.perf_counter()
        value = fn()
        timings[name] = round(time.perf_counter() - start, 3)
        progress(f"{label}: {name} done in {timings[name]:.2f} s")
        return value

    try:
        manifest = build(staging, version, step)

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
    progress(f"{label}: published {target} (total {sum(timings.values()):.2f} s)")
    return ExportResult(version, target, target / MANIFEST_NAME, timings)


# ---- adopt: publish a SavedModel written elsewhere ------------------------------------------

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
BUILT = "built from the signature (unknown dimensions 1)"


@dataclass
class _Request:
    """Inputs for a signature: by input key, or serialized tf.Examples for its one string input.
    ``signature`` None: any signature the inputs fit."""

    origin: str
    signature: str | None = None
    inputs: dict[str, np.ndarray] | None = None
    examples: np.ndarray | None = None


@dataclass
class _Check:
    """One signature's check run (or why it was not run)."""

    name: str
    method: str
    feeds: dict[str, np.ndarray] = field(default_factory=dict)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    origin: str = ""
    reason: str = ""

    @property
    def ran(self) -> bool:
        return not self.reason

    def summary(self) -> dict[str, Any]:
        if not self.ran:
            return {"method": self.method, "status": "not run", "reason": self.reason}
        return {
            "method": self.method,
            "status": "ran",
            "inputs_from": self.origin,
            "input_shapes": {k: list(v.shape) for k, v in sorted(self.feeds.items())},
            "output_shapes": {k: list(v.shape) for k, v in sorted(self.outputs.items())},
        }


class _EagerRunner:
    """tf.saved_model.load: signatures called as functions (input keys as keyword arguments)."""

    loader = "tf.saved_model.load"

    def __init__(self, path: Path) -> None:
        self.loaded = tf.saved_model.load(str(path), tags=["serve"])

    def run(self, name: str, sig: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        fn = self.loaded.signatures.get(name)
        if fn is None:
            raise ValidationError(
                f"validation: signature {name!r} is in saved_model.pb but not callable after "
                "tf.saved_model.load"
            )
        result = fn(**{key: tf.convert_to_tensor(value) for key, value in feeds.items()})
        return {key: np.asarray(value.numpy()) for key, value in result.items()}

    def close(self) -> None:
        self.loaded = None


class _SessionRunner:
    """TF1's loader in a fresh Graph and Session (what TF Serving's SavedModelBundle does):
    feeds and fetches by the tensor names of the SignatureDef."""

    loader = "tf.compat.v1.saved_model.loader.load"

    def __init__(self, path: Path) -> None:
        from tensorflow.python.util import deprecation

        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        try:
            with self.graph.as_default(), deprecation.silence():
                tf.compat.v1.saved_model.loader.load(self.session, ["serve"], str(path))
        except BaseException:
            self.session.close()
            raise

    def run(self, name: str, sig: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        fetches = {key: info.name for key, info in sig.outputs.items()}
        feed = {sig.inputs[key].name: value for key, value in feeds.items()}
        result = self.session.run(fetches, feed_dict=feed)
        return {key: np.asarray(value) for key, value in result.items()}

    def close(self) -> None:
        self.session.close()


_Runner = _EagerRunner | _SessionRunner


def load_saved_model(path: Path, progress: Progress = _stderr_progress) -> _Runner:
    """tf.saved_model.load, or TF1's session loader when that refuses the graph (a TF1 export
    whose signatures it cannot prune, for one); ValidationError when neither loads it."""
    try:
        return _EagerRunner(path)
    except Exception as first:
        progress(
            f"adopt: tf.saved_model.load refused it ({type(first).__name__}: "
            f"{_first_line(first)}); loading with TF1's session loader"
        )
        try:
            return _SessionRunner(path)
        except Exception as exc:
            raise ValidationError(
                f"validation: the SavedModel does not load with tag 'serve': "
                f"tf.saved_model.load: {_first_line(first)}; "
                f"tf.compat.v1.saved_model.loader.load: {_first_line(exc)}"
            ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


def _copy_version(source: Path, staging: Path) -> int:
    """Copy the version's files into staging (new files and directories with this process's
    default modes, so a read-only source gives a writable copy); the source is only read."""

    def fail(exc: OSError) -> None:
        raise UsageError(f"--saved-model {source}: cannot read {exc.filename}: {exc}") from exc

    count = 0
    staging.mkdir()
    for root, dirs, files in os.walk(source, onerror=fail):
        here = Path(root)
        rel = here.relative_to(source)
        for name in dirs:
            if (here / name).is_symlink():
                raise UsageError(
                    f"--saved-model {source}: {(rel / name).as_posix()} is a symbolic link to a "
                    "directory; copy the model without links first"
                )
            (staging / rel / name).mkdir()
        for name in files:
            path = here / name
            if not path.is_file():
                raise UsageError(
                    f"--saved-model {source}: {(rel / name).as_posix()} is not a regular file"
                )
            if rel == Path() and name == MANIFEST_NAME:
                continue  # an older manifest: this export writes its own
            shutil.copyfile(path, staging / rel / name)
            count += 1
    return count


def _declared(info: Any) -> tuple[Any, list[int] | None]:
    """(tf dtype, shape with -1 for unknown; None for unknown rank) of a TensorInfo."""
    shape = None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]
    return tf.as_dtype(info.dtype), shape


def _built_inputs(sig: Any, seed: int) -> tuple[dict[str, np.ndarray] | None, str]:
    """Inputs from the signature alone: numbers for numeric inputs (unknown dimensions 1);
    (None, why) when an input cannot be built (strings, unknown rank, sparse)."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for key, info in sorted(sig.inputs.items()):
        if info.WhichOneof("encoding") != "name":
            return None, f"input {key!r} is a {info.WhichOneof('encoding')} tensor"
        dtype, shape = _declared(info)
        if dtype == tf.string:
            return None, (
                f"input {key!r} is DT_STRING (serialized tf.Example?) and no --sample or warmup "
                "record gives it"
            )
        if shape is None:
            return None, f"input {key!r} has unknown rank: give it with --sample"
        dims = [size if size >= 0 else 1 for size in shape]
        if dtype.is_floating or dtype.is_complex:
            values: np.ndarray = rng.random(dims)
        elif dtype.is_integer or dtype.is_bool:
            values = np.zeros(dims)
        else:
            return None, f"input {key!r}: dtype {dtype.name} cannot be built"
        feeds[key] = values.astype(dtype.as_numpy_dtype)
    return feeds, BUILT


def _shape_fits(shape: tuple[int, ...], declared: list[int] | None) -> bool:
    """A shape against a declared one: same rank, -1 matches any size (unknown rank: any)."""
    if declared is None:
        return True
    return len(shape) == len(declared) and all(
        want in (-1, got) for want, got in zip(declared, shape, strict=True)
    )


def _is_string(array: np.ndarray) -> bool:
    return array.dtype.kind in ("O", "S", "U")


def _fit(sig: Any, request: _Request) -> dict[str, np.ndarray] | None:
    """The request's inputs converted to what ``sig`` declares, or None when they do not fit."""
    inputs = dict(sig.inputs)
    if request.examples is not None:
        if len(inputs) != 1:
            return None
        [(key, info)] = inputs.items()
        return {key: request.examples} if tf.as_dtype(info.dtype) == tf.string else None
    given = request.inputs or {}
    if set(given) == {""}:  # one unnamed array (--sample FILE.npy): a one-input signature
        if len(inputs) != 1:
            return None
        given = {next(iter(inputs)): given[""]}
    if not set(inputs) <= set(given):
        return None
    feeds = {}
    for key, info in inputs.items():
        dtype, shape = _declared(info)
        value = np.asarray(given[key])
        if (dtype == tf.string) != _is_string(value):
            return None
        if request.signature is None and not _shape_fits(value.shape, shape):
            return None  # a sample for any signature goes only where its shape fits
        if dtype == tf.string:
            feeds[key] = np.asarray(
                [v.encode() if isinstance(v, str) else bytes(v) for v in value.ravel()],
                dtype=object,
            ).reshape(value.shape)
        else:
            feeds[key] = value.astype(dtype.as_numpy_dtype)
    return feeds


def _requests_from_logs(records: Iterable[bytes], what: str) -> list[_Request]:
    """PredictionLog records (TF Serving's warmup format) -> requests, by signature; ``what``
    names a record in messages ("the model's warmup record")."""
    out = []
    for index, raw in enumerate(records):
        log = prediction_log_pb2.PredictionLog.FromString(raw)
        kind = log.WhichOneof("log_type")
        where = f"{what} #{index + 1}"
        origin = f"from {where}"
        if kind == "predict_log":
            request = log.predict_log.request
            try:
                inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            except (TypeError, ValueError) as exc:
                raise ValidationError(
                    f"validation: {where}: unreadable input tensor: {exc}"
                ) from exc
            out.append(_Request(origin, _sig_name(request), inputs=inputs))
        elif kind in ("classify_log", "regress_log"):
            request = getattr(log, kind).request
            examples = _serialized_examples(request.input, where)
            out.append(_Request(origin, _sig_name(request), examples=examples))
        elif kind == "multi_inference_log":
            request = log.multi_inference_log.request
            examples = _serialized_examples(request.input, where)
            for task in request.tasks:
                out.append(_Request(origin, _sig_name(task), examples=examples))
        else:
            raise ValidationError(
                f"validation: {where}: log type {kind!r} is not a warmup request TF Serving runs"
            )
    return out


def _sig_name(request: Any) -> str:
    return str(request.model_spec.signature_name or "serving_default")


def _serialized_examples(model_input: Any, where: str) -> np.ndarray:
    """An Input proto's examples serialized (context bytes first, as TF Serving feeds them)."""
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        items = [e.SerializeToString() for e in model_input.example_list.examples]
    elif kind == "example_list_with_context":
        ctx = model_input.example_list_with_context.context.SerializeToString()
        items = [
            ctx + e.SerializeToString() for e in model_input.example_list_with_context.examples
        ]
    else:
        items = []
    if not items:
        raise ValidationError(f"validation: {where}: the request has no examples")
    return np.asarray(items, dtype=object)


def _read_records(path: Path, what: str, limit: int | None = None) -> list[bytes]:
    try:
        records = []
        for raw in tf.data.TFRecordDataset(str(path)):
            records.append(bytes(raw.numpy()))
            if limit is not None and len(records) > limit:
                raise ValidationError(
                    f"validation: {what} holds more than {limit} records; TF Serving refuses to "
                    "load such a version"
                )
        return records
    except tf.errors.OpError as exc:
        raise ValidationError(
            f"validation: {what} is not a readable TFRecord file: {exc.message}"
        ) from exc


def load_adopt_sample(path: Path) -> list[_Request]:
    """--sample for adopt: FILE.npy (one array: the input of a one-input signature), FILE.npz
    (arrays named by input key), or a TFRecord file of serialized tf.Example (fed to the string
    input of a one-input signature, e.g. a classification) or of PredictionLog (as warmup)."""
    origin = f"from --sample {path}"
    if path.suffix in (".npy", ".npz"):
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--sample {path}: not a readable {path.suffix} file: {exc}") from exc
        if isinstance(loaded, np.ndarray):
            return [_Request(origin, inputs={"": loaded})]
        with loaded:
            return [_Request(origin, inputs={k: loaded[k] for k in loaded.files})]
    try:
        records = _read_records(path, origin)
    except ValidationError as exc:
        why = str(exc).removeprefix("validation: ")
        raise UsageError(f"--sample {path}: neither .npy/.npz nor a TFRecord file ({why})") from exc
    if not records:
        raise UsageError(f"--sample {path}: the TFRecord file holds no records")
    if all(_is_prediction_log(raw) for raw in records):
        return _requests_from_logs(records, f"--sample {path} record")
    try:
        for raw in records:
            example_pb2.Example.FromString(raw)
    except message.DecodeError as exc:
        raise UsageError(
            f"--sample {path}: records are neither serialized tf.Example nor PredictionLog: {exc}"
        ) from exc
    return [_Request(origin, examples=np.asarray(records, dtype=object))]


def _is_prediction_log(raw: bytes) -> bool:
    """A serialized tf.Example never sets PredictionLog's log type (its fields 2-6)."""
    try:
        return prediction_log_pb2.PredictionLog.FromString(raw).WhichOneof("log_type") is not None
    except message.DecodeError:
        return False


def check_answer(name: str, sig: Any, outputs: dict[str, np.ndarray], origin: str) -> None:
    """The answer of a signature against its declaration: the declared output keys, each output
    of the declared dtype and shape (-1 matches any size), every number finite."""
    declared = dict(sig.outputs)
    if set(outputs) != set(declared):
        raise ValidationError(
            f"validation: signature {name!r} answered outputs {sorted(outputs)}, it declares "
            f"{sorted(declared)}"
        )
    for key, info in sorted(declared.items()):
        value = outputs[key]
        dtype, shape = _declared(info)
        what = f"validation: signature {name!r} output {key!r} (inputs {origin})"
        if dtype == tf.string:
            ok = _is_string(value)
        else:
            ok = value.dtype == np.dtype(dtype.as_numpy_dtype)
        if not ok:
            raise ValidationError(f"{what} is {value.dtype}, the signature declares {dtype.name}")
        if not _shape_fits(value.shape, shape):
            raise ValidationError(
                f"{what} has shape {list(value.shape)}, the signature declares {shape}; clients "
                "reading the metadata would be misled"
            )
        if dtype.is_floating or dtype.is_complex:
            finite = np.isfinite(value.astype(np.complex128 if dtype.is_complex else np.float64))
            if not finite.all():
                bad = int(finite.size - finite.sum())
                raise ValidationError(
                    f"{what} holds {bad} non-finite value(s) of {finite.size} (NaN or Inf)"
                )


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray], opts: ExportOptions) -> bool:
    for key, value in a.items():
        other = b[key]
        if value.shape != other.shape:
            return False
        if _is_string(value) or value.dtype.kind in ("b", "i", "u"):
            if not np.array_equal(value, other):
                return False
        elif not np.allclose(
            value.astype(np.complex128), other.astype(np.complex128), rtol=opts.rtol, atol=opts.atol
        ):
            return False
    return True


class _Adoption:
    """The checks of one adopted version, run on the staging copy."""

    def __init__(
        self, source: Path, staging: Path, opts: ExportOptions, progress: Progress
    ) -> None:
        self.source = source
        self.staging = staging
        self.opts = opts
        self.progress = progress
        self.sigs = {
            k: v for k, v in sorted(read_signature_defs(staging).items()) if not k.startswith("__")
        }
        if not self.sigs:
            raise ValidationError("validation: the 'serve' MetaGraph has no signatures to serve")
        self.samples = load_adopt_sample(opts.sample_path) if opts.sample_path else []
        warmup = staging / WARMUP_FILE
        self.user_warmup: list[bytes] | None = None
        if warmup.is_file():
            self.user_warmup = _read_records(
                warmup, f"the model's {WARMUP_FILE}", MAX_WARMUP_RECORDS
            )
        self.warmup_requests = _requests_from_logs(
            self.user_warmup or [], "the model's warmup record"
        )
        self.checks: dict[str, _Check] = {}
        self.runner: _Runner | None = None

    def _request_for(self, name: str, sig: Any) -> tuple[dict[str, np.ndarray] | None, str]:
        for request in [*self.samples, *self.warmup_requests]:
            if request.signature not in (None, name):
                continue
            feeds = _fit(sig, request)
            if feeds is not None:
                return feeds, request.origin
        return _built_inputs(sig, self.opts.seed)

    def _run(self, name: str, feeds: dict[str, np.ndarray], origin: str) -> dict[str, np.ndarray]:
        assert self.runner is not None
        sig = self.sigs[name]
        try:
            outputs = self.runner.run(name, sig, feeds)
        except ExportError:
            raise
        except Exception as exc:
            shapes = {k: list(v.shape) for k, v in sorted(feeds.items())}
            raise ValidationError(
                f"validation: signature {name!r} failed on inputs {shapes} {origin}: "
                f"{type(exc).__name__}: {_first_line(exc)}"
            ) from exc
        check_answer(name, sig, outputs, origin)
        return outputs

    def run_signatures(self) -> None:
        for name, sig in self.sigs.items():
            check = _Check(name, sig.method_name)
            feeds, origin = self._request_for(name, sig)
            if feeds is None:
                check.reason = origin
                self.progress(f"adopt: signature {name!r} ({sig.method_name}): not run: {origin}")
            else:
                check.feeds, check.origin = feeds, origin
                check.outputs = self._run(name, feeds, origin)
                shapes = {k: list(v.shape) for k, v in sorted(check.outputs.items())}
                self.progress(
                    f"adopt: signature {name!r} ({sig.method_name}): ran on inputs {origin}, "
                    f"answered {shapes}"
                )
            self.checks[name] = check
        if not any(c.ran for c in self.checks.values()):
            reasons = "; ".join(f"{c.name}: {c.reason}" for c in self.checks.values())
            raise UsageError(
                f"--saved-model {self.source}: no signature could be run ({reasons}); give inputs "
                "with --sample (FILE.npy, FILE.npz, or a TFRecord of serialized tf.Example)"
            )

    def replay_warmup(self) -> int:
        """Every warmup record of the model, as TF Serving replays them at load (a failing one
        fails the load there)."""
        for request in self.warmup_requests:
            name = str(request.signature)
            sig = self.sigs.get(name)
            feeds = None if sig is None else _fit(sig, request)
            if sig is None or feeds is None:
                what = "has no such signature" if sig is None else "does not fit its inputs"
                raise ValidationError(
                    f"validation: {request.origin.removeprefix('from ')} asks for signature "
                    f"{name!r}: the model {what}; "
                    "TF Serving would fail to load this version"
                )
            self._run(name, feeds, request.origin)
        return len(self.warmup_requests)

    def golden(self) -> _Check:
        ran = {name: c for name, c in self.checks.items() if c.ran}
        wanted = self.opts.golden_signature
        if wanted is not None:
            if wanted not in ran:
                why = self.checks[wanted].reason if wanted in self.checks else "no such signature"
                raise UsageError(
                    f"--golden-signature {wanted!r}: not usable ({why}); signatures that ran: "
                    f"{', '.join(sorted(ran))}"
                )
            chosen = ran[wanted]
        else:

            def numeric(c: _Check) -> bool:
                return not any(_is_string(v) for v in c.feeds.values())

            order = sorted(
                ran.values(),
                key=lambda c: (
                    not numeric(c),
                    c.name != "serving_default",
                    c.method != PREDICT_METHOD,
                    c.name,
                ),
            )
            chosen = order[0]
        again = self._run(chosen.name, chosen.feeds, chosen.origin)
        if not _same(chosen.outputs, again, self.opts):
            raise ValidationError(
                f"validation: signature {chosen.name!r} answered the same request differently "
                "twice, so no golden answer can be recorded; choose a deterministic signature "
                "with --golden-signature"
            )
        return chosen

    def warmup_logs(self) -> list[Any]:
        """--warmup N records from the requests that ran: one row each where the inputs share a
        batch dimension, cycling through the signatures."""
        ran = [c for c in self.checks.values() if c.ran]
        logs = []
        for i in range(self.opts.warmup_records):
            check = ran[i % len(ran)]
            feeds = check.feeds
            batches = {v.shape[0] if v.ndim else -1 for v in feeds.values()}
            if len(batches) == 1 and min(batches) > 0:
                row = (i // len(ran)) % min(batches)
                feeds = {k: v[row : row + 1] for k, v in feeds.items()}
            log = prediction_log_pb2.PredictionLog()
            string_input = len(feeds) == 1 and _is_string(next(iter(feeds.values())))
            if check.method in (CLASSIFY_METHOD, REGRESS_METHOD) and string_input:
                kind = "classify_log" if check.method == CLASSIFY_METHOD else "regress_log"
                request = getattr(log, kind).request
                for raw in next(iter(feeds.values())).ravel():
                    request.input.example_list.examples.add().ParseFromString(bytes(raw))
            else:
                request = log.predict_log.request
                for key, value in feeds.items():
                    request.inputs[key].CopyFrom(to_tensor_proto(value))
            request.model_spec.name = self.opts.model_name
            request.model_spec.signature_name = check.name
            logs.append(log)
        return logs


def adopt(
    source_dir: Path, opts: ExportOptions, progress: Progress = _stderr_progress
) -> ExportResult:
    """Publish an existing SavedModel version directory as ``<export base>/<model>/<N>``.

    The source is copied into the staging directory and never written to (it may be
    read-only). The copy must load (tf.saved_model.load, else TF1's session loader), every
    signature is run once (inputs from ``opts.sample_path``, the model's own warmup records, or
    built from the signature; a string input without either is reported as not run), every
    answer must match its declared dtype and shape and be finite, and the model's own warmup
    records are replayed as TF Serving does at load. ``opts.warmup_records`` adds warmup records
    unless the model has its own (never replaced). The manifest records the signatures, the
    checks and a golden sample. UsageError: not a SavedModel directory or nothing runnable;
    ValidationError: the model does not load or answers wrongly; nothing is published then.
    """
    from tfs_fleet.export_cli import saved_model_problem

    problem = saved_model_problem(source_dir)
    if problem:
        raise UsageError(problem)
    if opts.warmup_records:
        _check_warmup_count(opts.warmup_records)
    source_dir = source_dir.resolve()
    checks: dict[str, dict[str, Any]] = {}

    def build(staging: Path, version: int, step: Step) -> dict[str, Any]:
        progress(f"adopt: source {source_dir}, staging {staging}")
        copied = step("copy", lambda: _copy_version(source_dir, staging))
        progress(f"adopt: {copied} files copied")
        adoption = _Adoption(source_dir, staging, opts, progress)
        adoption.runner = step("load", lambda: load_saved_model(staging, progress))
        loader = adoption.runner.loader
        try:
            step("run signatures", adoption.run_signatures)
            if adoption.warmup_requests:
                step("replay the model's warmup records", adoption.replay_warmup)
            chosen = step("golden sample", adoption.golden)
        finally:
            adoption.runner.close()
            adoption.runner = None
        if adoption.user_warmup is not None:
            warmup_count, warmup_from = len(adoption.user_warmup), "the source model"
            if opts.warmup_records:
                progress(
                    f"adopt: the model has its own warmup records ({warmup_count}), kept; "
                    f"--warmup {opts.warmup_records} not applied"
                )
        elif opts.warmup_records:
            logs = adoption.warmup_logs()
            warmup_count = step("warmup records", lambda: write_prediction_logs(staging, logs))
            warmup_from = "export_model.py"
        else:
            warmup_count, warmup_from = 0, "none"
        checks.update({name: c.summary() for name, c in adoption.checks.items()})
        golden = sample_section(opts, chosen.name, chosen.feeds, chosen.outputs)
        extra = {
            "adopted": {
                "source_dir": str(source_dir),
                "loader": loader,
                "checks": checks,
                "warmup_from": warmup_from,
            }
        }
        description = f"adopted SavedModel {source_dir}"
        manifest: dict[str, Any] = step(
            "manifest",
            lambda: manifest_doc(
                staging, opts.model_name, version, description, golden, warmup_count, extra
            ),
        )
        return manifest

    try:
        result = publish_version(opts, build, progress, "adopt")
    except ValidationError as exc:
        raise ValidationError(f"{exc}; nothing was published") from exc
    result.checks = checks
    return result
