"""The user-style SavedModels of make_user_models.py: what they declare, that the numpy answers
are TensorFlow's, the variants, and that the serving stand-in serves each good one to its own
client (gRPC Predict on x for seed_tf1, Classify on serialized Examples for mnist_tf1, Predict
on keras3), with their warmup records replayed at load."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import make_user_models as mum
import numpy as np
import pytest
from standin.standin_helpers import StandinProcess, serve_models

SCRIPT = Path(mum.__file__)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """Every model and variant, written once: {variant: {name: version dir}}; the good ones
    with warmup records under an export base of their own (served by the stand-in), each
    variant as version 2 under another."""
    base = Path(tmp_path_factory.mktemp("usermodels"))
    out = {"good": mum.write_models(base / "good", version=1, warmup=True)}
    for variant in ("nan", "bad_shape", "no_signature"):
        names = [n for n in mum.MODELS if variant in mum.SUPPORTED[n]]
        out[variant] = mum.write_models(base / variant, names, version=2, variant=variant)
    return out


def signature_defs(path: Path) -> dict[str, Any]:
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    if (path / "saved_model.pb").is_file():
        proto.ParseFromString((path / "saved_model.pb").read_bytes())
    else:
        text_format.Parse((path / "saved_model.pbtxt").read_text(), proto)
    [meta_graph] = proto.meta_graphs
    assert list(meta_graph.meta_info_def.tags) == ["serve"]
    return {k: v for k, v in meta_graph.signature_def.items() if not k.startswith("__")}


def shape(info: Any) -> list[int] | None:
    return None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]


def run_like_tf_serving(path: Path, signature: str, inputs: dict[str, np.ndarray]) -> Any:
    """TF Serving's way: TF1's loader in a fresh graph, feeds and fetches by tensor name."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        sig = meta.signature_def[signature]
        feeds = {sig.inputs[k].name: v for k, v in inputs.items()}
        return session.run({k: v.name for k, v in sig.outputs.items()}, feeds)


def assert_answers(got: dict[str, Any], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        if value.dtype.kind in ("O", "i"):
            np.testing.assert_array_equal(np.asarray(got[key]), value, err_msg=key)
        else:
            np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_cli_help_needs_no_tensorflow() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    for word in ("EXPORT_BASE", "--models", "--version", "--variant", "--warmup", "no_signature"):
        assert word in proc.stdout


def test_unsupported_variant_is_refused(tmp_path: Path) -> None:
    with pytest.raises(mum.UserModelError, match="seed_tf1 has no variant 'nan'"):
        mum.write_model(tmp_path, "seed_tf1", variant="nan")
    assert not (tmp_path / "seed_tf1" / "1").exists()


@pytest.mark.slow
def test_layout_signatures_and_warmup(models: dict[str, dict[str, Path]]) -> None:
    from tensorflow_serving.apis import prediction_log_pb2

    good = models["good"]
    for name, path in good.items():
        assert path.name == "1" and path.parent.name == name
        assert not (path / "tfs_fleet_manifest.json").exists(), "user models carry no manifest"
        sigs = signature_defs(path)
        assert {
            k: (s.method_name, sorted(s.inputs), sorted(s.outputs)) for k, s in sigs.items()
        } == {
            k: (s.method, sorted(s.inputs), sorted(s.outputs))
            for k, s in mum.signatures(name).items()
        }
    assert (good["seed_tf1"] / "saved_model.pbtxt").is_file()  # builder.save(as_text=True)
    assert (good["mnist_tf1"] / "saved_model.pb").is_file()
    seed = signature_defs(good["seed_tf1"])["serving_default"]
    assert seed.inputs["x"].name == "image:0" and shape(seed.inputs["x"]) == [-1, 4, 4, 1]
    assert seed.outputs["pred"].dtype == 9 and shape(seed.outputs["pred"]) == [-1]  # DT_INT64
    mnist = signature_defs(good["mnist_tf1"])
    assert shape(mnist["predict_images"].inputs["images"]) == [-1, mum.MNIST_FEATURES]
    assert mnist["serving_default"].inputs["inputs"].dtype == 7  # DT_STRING
    keras = signature_defs(good["keras3"])
    assert shape(keras["serving_default"].outputs["output_0"]) == [-1, 3]

    import tensorflow as tf

    for name, path in good.items():
        records = list(tf.data.TFRecordDataset(str(path / mum.WARMUP_FILE)))
        logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in records]
        kinds = {
            getattr(log, log.WhichOneof("log_type")).request.model_spec.signature_name: (
                log.WhichOneof("log_type")
            )
            for log in logs
        }
        want = {
            k: "classify_log" if s.method == mum.CLASSIFY else "predict_log"
            for k, s in mum.signatures(name).items()
        }
        assert kinds == want and len(logs) == len(want)


