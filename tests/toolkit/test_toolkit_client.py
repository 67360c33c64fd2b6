"""The gRPC and REST clients against the in-process stand-in; retry on UNAVAILABLE only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from toolkit_serving_server import Serving

from tfs_fleet.client import (
    DEFAULT_MAX_MESSAGE_BYTES,
    GrpcClient,
    RestClient,
    RetryPolicy,
    ServingError,
    signature_summary,
)

X = np.array([[1.0], [2.0], [5.0]], np.float32)
Y = np.array([[2.5], [3.0], [4.5]], np.float32)


def test_default_message_limit_is_at_least_64_mib() -> None:
    assert DEFAULT_MAX_MESSAGE_BYTES >= 64 * 1024 * 1024


@pytest.mark.parametrize("server", ["serving", "serving_tensor_content"])
def test_predict_decodes_typed_fields_and_tensor_content(server: str, request: Any) -> None:
    srv: Serving = request.getfixturevalue(server)
    with GrpcClient(srv.grpc_target) as client:
        result = client.predict("half_plus_two", {"x": X})
    assert result.model_version == 1 and result.signature_name == "serving_default"
    np.testing.assert_allclose(result.outputs["pred"], Y)
    assert result.outputs["pred"].dtype == np.float32


def test_predict_selects_version_and_label(serving: Serving) -> None:
    with GrpcClient(serving.grpc_target) as client:
        assert client.predict("half_plus_two", {"x": X}, version=1).model_version == 1
        assert client.predict("half_plus_two", {"x": X}, version_label="stable").model_version == 1
        with pytest.raises(
            ServingError, match=r"NOT_FOUND: Servable not found.*Specific\(half_plus_two, 4\)"
        ):
            client.predict("half_plus_two", {"x": X}, version=4)
        with pytest.raises(ValueError, match="not both"):
            client.predict("half_plus_two", {"x": X}, version=1, version_label="stable")


def test_predict_tf_example_signature(serving: Serving) -> None:
    from tfs_fleet.export import serialize_examples

    examples = np.array(serialize_examples(X, "x"), dtype=object)
    with GrpcClient(serving.grpc_target) as client:
        result = client.predict("half_plus_two", {"examples": examples}, signature="tf_example")
    np.testing.assert_allclose(result.outputs["pred"], Y)


def test_predict_reference_model(serving: Serving) -> None:
    with GrpcClient(serving.grpc_target) as client:
        result = client.predict("reference", {"x": X})
    assert result.model_version == 123
    np.testing.assert_allclose(result.outputs["y"], Y)


def test_metadata_and_status(serving: Serving) -> None:
    with GrpcClient(serving.grpc_target) as client:
        sigs = client.get_model_metadata("half_plus_two", version=1)
        statuses = client.get_model_status("half_plus_two")
    summary = signature_summary(sigs["serving_default"])
    assert summary["inputs"] == {"x": {"dtype": "DT_FLOAT", "shape": [-1, 1]}}
    assert summary["outputs"] == {"pred": {"dtype": "DT_FLOAT", "shape": [-1, 1]}}
    assert signature_summary(sigs["tf_example"])["inputs"]["examples"]["dtype"] == "DT_STRING"
    assert [(s.version, s.state, s.error_code) for s in statuses] == [(1, "AVAILABLE", "OK")]


def test_rest_status_metadata_predict(serving: Serving) -> None:
    rest = RestClient(serving.rest_target)
    assert [(s.version, s.state) for s in rest.status("half_plus_two")] == [(1, "AVAILABLE")]
    assert rest.status("half_plus_two", version_label="stable")[0].version == 1
    meta = rest.metadata("reference", version=123)
    assert meta["model_spec"]["version"] == "123"
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert set(sig["inputs"]) == {"x"} and set(sig["outputs"]) == {"y"}
    np.testing.assert_allclose(rest.predict_rows("half_plus_two", X), Y)
    cols = rest.predict_columns("half_plus_two", {"x": X}, version=1)
    np.testing.assert_allclose(cols["outputs"], Y)
    with pytest.raises(ServingError, match="HTTP 404: Servable not found"):
        rest.metadata("half_plus_two", version=5)


def test_large_batch_needs_the_raised_message_limit(serving_tensor_content: Serving) -> None:
    """10 x 224x224x3 float32 = 6 MB: above gRPC's 4 MiB default, below our 64 MiB default."""
    big = np.ones((10 * 224 * 224 * 3 // 1, 1), np.float32)  # half_plus_two takes [-1, 1]
    with GrpcClient(serving_tensor_content.grpc_target) as client:
        out = client.predict("half_plus_two", {"x": big}).outputs["pred"]
    assert out.shape == big.shape and float(out[0, 0]) == 2.5
    with (
        GrpcClient(serving_tensor_content.grpc_target, max_message_bytes=4 * 1024 * 1024) as small,
        pytest.raises(ServingError, match="RESOURCE_EXHAUSTED"),
    ):
        small.predict("half_plus_two", {"x": big})


# ---- retry -----------------------------------------------------------------------------------


class _Flaky(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Answers the first ``failures`` calls with ``code``, then succeeds."""

    def __init__(self) -> None:
        self.calls = 0
        self.failures = 0
        self.code = grpc.StatusCode.UNAVAILABLE
        self.delay_s = 0.0

    def Predict(self, request: Any, context: Any) -> Any:
        self.calls += 1
        time.sleep(self.delay_s)
        if self.calls <= self.failures:
            context.abort(self.code, f"scripted failure {self.calls}")
        response = predict_pb2.PredictResponse()
        response.outputs["pred"].CopyFrom(request.inputs["x"])
        return response


@pytest.fixture
def flaky() -> Iterator[tuple[_Flaky, str]]:
    servicer = _Flaky()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(grace=None)


def test_retries_unavailable_with_backoff(flaky: tuple[_Flaky, str]) -> None:
    servicer, target = flaky
    servicer.failures = 2
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=4, initial_backoff_s=0.1, multiplier=2.0, max_backoff_s=1.0)
    with GrpcClient(target, retry=policy, sleep=sleeps.append) as client:
        out = client.predict("m", {"x": X}).outputs["pred"]
    np.testing.assert_array_equal(out, X)
    assert servicer.calls == 3
    assert sleeps == pytest.approx([0.1, 0.2])


def test_gives_up_after_the_attempts(flaky: tuple[_Flaky, str]) -> None:
    servicer, target = flaky
    servicer.failures = 10
    sleeps: list[float] = []
    with (
        GrpcClient(target, retry=RetryPolicy(attempts=3), sleep=sleeps.append) as client,
        pytest.raises(ServingError, match="failed after 3 attempts: UNAVAILABLE") as info,
    ):
        client.predict("m", {"x": X})
    assert servicer.calls == 3 and len(sleeps) == 2 and info.value.code == "UNAVAILABLE"


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
    ],
)
def test_other_codes_are_not_retried(flaky: tuple[_Flaky, str], code: grpc.StatusCode) -> None:
    servicer, target = flaky
    servicer.failures, servicer.code = 1, code
    sleeps: list[float] = []
    with (
        GrpcClient(target, sleep=sleeps.append) as client,
        pytest.raises(ServingError, match=code.name),
    ):
        client.predict("m", {"x": X})
    assert servicer.calls == 1 and sleeps == []


def test_deadline_is_applied_and_not_retried(flaky: tuple[_Flaky, str]) -> None:
    servicer, target = flaky
    servicer.delay_s = 2.0
    sleeps: list[float] = []
    start = time.monotonic()
    with (
        GrpcClient(target, timeout_s=0.3, sleep=sleeps.append) as client,
        pytest.raises(ServingError, match="DEADLINE_EXCEEDED"),
    ):
        client.predict("m", {"x": X})
    assert time.monotonic() - start < 1.5
    assert servicer.calls == 1 and sleeps == []


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(attempts=6, initial_backoff_s=0.5, multiplier=3.0, max_backoff_s=2.0)
    assert policy.delays() == [0.5, 1.5, 2.0, 2.0, 2.0]
