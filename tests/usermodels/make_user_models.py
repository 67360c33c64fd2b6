#!/usr/bin/env python3
"""Write SavedModels the way real teams write them: no tfs_fleet manifest, no tfs_fleet code.

    make_user_models.py EXPORT_BASE [--models seed_tf1 keras3 mnist_tf1] [--version N]
                        [--variant good|nan|bad_shape|no_signature] [--warmup]
                        [--format pb|pbtxt]

Each model lands in ``EXPORT_BASE/<name>/<version>/`` (the directory must not exist yet):

seed_tf1   the runbook's TF1 export: a ``tf.compat.v1`` graph with a string placeholder
           ``tf_example``, ``parse_example`` of a 16-float feature ``x``, a reshape to a tiny
           image (-1, 4, 4, 1) named ``image``, a two-layer net restored from a checkpoint written
           by a ``tf.train.Saver`` beforehand, ``pred`` = argmax (int64, shape [-1]);
           ``SavedModelBuilder`` with ``serving_default`` = predict {x: image} -> {pred: pred},
           saved as text (saved_model.pbtxt). The signature's input is the parsed image, so a
           Predict feeds floats to it directly.
keras3     a small Keras 3 model (input ``features`` [-1, 4] -> 8 relu -> 3 softmax) written with
           ``model.export(path)``. Keras 3 writes two predict signatures, ``serve`` and
           ``serving_default`` (the first endpoint under TF Serving's default key), both with input
           ``features`` (the Input's name) and output ``output_0``.
mnist_tf1  TF Serving's tutorial (tensorflow_serving/example/mnist_saved_model.py) with 16 input
           floats instead of 784: softmax regression over 10 classes, ``serving_default`` = a
           classification signature (tensorflow/serving/classify) on serialized tf.Examples with
           ``classes`` (labels "0".."9" from an int64 -> string table, highest score first) and
           ``scores`` (top-k softmax values), plus ``predict_images`` = predict {images: x [-1, 16]}
           -> {scores: softmax [-1, 10]}; ``main_op`` initialises the table; binary saved_model.pb.

Variants (rollout tests; signature names as the good model unless said):

good          as above
nan           every float output is NaN for any input (a NaN bias): keras3 and mnist_tf1 only
              (seed_tf1 answers an int64 argmax, which cannot be NaN)
bad_shape     a signature DECLARES an output shape the real output does not have: seed_tf1's
              ``pred`` declared [-1, 3] (really [-1]); keras3's ``output_0`` declared [-1, 5]
              (really [-1, 3]) in both signatures (saved_model.pb edited after export, as only the
              proto can say it); mnist_tf1's ``scores`` declared [-1, 3] (really [-1, 10]) in both
              signatures
no_signature  lacks a signature the good version has: seed_tf1 names its signature ``predict``
              (no ``serving_default``), keras3 exports only ``serving_default`` (no ``serve``),
              mnist_tf1 has no ``predict_images``

``--warmup`` adds ``assets.extra/tf_serving_warmup_requests`` (TFRecord of PredictionLog): one
request per signature the version has (a ClassifyLog for mnist_tf1's ``serving_default``).

``--format`` picks the SavedModel file: saved_model.pbtxt (text) or saved_model.pb (binary);
without it each model is saved as above (seed_tf1 text, the others binary). The other format is
the same SavedModel proto written the other way, as ``SavedModelBuilder.save(as_text=...)``
would have written it.

The weights are fixed (seeded numpy), so :func:`expected_outputs` computes the right answer of any
signature in numpy; :func:`sample_inputs` gives a deterministic request and :func:`golden` both.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

MODELS = ("seed_tf1", "keras3", "mnist_tf1")
VARIANTS = ("good", "nan", "bad_shape", "no_signature")
SUPPORTED: dict[str, tuple[str, ...]] = {
    "seed_tf1": ("good", "bad_shape", "no_signature"),
    "keras3": VARIANTS,
    "mnist_tf1": VARIANTS,
}
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
FORMATS = ("pb", "pbtxt")

PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"

SEED_FEATURES = 16  # 4 x 4 x 1 "image"
SEED_IMAGE = (4, 4, 1)
SEED_HIDDEN = 8
SEED_CLASSES = 3
KERAS_FEATURES = 4
KERAS_HIDDEN = 8
KERAS_CLASSES = 3
MNIST_FEATURES = 16
MNIST_CLASSES = 10
MNIST_LABELS = tuple(str(i) for i in range(MNIST_CLASSES))


class UserModelError(ValueError):
    """A model or variant that this script does not write."""


@dataclass(frozen=True)
class Signature:
    """What a signature of a written model declares (names only; shapes in the SavedModel)."""

    method: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


# ---- weights (fixed) ------------------------------------------------------------------------


def _two_layers(seed: int, features: int, hidden: int, classes: int) -> dict[str, np.ndarray]:
    """w1, b1, w2, b2 of a features -> hidden -> classes net, drawn in that order from ``seed``."""
    rng = np.random.default_rng(seed)
    return {
        "w1": rng.normal(0, 0.5, (features, hidden)),
        "b1": rng.normal(0, 0.1, hidden),
        "w2": rng.normal(0, 0.5, (hidden, classes)),
        "b2": rng.normal(0, 0.1, classes),
    }


def _weights(name: str, variant: str = "good") -> dict[str, np.ndarray]:
    """The model's fixed weights; the nan variant has a NaN bias in its last layer."""
    if name == "seed_tf1":
        w = _two_layers(20190601, SEED_FEATURES, SEED_HIDDEN, SEED_CLASSES)
    elif name == "keras3":
        w = _two_layers(3, KERAS_FEATURES, KERAS_HIDDEN, KERAS_CLASSES)
    elif name == "mnist_tf1":
        rng = np.random.default_rng(784)
        w = {
            "w": rng.normal(0, 0.5, (MNIST_FEATURES, MNIST_CLASSES)),
            "b": rng.normal(0, 0.1, MNIST_CLASSES),
        }
    else:
        raise UserModelError(f"unknown model {name!r}: choose from {', '.join(MODELS)}")
    out = {k: v.astype(np.float32) for k, v in w.items()}
    if variant == "nan":
        last = "b" if name == "mnist_tf1" else "b2"
        out[last] = np.full_like(out[last], np.nan)
    return out


