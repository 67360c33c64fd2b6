"""Conformance with TF Serving's documented answers for its reference model half_plus_two
(y = 0.5 x + 2), over REST and gRPC, against one stand-in process."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from standin_helpers import StandinProcess, half_plus_two_base, http, reference_models
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

MODEL = "half_plus_two"


def _example(x: float) -> tf.train.Example:
    return tf.train.Example(
        features=tf.train.Features(
            feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))}
        )
    )


# ---- REST -------------------------------------------------------------------------------------
def test_rest_predict_row(conformance_server: StandinProcess) -> None:
    status, body = http(
        "POST",
        f"{conformance_server.url}/v1/models/{MODEL}:predict",
        {"instances": [1.0, 2.0, 5.0]},
    )
    assert (status, body) == (200, {"predictions": [2.5, 3.0, 4.5]})


def test_rest_predict_columnar_and_version_path(conformance_server: StandinProcess) -> None:
    url = f"{conformance_server.url}/v1/models/{MODEL}/versions/123:predict"
    status, body = http("POST", url, {"inputs": {"x": [[1.0], [2.0], [5.0]]}})
    assert (status, body) == (200, {"outputs": [[2.5], [3.0], [4.5]]})
    status, body = http("POST", url, {"inputs": [1.0, 2.0]})
    assert (status, body) == (200, {"outputs": [2.5, 3.0]})


def test_rest_predict_b64_on_a_string_signature(conformance_server: StandinProcess) -> None:
    encoded = base64.b64encode(_example(2.0).SerializeToString()).decode()
    status, body = http(
        "POST",
        f"{conformance_server.url}/v1/models/{MODEL}:predict",
        {"signature_name": "classify_x_to_y", "instances": [{"b64": encoded}]},
    )
    assert (status, body) == (200, {"predictions": [[3.0]]})


def test_rest_classify_and_regress(conformance_server: StandinProcess) -> None:
    url = f"{conformance_server.url}/v1/models/{MODEL}"
    status, body = http(
        "POST", f"{url}:classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
    )
    assert (status, body) == (200, {"results": [[["", 3.0]]]})
    status, body = http(
        "POST", f"{url}:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}
    )
    assert (status, body) == (200, {"results": [3.0]})
    status, body = http(
        "POST",
        f"{url}:regress",
        {"signature_name": "regress_x_to_y", "context": {"x": 4.0}, "examples": [{}]},
    )
    assert (status, body) == (200, {"results": [4.0]})


def test_rest_status_is_tf_servings(conformance_server: StandinProcess) -> None:
    expected = {
        "model_version_status": [
            {
                "version": "123",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    for suffix in ("", "/versions/123"):
        status, body = http("GET", f"{conformance_server.url}/v1/models/{MODEL}{suffix}")
        assert (status, body) == (200, expected)


def test_rest_metadata_equals_reference(conformance_server: StandinProcess) -> None:
    reference = json.loads((reference_models() / "half_plus_two_model_metadata.json").read_text())
    status, body = http("GET", f"{conformance_server.url}/v1/models/{MODEL}/metadata")
    assert status == 200 and isinstance(body, dict)
    assert body["metadata"] == reference["metadata"]
    assert body["model_spec"] == {"name": MODEL, "signature_name": "", "version": "123"}


@pytest.mark.parametrize(
    ("method", "path", "payload", "code", "needle"),
    [
        ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
        (
            "GET",
            "/v1/models/nope/metadata",
            None,
            404,
            "Servable not found for request: Latest(nope)",
        ),
        ("POST", "/v1/models/nope:predict", {"instances": [1.0]}, 404, "Latest(nope)"),
        ("GET", f"/v1/models/{MODEL}/versions/7", None, 404, "Could not find version 7"),
        (
            "POST",
            f"/v1/models/{MODEL}/versions/7:predict",
            {"instances": [1.0]},
            404,
            "Specific(half_plus_two, 7)",
        ),
        (
            "POST",
            f"/v1/models/{MODEL}/labels/canary:predict",
            {"instances": [1.0]},
            400,
            "Unrecognized servable version label: canary",
        ),
        (
            "POST",
            f"/v1/models/{MODEL}:predict",
            {"instances": ["a"]},
            400,
            "is not of expected type: float",
        ),
        (
            "POST",
            f"/v1/models/{MODEL}:predict",
            {"instances": [1.0], "inputs": [1.0]},
            400,
            "expecting only one of 'inputs' or 'instances'",
        ),
        (
            "POST",
            f"/v1/models/{MODEL}:predict",
            {"instances": []},
            400,
            "No values in 'instances' array",
        ),
        (
            "POST",
            f"/v1/models/{MODEL}:predict",
            {"signature_name": "nope", "instances": [1.0]},
            400,
            'Serving signature name: "nope" not found',
        ),
        ("POST", f"/v1/models/{MODEL}:predict", b"{not json", 400, "JSON Parse error"),
        ("POST", f"/v1/models/{MODEL}:predict", b"", 400, "The document is empty"),
        (
            "POST",
            f"/v1/models/{MODEL}:classify",
            {"signature_name": "classify_x_to_y"},
            400,
            "key 'examples' is expected",
        ),
        (
            "POST",
            f"/v1/models/{MODEL}:explain",
            {"instances": [1.0]},
            400,
            "Malformed request: POST",
        ),
    ],
)
def test_rest_errors(
    conformance_server: StandinProcess,
    method: str,
    path: str,
    payload: object,
    code: int,
    needle: str,
) -> None:
    status, body = http(method, conformance_server.url + path, payload)
    assert status == code, body
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert needle in body["error"]


def test_rest_outside_v1_is_404(conformance_server: StandinProcess) -> None:
    status, _ = http("GET", f"{conformance_server.url}/v2/models/{MODEL}")
    assert status == 404


def test_prometheus_metrics_on_configured_path(conformance_server: StandinProcess) -> None:
    http("POST", f"{conformance_server.url}/v1/models/{MODEL}:predict", {"instances": [1.0]})
    status, text = http("GET", f"{conformance_server.url}/monitoring/prometheus/metrics")
    assert status == 200 and isinstance(text, str)
    assert "# TYPE :tensorflow:serving:request_count counter" in text
    assert ':tensorflow:serving:request_count{model_name="half_plus_two",status="OK"}' in text
    assert ":tensorflow:serving:request_latency_bucket{" in text
    assert (
        ':tensorflow:serving:request_latency_count{model_name="half_plus_two",API="predict",'
        'entrypoint="REST"}'
    ) in text
    assert 'le="+Inf"}' in text
    # Every REST request is counted, a GET of an unknown version's status too (http_server.cc).
    http("GET", f"{conformance_server.url}/v1/models/{MODEL}/versions/999")
    _, after = http("GET", f"{conformance_server.url}/monitoring/prometheus/metrics")
    assert f':tensorflow:serving:request_count{{model_name="{MODEL}",status="NOT_FOUND"}}' in after
    assert ':tensorflow:cc:saved_model:load_attempt_count{model_path="' in text


def test_startup_log_says_what_it_is(conformance_server: StandinProcess) -> None:
    log = conformance_server.log()
    assert "NOT TensorFlow Serving" in log
    assert "flag --num_load_threads is a TF Serving flag the stand-in does not implement" in log
    assert "--enable_batching: batching parameters are validated" in log
    loaded = log.index("Successfully loaded servable version {name: half_plus_two version: 123}")
    assert loaded < log.index("Running gRPC ModelServer at"), "ports must open after the load"
    assert loaded < log.index("Exporting HTTP/REST API at")


# ---- gRPC -------------------------------------------------------------------------------------
def test_grpc_predict(grpc_channel: grpc.Channel) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[1.0], [2.0], [5.0]], np.float32)))
    response = stub.Predict(request, timeout=10)
    assert list(response.outputs["y"].float_val) == [2.5, 3.0, 4.5]
    assert tf.make_ndarray(response.outputs["y"]).shape == (3, 1)
    assert response.model_spec.name == MODEL
    assert response.model_spec.version.value == 123
    assert response.model_spec.signature_name == "serving_default"


def test_grpc_on_unix_socket(conformance_server: StandinProcess) -> None:
    with grpc.insecure_channel(f"unix:{conformance_server.grpc_socket}") as channel:  # type: ignore[attr-defined]
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[4.0]], np.float32)))
        assert list(stub.Predict(request, timeout=10).outputs["y"].float_val) == [4.0]


def test_grpc_classify_regress(grpc_channel: grpc.Channel) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_channel)
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name, classify.model_spec.signature_name = MODEL, "classify_x_to_y"
    classify.input.example_list.examples.add().CopyFrom(_example(2.0))
    result = stub.Classify(classify, timeout=10).result
    assert [(c.label, c.score) for c in result.classifications[0].classes] == [("", 3.0)]
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name, regress.model_spec.signature_name = MODEL, "regress_x_to_y"
    regress.input.example_list.examples.add().CopyFrom(_example(2.0))
    assert [r.value for r in stub.Regress(regress, timeout=10).result.regressions] == [3.0]


def test_grpc_metadata_and_status(grpc_channel: grpc.Channel) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    response = stub.GetModelMetadata(request, timeout=10)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(sig_map)
    assert set(sig_map.signature_def) == {
        "serving_default",
        "classify_x_to_y",
        "regress_x_to_y",
        "regress_x_to_y2",
        "regress_x2_to_y3",
    }
    assert sig_map.signature_def["serving_default"].inputs["x"].name == "x:0"
    models = model_service_pb2_grpc.ModelServiceStub(grpc_channel)
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = MODEL
    (version,) = models.GetModelStatus(status_request, timeout=10).model_version_status
    assert (version.version, version.state) == (
        123,
        get_model_status_pb2.ModelVersionStatus.AVAILABLE,
    )
    assert version.status.error_code == 0


@pytest.mark.parametrize(
    ("model", "inputs", "code"),
    [
        ("nope", {"x": np.array([[1.0]], np.float32)}, grpc.StatusCode.NOT_FOUND),
        (MODEL, {"x": np.array([["a"]], object)}, grpc.StatusCode.INVALID_ARGUMENT),
        (MODEL, {"z": np.array([[1.0]], np.float32)}, grpc.StatusCode.INVALID_ARGUMENT),
        ("", {"x": np.array([[1.0]], np.float32)}, grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_grpc_errors(
    grpc_channel: grpc.Channel, model: str, inputs: dict, code: grpc.StatusCode
) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(request, timeout=10)
    assert raised.value.code() == code, raised.value.details()


def test_grpc_status_unknown_model_not_found(grpc_channel: grpc.Channel) -> None:
    models = model_service_pb2_grpc.ModelServiceStub(grpc_channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as raised:
        models.GetModelStatus(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "Could not find any versions of model nope"


def test_grpc_reload_config_adds_and_removes_a_model(
    grpc_channel: grpc.Channel, conformance_server: StandinProcess, tmp_path: Path
) -> None:
    copy_base = tmp_path / "copy"
    shutil.copytree(half_plus_two_base() / "00000123", copy_base / "7")
    models = model_service_pb2_grpc.ModelServiceStub(grpc_channel)

    def reload(*entries: tuple[str, Path]) -> model_management_pb2.ReloadConfigResponse:
        request = model_management_pb2.ReloadConfigRequest()
        for name, base in entries:
            model = request.config.model_config_list.config.add()
            model.name, model.base_path, model.model_platform = name, str(base), "tensorflow"
        return models.HandleReloadConfigRequest(request, timeout=60)

    try:
        assert reload((MODEL, half_plus_two_base()), ("copy", copy_base)).status.error_code == 0
        status, body = http(
            "POST", f"{conformance_server.url}/v1/models/copy:predict", {"instances": [4.0]}
        )
        assert (status, body) == (200, {"predictions": [4.0]})
        with pytest.raises(grpc.RpcError) as raised:
            reload((MODEL, half_plus_two_base()), ("dup", copy_base), ("dup", copy_base))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "Illegal to list model dup multiple times" in raised.value.details()
        (tmp_path / "broken" / "3").mkdir(parents=True)
        (tmp_path / "broken" / "3" / "saved_model.pb").write_bytes(b"not a SavedModel")
        with pytest.raises(grpc.RpcError) as raised:
            reload((MODEL, half_plus_two_base()), ("broken", tmp_path / "broken"))
        assert raised.value.code() == grpc.StatusCode.UNKNOWN
        assert "1 model(s) did not become available" in raised.value.details()
        assert "{name: broken version: 3}" in raised.value.details()
    finally:
        assert reload((MODEL, half_plus_two_base())).status.error_code == 0
    status, _ = http(
        "POST", f"{conformance_server.url}/v1/models/copy:predict", {"instances": [4.0]}
    )
    assert status == 404