@pytest.mark.slow
def test_expected_answers_are_tensorflows(models: dict[str, dict[str, Path]]) -> None:
    for variant in ("good", "nan", "no_signature"):
        for name, path in models[variant].items():
            for signature in mum.signatures(name, variant):
                inputs = mum.sample_inputs(name, signature, variant=variant)
                got = run_like_tf_serving(path, signature, inputs)
                want = mum.expected_outputs(name, signature, inputs, variant)
                if variant == "nan":
                    floats = [k for k, v in want.items() if v.dtype == np.float32]
                    assert floats and all(np.isnan(got[k]).all() for k in floats)
                    assert all(np.isnan(want[k]).all() for k in floats)
                assert_answers(got, want)


@pytest.mark.slow
def test_variants_declare_what_they_should(models: dict[str, dict[str, Path]]) -> None:
    bad = models["bad_shape"]
    seed = signature_defs(bad["seed_tf1"])["serving_default"]
    assert shape(seed.outputs["pred"]) == [-1, 3]
    real = run_like_tf_serving(
        bad["seed_tf1"], "serving_default", mum.sample_inputs("seed_tf1", "serving_default")
    )
    assert real["pred"].shape == (3,)
    keras = signature_defs(bad["keras3"])
    assert set(keras) == {"serve", "serving_default"}
    assert all(shape(s.outputs["output_0"]) == [-1, 5] for s in keras.values())
    mnist = signature_defs(bad["mnist_tf1"])
    assert shape(mnist["predict_images"].outputs["scores"]) == [-1, 3]
    assert shape(mnist["serving_default"].outputs["scores"]) == [-1, 3]

    missing = models["no_signature"]
    assert set(signature_defs(missing["seed_tf1"])) == {"predict"}
    assert set(signature_defs(missing["keras3"])) == {"serving_default"}
    assert set(signature_defs(missing["mnist_tf1"])) == {"serving_default"}


@pytest.mark.slow
def test_golden_is_json_ready_and_deterministic() -> None:
    from tfs_fleet.tensors import array_from_doc, array_to_doc

    for name in mum.MODELS:
        first, again = mum.golden(name), mum.golden(name)
        assert first["signature"] == again["signature"]
        for key, value in first["expected_outputs"].items():
            np.testing.assert_array_equal(value, again["expected_outputs"][key])
            np.testing.assert_array_equal(array_from_doc(array_to_doc(value)), value)
    assert mum.golden("mnist_tf1")["signature"] == "predict_images"
    classes = mum.golden("mnist_tf1", "serving_default")["expected_outputs"]["classes"]
    assert classes.shape == (3, 10) and sorted(classes[0]) == sorted(
        label.encode() for label in mum.MNIST_LABELS
    )


@pytest.fixture(scope="module")
def standin(
    models: dict[str, dict[str, Path]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[StandinProcess, int]]:
    """One stand-in process serving the three good models (model_config_file)."""
    workdir = Path(tmp_path_factory.mktemp("usermodels-standin"))
    bases = {name: path.parent for name, path in models["good"].items()}
    server = serve_models(bases, workdir)  # version 1 is the only one: AVAILABLE is it
    try:
        assert server.grpc_port is not None
        yield server, server.grpc_port
    finally:
        server.stop()


@pytest.mark.slow
def test_standin_serves_each_model_to_its_client(
    standin: tuple[StandinProcess, int], models: dict[str, dict[str, Path]]
) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_service_pb2_grpc

    server, grpc_port = standin
    log = server.log()
    for name, path in models["good"].items():  # each version replayed its warmup at load
        records = len(mum.signatures(name))
        assert f"Finished reading warmup data for model at {path}: {records} requests" in log
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def predict(name: str, signature: str) -> None:
            inputs = mum.sample_inputs(name, signature)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = name
            request.model_spec.signature_name = signature
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            response = stub.Predict(request, timeout=30)
            got = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
            assert_answers(got, mum.expected_outputs(name, signature, inputs))
            assert response.model_spec.version.value == 1

        predict("seed_tf1", "serving_default")  # floats straight into the parsed image
        predict("keras3", "serving_default")
        predict("keras3", "serve")
        predict("mnist_tf1", "predict_images")

        inputs = mum.sample_inputs("mnist_tf1", "serving_default")
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = "mnist_tf1"  # signature left empty: serving_default
        from tensorflow.core.example import example_pb2

        for raw in inputs["inputs"]:
            request.input.example_list.examples.add().CopyFrom(example_pb2.Example.FromString(raw))
        response = stub.Classify(request, timeout=30)
        want = mum.expected_outputs("mnist_tf1", "serving_default", inputs)
        rows = response.result.classifications
        assert len(rows) == len(inputs["inputs"])
        for row, classes, scores in zip(rows, want["classes"], want["scores"], strict=True):
            assert [c.label.encode() for c in row.classes] == list(classes)
            np.testing.assert_allclose([c.score for c in row.classes], scores, rtol=1e-5, atol=1e-6)