def _check(name: str, variant: str) -> None:
    if name not in SUPPORTED:
        raise UserModelError(f"unknown model {name!r}: choose from {', '.join(MODELS)}")
    if variant not in SUPPORTED[name]:
        why = " (its only output is an int64 argmax)" if variant == "nan" else ""
        raise UserModelError(
            f"{name} has no variant {variant!r}{why}: choose from {', '.join(SUPPORTED[name])}"
        )


# ---- the contract: signatures, sample inputs, expected answers -------------------------------


def signatures(name: str, variant: str = "good") -> dict[str, Signature]:
    """The signatures a written version has (key -> method, input keys, output keys)."""
    _check(name, variant)
    if name == "seed_tf1":
        key = "predict" if variant == "no_signature" else "serving_default"
        return {key: Signature(PREDICT, ("x",), ("pred",))}
    if name == "keras3":
        sig = Signature(PREDICT, ("features",), ("output_0",))
        if variant == "no_signature":
            return {"serving_default": sig}
        return {"serve": sig, "serving_default": sig}
    out = {"serving_default": Signature(CLASSIFY, ("inputs",), ("classes", "scores"))}
    if variant != "no_signature":
        out["predict_images"] = Signature(PREDICT, ("images",), ("scores",))
    return out


def sample_rows(name: str, rows: int = 3, seed: int = 0) -> np.ndarray:
    """Deterministic float32 feature rows of a model, flat: [rows, features]."""
    features = {"seed_tf1": SEED_FEATURES, "keras3": KERAS_FEATURES, "mnist_tf1": MNIST_FEATURES}
    if name not in features:
        raise UserModelError(f"unknown model {name!r}: choose from {', '.join(MODELS)}")
    rng = np.random.default_rng(1000 + seed)
    return rng.random((rows, features[name])).astype(np.float32)


