"""The stand-in against TF Serving's own tests and sources: string outputs and every dtype,
request parsing, MultiInference and Missing ModelSpec. Each test names the TF Serving file and
test it follows (tensorflow_serving/...).

One module server serves two TF2 exports made here: `strings` (string outputs, with and
without the `_bytes` suffix, and a scalar string signature) and `dtypes` (one signature per
output dtype). The request-parsing and MultiInference tests use the session's conformance
server (TF Serving's reference half_plus_two).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from standin_helpers import StandinProcess, http, serve_models
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

MODEL = "half_plus_two"
WORDS = [b"hello", b"tf \xc3\xa9", b"\xff\x00raw"]
# dtype -> (TensorProto typed field TF Serving's Tensor::AsProtoField writes, JSON-writable)
DTYPES: dict[str, tuple[tf.DType, str, bool]] = {
    "float32": (tf.float32, "float_val", True),
    "float64": (tf.float64, "double_val", True),
    "float16": (tf.float16, "half_val", False),
    "bfloat16": (tf.bfloat16, "half_val", False),
    "int8": (tf.int8, "int_val", True),
    "int16": (tf.int16, "int_val", True),
    "int32": (tf.int32, "int_val", True),
    "int64": (tf.int64, "int64_val", True),
    "uint8": (tf.uint8, "int_val", True),
    "uint16": (tf.uint16, "int_val", False),
    "uint32": (tf.uint32, "uint32_val", True),
    "uint64": (tf.uint64, "uint64_val", True),
    "bool": (tf.bool, "bool_val", True),
    "complex64": (tf.complex64, "scomplex_val", False),
    "complex128": (tf.complex128, "dcomplex_val", False),
}


def export_strings(path: Path) -> None:
    class Strings(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="x")])
        def echo(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"text": x, "text_bytes": x, "length": tf.strings.length(x)}

        @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="x")])
        def scalar(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"word": x}

    module = Strings()
    tf.saved_model.save(
        module, str(path), signatures={"serving_default": module.echo, "scalar": module.scalar}
    )


def export_dtypes(path: Path) -> None:
    module = tf.Module()
    signatures = {}
    for name, (dtype, _field, _json) in DTYPES.items():

        def cast(x: tf.Tensor, dtype: tf.DType = dtype) -> dict[str, tf.Tensor]:
            if dtype.is_complex:
                return {
                    "y": tf.complex(tf.cast(x, dtype.real_dtype), -tf.cast(x, dtype.real_dtype))
                }
            if dtype == tf.bool:
                return {"y": x > 1}
            return {"y": tf.cast(x, dtype)}

        function = tf.function(cast, input_signature=[tf.TensorSpec([None], tf.int32, name="x")])
        setattr(module, f"f_{name}", function)
        signatures[name] = function
    tf.saved_model.save(module, str(path), signatures=signatures)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StandinProcess, int]]:
    root = Path(tmp_path_factory.mktemp("standin-fidelity"))
    export_strings(root / "strings" / "1")
    export_dtypes(root / "dtypes" / "1")
    server = serve_models({m: root / m for m in ("strings", "dtypes")}, root, timeout=90)
    assert server.grpc_port is not None
    yield server, server.grpc_port
    assert server.stop() == 0, server.log()


def stub_for(port: int) -> prediction_service_pb2_grpc.PredictionServiceStub:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def b64(raw: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(raw).decode()}


# ---- DT_STRING outputs: util/json_tensor_test.cc FromJsonSingleBytesTensor ----------------------
@pytest.mark.slow
def test_rest_string_outputs_row_format(served: tuple[StandinProcess, int]) -> None:
    """json_tensor_test.cc FromJsonSingleBytesTensor / MultipleNamedTensor: `_bytes` outputs
    as {"b64": ...}, other strings as JSON strings, row format."""
    server, _ = served
    status, body = http(
        "POST",
        f"{server.url}/v1/models/strings:predict",
        {"instances": [b64(w) for w in WORDS[:2]]},
    )
    assert status == 200, body
    assert body == {
        "predictions": [
            {"length": 5, "text": "hello", "text_bytes": b64(WORDS[0])},
            {"length": 5, "text": "tf é", "text_bytes": b64(WORDS[1])},
        ]
    }


def test_rest_string_outputs_columnar_and_scalar(served: tuple[StandinProcess, int]) -> None:
    """json_tensor_test.cc MultipleNamedTensorColumnarFormat, and a scalar DT_STRING output
    (json_tensor.cc AddTensorValues writes a rank-0 tensor as its single value)."""
    server, _ = served
    status, body = http(
        "POST",
        f"{server.url}/v1/models/strings:predict",
        {"inputs": [b64(WORDS[2])]},
    )
    assert status == 200, body
    assert body["outputs"]["text_bytes"] == [b64(WORDS[2])]  # type: ignore[index]
    assert body["outputs"]["length"] == [5]  # type: ignore[index]
    status, body = http(
        "POST",
        f"{server.url}/v1/models/strings:predict",
        {"signature_name": "scalar", "inputs": "just one"},
    )
    assert (status, body) == (200, {"outputs": "just one"})


def test_grpc_string_outputs(served: tuple[StandinProcess, int]) -> None:
    """tensorflow_model_server_test.py style Predict with DT_STRING outputs, vector and scalar:
    string_val, as Tensor::AsProtoField writes them."""
    _, port = served
    stub = stub_for(port)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "strings"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array(WORDS, dtype=object)))
    response = stub.Predict(request, timeout=30)
    assert list(response.outputs["text_bytes"].string_val) == WORDS
    assert list(response.outputs["length"].int_val) == [5, 5, 5]
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "strings", "scalar"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(b"\x00scalar"))
    response = stub.Predict(request, timeout=30)
    assert list(response.outputs["word"].string_val) == [b"\x00scalar"]
    assert len(response.outputs["word"].tensor_shape.dim) == 0


# ---- every dtype: servables/tensorflow/predict_util_test.cc PredictionSuccess ----------------
def test_grpc_every_dtype_in_its_typed_field(served: tuple[StandinProcess, int]) -> None:
    """predict_util_test.cc PredictionSuccess (outputs through Tensor::AsProtoField, the
    default kAsProtoField serialization): every dtype in its own typed field, never
    tensor_content, and the values round-trip."""
    _, port = served
    stub = stub_for(port)
    wrong = {}
    x = np.array([0, 1, 2, 3])
    for name, (dtype, field, _) in DTYPES.items():
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "dtypes", name
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(x.astype(np.int32)))
        output = stub.Predict(request, timeout=30).outputs["y"]
        fields = [f.name for f, _ in output.ListFields() if f.name.endswith("_val")]
        if dtype.is_complex:
            expected = x - 1j * x
        elif dtype == tf.bool:
            expected = x > 1
        else:
            expected = x
        value = tf.make_ndarray(output).astype(np.asarray(expected).dtype)
        if output.dtype != dtype.as_datatype_enum or output.tensor_content or fields != [field]:
            wrong[name] = (
                f"dtype {output.dtype}, fields {fields}, content {output.tensor_content!r}"
            )
        elif not np.array_equal(value, expected):
            wrong[name] = f"values {value}"
    assert not wrong, wrong


def test_rest_every_dtype(served: tuple[StandinProcess, int]) -> None:
    """json_tensor.cc AddSingleValueAndAdvance: the JSON-writable dtypes as numbers/bools, the
    others INVALID_ARGUMENT 'Failed to write JSON value for tensor type: <type>'."""
    server, _ = served
    answers = {}
    for name in DTYPES:
        answers[name] = http(
            "POST",
            f"{server.url}/v1/models/dtypes:predict",
            {"signature_name": name, "instances": [0, 1, 2, 3]},
        )
    expected = {}
    for name, (_, _, writable) in DTYPES.items():
        if not writable:
            type_name = {"float16": "half"}.get(name, name)
            expected[name] = (
                400,
                {"error": f"Failed to write JSON value for tensor type: {type_name}"},
            )
        elif name == "bool":
            expected[name] = (200, {"predictions": [False, False, True, True]})
        else:
            expected[name] = (200, {"predictions": [0, 1, 2, 3]})
    assert answers == expected


# ---- request parsing ---------------------------------------------------------------------
def test_bytes_after_the_json_body_are_ignored(conformance_server: StandinProcess) -> None:
    """util/json_tensor.cc ParseJson parses with kParseStopWhenDoneFlag (json_tensor_test.cc
    TensorFromNonNullTerminatedBuffer): what follows the JSON document is not read."""
    status, body = http(
        "POST",
        f"{conformance_server.url}/v1/models/{MODEL}:predict",
        b'{"instances": [1.0, 2.0]}X trailing garbage',
    )
    assert (status, body) == (200, {"predictions": [2.5, 3.0]})


def test_deeply_nested_well_formed(conformance_server: StandinProcess) -> None:
    """json_tensor_test.cc DeeplyNestedWellFormed: 500000 levels in an unused key parse
    (rapidjson's kParseIterativeFlag), and the request is served."""
    body = b'{"instances": [1.0], "nested": ' + b"[" * 500000 + b"]" * 500000 + b"}"
    status, answer = http("POST", f"{conformance_server.url}/v1/models/{MODEL}:predict", body)
    assert (status, answer) == (200, {"predictions": [2.5]})


def test_deeply_nested_malformed(conformance_server: StandinProcess) -> None:
    """json_tensor_test.cc DeeplyNestedMalformed: a deep value where a string is expected."""
    body = b'{"signature_name": ' + b"[" * 500000 + b"]" * 500000 + b"}"
    status, answer = http("POST", f"{conformance_server.url}/v1/models/{MODEL}:predict", body)
    assert status == 400, answer
    assert "key must be a string value" in answer["error"]  # type: ignore[index]


def test_verbs_are_case_sensitive(conformance_server: StandinProcess) -> None:
    """http_rest_api_util.cc: the path regex is (?i), but http_rest_api_handler.cc dispatches
    on method == "predict" exactly, so ':PREDICT' is 'Malformed request'; then the cases of
    http_rest_api_handler_test.cc UnsupportedApiCalls."""
    url = f"{conformance_server.url}/v1/models/{MODEL}:PREDICT"
    status, body = http("POST", url, {"instances": [1.0]})
    assert (status, body) == (
        400,
        {"error": f"Malformed request: POST /v1/models/{MODEL}:PREDICT"},
    )
    status, body = http(
        "POST", f"{conformance_server.url}/V1/MODELS/{MODEL}:predict", {"instances": [1.0]}
    )
    assert (status, body) == (200, {"predictions": [2.5]})
    # http_rest_api_handler_test.cc UnsupportedApiCalls, with the cases above
    url = conformance_server.url
    for method, path in (
        ("GET", "/v1/foo"),
        ("POST", "/v1/foo"),
        ("GET", "/v1/models/debug/model_name"),
        ("POST", "/v1/models"),
        ("GET", "/v1/models/foo:predict"),
        ("GET", "/v1/models/foo/version/50:predict"),
        ("POST", "/v1/models/foo/version/50:regress"),
        ("POST", "/v1/models/foo/versions/HELLO:regress"),
        ("POST", "/v1/models/foo/metadata"),
        ("POST", "/v1/models/foo/label/some_label:regress"),
        ("POST", "/v1/models/foo/versions/50/labels/some_label:regress"),
        ("POST", "/v1/models/foo/versions/some_label:regress"),
    ):
        status, body = http(method, url + path, b"" if method == "POST" else None)
        assert status == 400, (method, path, body)
        assert "Malformed request" in body["error"], (method, path, body)  # type: ignore[index]
    status, body = http("GET", f"{url}/v1/models")
    assert (status, body) == (400, {"error": "Missing model name in request."})
    status, body = http("POST", f"{url}/v1/models/foo/versions/{2**64 - 1}:regress", b"")
    assert status == 400 and "Failed to convert version" in body["error"]  # type: ignore[index]


def test_missing_model_spec(grpc_channel: grpc.Channel) -> None:
    """predict_util_test.cc MissingOrEmptyModelSpec (predict_impl.cc, classification_service.cc,
    regression_service.cc, get_model_metadata_impl.cc): 'Missing ModelSpec'."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_channel)
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    for call, request in (
        (stub.Predict, predict_pb2.PredictRequest()),
        (stub.Classify, classification_pb2.ClassificationRequest()),
        (stub.Regress, regression_pb2.RegressionRequest()),
        (stub.GetModelMetadata, metadata),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            call(request, timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert raised.value.details() == "Missing ModelSpec"
    request = predict_pb2.PredictRequest()
    request.model_spec.SetInParent()
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(request, timeout=10)
    assert raised.value.details() == "ModelSpec has no name specified."


# ---- MultiInference: model_servers/tensorflow_model_server_test.py testMultiInference ------
def test_multi_inference(grpc_channel: grpc.Channel) -> None:
    """tensorflow_model_server_test.py _TestMultiInference: regress_x_to_y and classify_x_to_y
    of the reference model in one request, x = 2.0 gives 3.0 for both."""
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (
        ("regress_x_to_y", "tensorflow/serving/regress"),
        ("classify_x_to_y", "tensorflow/serving/classify"),
    ):
        task = request.tasks.add()
        task.model_spec.name, task.model_spec.signature_name = MODEL, signature
        task.method_name = method
    request.input.example_list.examples.add().features.feature["x"].float_list.value.append(2.0)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_channel)
    result = stub.MultiInference(request, timeout=10)
    assert len(result.results) == 2
    assert result.results[0].regression_result.regressions[0].value == 3.0
    assert result.results[1].classification_result.classifications[0].classes[0].score == 3.0
    for index, signature in enumerate(("regress_x_to_y", "classify_x_to_y")):
        spec = result.results[index].model_spec
        assert (spec.name, spec.signature_name, spec.version.value) == (MODEL, signature, 123)


def test_multi_inference_errors(grpc_channel: grpc.Channel) -> None:
    """servables/tensorflow/multi_inference.cc (multi_inference_test.cc): one model, no
    signature twice, supported methods only."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_channel)

    def call(*tasks: tuple[str, str, str]) -> grpc.RpcError:
        request = inference_pb2.MultiInferenceRequest()
        for name, signature, method in tasks:
            task = request.tasks.add()
            task.model_spec.name, task.model_spec.signature_name = name, signature
            task.method_name = method
        example = request.input.example_list.examples.add()
        example.features.feature["x"].float_list.value.append(2.0)
        with pytest.raises(grpc.RpcError) as raised:
            stub.MultiInference(request, timeout=10)
        return raised.value

    regress = "tensorflow/serving/regress"
    error = call((MODEL, "regress_x_to_y", regress), (MODEL, "regress_x_to_y", regress))
    assert (error.code(), error.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Duplicate evaluation of signature: regress_x_to_y",
    )
    error = call((MODEL, "regress_x_to_y", "tensorflow/serving/predict"))
    assert (error.code(), error.details()) == (
        grpc.StatusCode.UNIMPLEMENTED,
        "Unsupported signature method_name: tensorflow/serving/predict",
    )
    error = call((MODEL, "nope", regress))
    assert error.details() == "Requested signature not found in model graph: nope"