def serialize_examples(rows: np.ndarray, key: str = "x") -> list[bytes]:
    """One serialized tf.Example per row with the float feature ``key`` (what parse_example
    reads in the TF1 models)."""
    from tensorflow.core.example import example_pb2

    out = []
    for row in np.asarray(rows, np.float32):
        example = example_pb2.Example()
        example.features.feature[key].float_list.value.extend(row.ravel().tolist())
        out.append(example.SerializeToString())
    return out


def sample_inputs(
    name: str, signature: str, rows: int = 3, seed: int = 0, variant: str = "good"
) -> dict[str, np.ndarray]:
    """A request for ``signature`` of ``name``: input key -> array (serialized tf.Examples as an
    object array of bytes for a classification signature)."""
    sigs = signatures(name, variant)
    if signature not in sigs:
        raise UserModelError(f"{name} ({variant}) has no signature {signature!r}: {sorted(sigs)}")
    flat = sample_rows(name, rows, seed)
    if name == "seed_tf1":
        return {"x": flat.reshape(rows, *SEED_IMAGE)}
    if name == "keras3":
        return {"features": flat}
    if signature == "serving_default":
        return {"inputs": np.array(serialize_examples(flat), dtype=object)}
    return {"images": flat}


def _rows_of(inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Flat float rows back from a request (parses serialized tf.Examples)."""
    [value] = inputs.values()
    value = np.asarray(value)
    if value.dtype.kind in ("O", "S"):
        from tensorflow.core.example import example_pb2

        parsed = []
        for item in value.ravel():
            example = example_pb2.Example.FromString(bytes(item))
            parsed.append(list(example.features.feature["x"].float_list.value))
        return np.asarray(parsed, np.float32)
    return value.reshape(len(value), -1).astype(np.float32)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def expected_outputs(
    name: str, signature: str, inputs: dict[str, np.ndarray], variant: str = "good"
) -> dict[str, np.ndarray]:
    """The answer of ``signature`` to ``inputs``, computed in numpy from the fixed weights.

    seed_tf1: {"pred": int64 [n]}; keras3: {"output_0": float32 [n, 3]}; mnist_tf1
    serving_default: {"classes": bytes [n, 10] (object), "scores": float32 [n, 10]} best first,
    predict_images: {"scores": float32 [n, 10]} in class order. bad_shape gives the real
    (undeclared) shapes; nan gives NaN floats.
    """
    sigs = signatures(name, variant)
    if signature not in sigs:
        raise UserModelError(f"{name} ({variant}) has no signature {signature!r}: {sorted(sigs)}")
    w = _weights(name, variant)
    x = _rows_of(inputs)
    with np.errstate(invalid="ignore"):
        if name == "seed_tf1":
            hidden = np.maximum(x @ w["w1"] + w["b1"], 0)
            logits = hidden @ w["w2"] + w["b2"]
            return {"pred": np.argmax(logits, axis=1).astype(np.int64)}
        if name == "keras3":
            hidden = np.maximum(x @ w["w1"] + w["b1"], 0)
            return {"output_0": _softmax(hidden @ w["w2"] + w["b2"])}
        probs = _softmax(x @ w["w"] + w["b"])
    if signature == "predict_images":
        return {"scores": probs}
    order = np.argsort(-probs, axis=1, kind="stable")
    labels = np.array([label.encode() for label in MNIST_LABELS], dtype=object)
    return {
        "classes": labels[order],
        "scores": np.take_along_axis(probs, order, axis=1).astype(np.float32),
    }


def golden(
    name: str, signature: str | None = None, rows: int = 3, variant: str = "good"
) -> dict[str, Any]:
    """{"signature", "inputs", "expected_outputs"} for a golden-answer file (numpy arrays; the
    default signature is the one a Predict client uses: predict_images for mnist_tf1)."""
    if signature is None:
        sigs = signatures(name, variant)
        signature = "predict_images" if "predict_images" in sigs else sorted(sigs)[-1]
    inputs = sample_inputs(name, signature, rows, variant=variant)
    return {
        "signature": signature,
        "inputs": inputs,
        "expected_outputs": expected_outputs(name, signature, inputs, variant),
    }


# ---- writers --------------------------------------------------------------------------------


def _tensor_info(tensor: Any, shape: Sequence[int] | None = None) -> Any:
    """build_tensor_info, or the TensorInfo proto written by hand with a declared shape."""
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2

    if shape is None:
        return tf.compat.v1.saved_model.utils.build_tensor_info(tensor)
    info = meta_graph_pb2.TensorInfo(name=tensor.name, dtype=tensor.dtype.as_datatype_enum)
    for size in shape:
        info.tensor_shape.dim.add(size=size)
    return info


def _write_seed_tf1(path: Path, variant: str) -> None:
    """The runbook's export: checkpoint first (as training left it), then restore and build."""
    import tensorflow as tf

    v1 = tf.compat.v1
    w = _weights("seed_tf1", variant)
    with tempfile.TemporaryDirectory(prefix="seed-ckpt-") as ckpt_dir:
        # "training": variables with their final values, saved by a tf.train.Saver
        with tf.Graph().as_default(), v1.Session() as sess:
            for key, value in w.items():
                v1.Variable(value, name=key)
            sess.run(v1.global_variables_initializer())
            ckpt = v1.train.Saver().save(sess, os.path.join(ckpt_dir, "model.ckpt"))
        # the export script
        with tf.Graph().as_default(), v1.Session() as sess:
            serialized_tf_example = v1.placeholder(tf.string, name="tf_example")
            feature_configs = {"x": v1.FixedLenFeature(shape=[SEED_FEATURES], dtype=tf.float32)}
            tf_example = v1.parse_example(serialized_tf_example, feature_configs)
            image = tf.identity(tf.reshape(tf_example["x"], (-1, *SEED_IMAGE)), name="image")
            variables = {
                key: v1.get_variable(key, shape=value.shape, dtype=tf.float32)
                for key, value in w.items()
            }
            flat = tf.reshape(image, (-1, SEED_FEATURES))
            hidden = tf.nn.relu(tf.matmul(flat, variables["w1"]) + variables["b1"])
            logits = tf.matmul(hidden, variables["w2"]) + variables["b2"]
            pred = tf.argmax(logits, axis=1, name="pred")
            v1.train.Saver().restore(sess, ckpt)

            builder = v1.saved_model.builder.SavedModelBuilder(str(path))
            out_shape = [-1, 3] if variant == "bad_shape" else None
            signature = v1.saved_model.signature_def_utils.build_signature_def(
                inputs={"x": _tensor_info(image)},
                outputs={"pred": _tensor_info(pred, out_shape)},
                method_name=v1.saved_model.signature_constants.PREDICT_METHOD_NAME,
            )
            key = "predict" if variant == "no_signature" else "serving_default"
            builder.add_meta_graph_and_variables(
                sess, [v1.saved_model.tag_constants.SERVING], signature_def_map={key: signature}
            )
            builder.save(as_text=True)


def _write_mnist_tf1(path: Path, variant: str) -> None:
    """tensorflow_serving/example/mnist_saved_model.py, smaller and with fixed weights."""
    import tensorflow as tf

    v1 = tf.compat.v1
    w = _weights("mnist_tf1", variant)
    with tf.Graph().as_default(), v1.Session() as sess:
        # shape [None] (a batch of strings): without it TensorFlow 2's parse_example gives x an
        # unknown rank, and predict_images would not declare the tutorial's [-1, N]
        serialized_tf_example = v1.placeholder(tf.string, shape=[None], name="tf_example")
        feature_configs = {"x": v1.FixedLenFeature(shape=[MNIST_FEATURES], dtype=tf.float32)}
        tf_example = v1.parse_example(serialized_tf_example, feature_configs)
        x = tf.identity(tf_example["x"], name="x")
        weights = v1.Variable(w["w"], name="W")
        bias = v1.Variable(w["b"], name="b")
        sess.run(v1.global_variables_initializer())
        y = tf.nn.softmax(tf.matmul(x, weights) + bias, name="y")
        values, indices = tf.nn.top_k(y, MNIST_CLASSES)
        # the tutorial's tf.contrib.lookup.index_to_string_table_from_tensor, in the public API
        # that is left of it: an int64 -> string hash table, initialised by the main_op
        table = v1.lookup.StaticHashTable(
            v1.lookup.KeyValueTensorInitializer(
                tf.range(MNIST_CLASSES, dtype=tf.int64), tf.constant(list(MNIST_LABELS))
            ),
            default_value="UNK",
        )
        prediction_classes = table.lookup(tf.cast(indices, tf.int64))

        builder = v1.saved_model.builder.SavedModelBuilder(str(path))
        scores_shape = [-1, 3] if variant == "bad_shape" else None
        build = v1.saved_model.signature_def_utils.build_signature_def
        constants = v1.saved_model.signature_constants
        classification_signature = build(
            inputs={constants.CLASSIFY_INPUTS: _tensor_info(serialized_tf_example)},
            outputs={
                constants.CLASSIFY_OUTPUT_CLASSES: _tensor_info(prediction_classes),
                constants.CLASSIFY_OUTPUT_SCORES: _tensor_info(values, scores_shape),
            },
            method_name=constants.CLASSIFY_METHOD_NAME,
        )
        prediction_signature = build(
            inputs={"images": _tensor_info(x)},
            outputs={"scores": _tensor_info(y, scores_shape)},
            method_name=constants.PREDICT_METHOD_NAME,
        )
        signature_map = {constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY: classification_signature}
        if variant != "no_signature":
            signature_map["predict_images"] = prediction_signature
        builder.add_meta_graph_and_variables(
            sess,
            [v1.saved_model.tag_constants.SERVING],
            signature_def_map=signature_map,
            main_op=v1.tables_initializer(),
            strip_default_attrs=True,
        )
        builder.save()


def _write_keras3(path: Path, variant: str) -> None:
    import keras

    w = _weights("keras3", variant)
    inputs = keras.Input(shape=(KERAS_FEATURES,), name="features")
    hidden = keras.layers.Dense(KERAS_HIDDEN, activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Dense(KERAS_CLASSES, activation="softmax", name="probs")(hidden)
    model = keras.Model(inputs, outputs, name="keras3")
    model.get_layer("hidden").set_weights([w["w1"], w["b1"]])
    model.get_layer("probs").set_weights([w["w2"], w["b2"]])
    if variant == "no_signature":
        import tensorflow as tf

        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serving_default",
            model.call,
            [tf.TensorSpec([None, KERAS_FEATURES], tf.float32, name="features")],
        )
        archive.write_out(str(path), verbose=False)
    else:
        model.export(str(path), verbose=False)
    if variant == "bad_shape":
        _declare_output_shape(path, "output_0", [-1, 5])


def _declare_output_shape(path: Path, output: str, shape: list[int]) -> None:
    """Edit saved_model.pb: every signature's ``output`` declares ``shape`` (nothing else
    changes; the graph still computes what it computed)."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = path / "saved_model.pb"
    proto = saved_model_pb2.SavedModel.FromString(pb.read_bytes())
    for meta_graph in proto.meta_graphs:
        for sig in meta_graph.signature_def.values():
            if output in sig.outputs:
                dims = sig.outputs[output].tensor_shape
                dims.ClearField("dim")
                dims.unknown_rank = False
                for size in shape:
                    dims.dim.add(size=size)
    pb.write_bytes(proto.SerializeToString())


def write_warmup(
    path: Path, name: str, variant: str = "good", rows: int = 1, per_signature: int = 1
) -> int:
    """assets.extra/tf_serving_warmup_requests: ``per_signature`` PredictionLogs per signature of
    the version (ClassifyLogs for a classification signature), the k-th (from 0) a request of
    ``rows + k`` rows; returns the number of records."""
    import tensorflow as tf
    from tensorflow.core.example import example_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    target = path / WARMUP_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with tf.io.TFRecordWriter(str(target)) as writer:
        for (key, sig), k in itertools.product(
            sorted(signatures(name, variant).items()), range(per_signature)
        ):
            log = prediction_log_pb2.PredictionLog()
            inputs = sample_inputs(name, key, rows + k, seed=1 + k, variant=variant)
            if sig.method == CLASSIFY:
                request = log.classify_log.request
                for item in inputs["inputs"]:
                    request.input.example_list.examples.add().CopyFrom(
                        example_pb2.Example.FromString(bytes(item))
                    )
            else:
                request = log.predict_log.request
                for alias, value in inputs.items():
                    request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
            request.model_spec.name = name
            request.model_spec.signature_name = key
            writer.write(log.SerializeToString())
            count += 1
    return count


_WRITERS = {"seed_tf1": _write_seed_tf1, "keras3": _write_keras3, "mnist_tf1": _write_mnist_tf1}


def _write(path: Path, name: str, variant: str) -> None:
    """The writer, without TensorFlow's "designed for TensorFlow v1" notices on every TF1 call."""
    from tensorflow.python.util import deprecation

    with deprecation.silence():
        _WRITERS[name](path, variant)


def _save_as(path: Path, saved_model_format: str) -> None:
    """Rewrite the version's SavedModel file as saved_model.pb or .pbtxt (the same proto; what
    SavedModelBuilder.save writes with as_text False or True)."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    pb, pbtxt = path / "saved_model.pb", path / "saved_model.pbtxt"
    if saved_model_format == "pbtxt" and pb.is_file():
        proto = saved_model_pb2.SavedModel.FromString(pb.read_bytes())
        pbtxt.write_text(text_format.MessageToString(proto))
        pb.unlink()
    elif saved_model_format == "pb" and pbtxt.is_file():
        proto = text_format.Parse(pbtxt.read_text(), saved_model_pb2.SavedModel())
        pb.write_bytes(proto.SerializeToString(deterministic=True))
        pbtxt.unlink()


def write_model(
    export_base: Path | str,
    name: str,
    version: int = 1,
    variant: str = "good",
    warmup: bool = False,
    saved_model_format: str | None = None,
) -> Path:
    """Write ``export_base/name/version/`` (refused when it exists); returns that directory.
    ``saved_model_format`` "pb" or "pbtxt" picks the SavedModel file (None: the model's own)."""
    _check(name, variant)
    if saved_model_format not in (None, *FORMATS):
        raise UserModelError(f"unknown format {saved_model_format!r}: choose from pb, pbtxt")
    path = Path(export_base) / name / str(int(version))
    if path.exists():
        raise UserModelError(f"{path} exists: a version is written once")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _write(path, name, variant)
        if saved_model_format is not None:
            _save_as(path, saved_model_format)
        if warmup:
            write_warmup(path, name, variant)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


def write_models(
    export_base: Path | str,
    models: Sequence[str] = MODELS,
    version: int = 1,
    variant: str = "good",
    warmup: bool = False,
    saved_model_format: str | None = None,
) -> dict[str, Path]:
    """Several models at one version; {name: version directory}."""
    for name in models:
        _check(name, variant)
    return {
        name: write_model(export_base, name, version, variant, warmup, saved_model_format)
        for name in models
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make_user_models.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("export_base", type=Path, metavar="EXPORT_BASE")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--version", type=int, default=1, metavar="N")
    parser.add_argument("--variant", choices=VARIANTS, default="good")
    parser.add_argument(
        "--warmup", action="store_true", help="add assets.extra/tf_serving_warmup_requests"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        dest="saved_model_format",
        help="saved_model.pb or .pbtxt (default: seed_tf1 pbtxt, the others pb)",
    )
    args = parser.parse_args(argv)
    if args.version < 1:
        parser.error(f"--version {args.version}: versions are positive integers")
    try:
        paths = write_models(
            args.export_base,
            args.models,
            args.version,
            args.variant,
            args.warmup,
            args.saved_model_format,
        )
    except UserModelError as exc:
        parser.error(str(exc))
    for path in paths.values():
        print(path, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
