"""The stand-in under bad and heavy clients, bounded in time and memory: idle and slowloris
connections, malformed and oversized REST bodies, deep nesting, a 400 MB gRPC Predict.

TF Serving's REST server (util/net_http, libevent) serves every connection from an event loop,
so idle or slow connections never hold its request threads, and it answers every refused
request with the {"error": ...} body of http_rest_api_handler.cc (MakeJsonFromStatus); its
gRPC server takes messages up to INT32_MAX (server.cc SetMaxMessageSize) and keeps memory
proportional to the tensors (Tensor::AsProtoField).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from standin_helpers import StandinProcess, half_plus_two_base, http, raw_http
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from helpers import free_ports, wait_for

MODEL = "half_plus_two"
READ_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StandinProcess, int]]:
    root = Path(tmp_path_factory.mktemp("standin-robust"))
    grpc_port, rest_port = free_ports(2)
    process = StandinProcess(
        [
            f"--port={grpc_port}",
            f"--rest_api_port={rest_port}",
            f"--model_name={MODEL}",
            f"--model_base_path={half_plus_two_base()}",
            "--rest_api_num_threads=8",
        ],
        root / "server.log",
        rest_port,
    )
    os.environ["TFS_STANDIN_REST_READ_TIMEOUT_S"] = str(READ_TIMEOUT_S)
    try:
        process.start(MODEL)
    finally:
        del os.environ["TFS_STANDIN_REST_READ_TIMEOUT_S"]
    yield process, grpc_port
    assert process.stop() == 0, process.log()


def timed_predict(url: str) -> tuple[float, tuple[int, object]]:
    started = time.monotonic()
    answer = http("POST", f"{url}/v1/models/{MODEL}:predict", {"instances": [1.0]}, timeout=15)
    return time.monotonic() - started, answer


@pytest.mark.slow
def test_idle_and_slowloris_connections_do_not_stop_rest(
    server: tuple[StandinProcess, int],
) -> None:
    """8 idle connections (as many as --rest_api_num_threads) plus a slowloris client that
    trickles its headers: a REST predict still answers in under a second."""
    process, _ = server
    idle = [socket.create_connection(("127.0.0.1", process.rest_port)) for _ in range(8)]
    stop = threading.Event()
    slow = socket.create_connection(("127.0.0.1", process.rest_port))

    def trickle() -> None:
        header = b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\nX-Slow: "
        for byte in header + b"a" * 200:
            if stop.is_set():
                return
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                return
            time.sleep(0.2)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)  # every idle connection is accepted and waiting
        for _ in range(3):
            elapsed, answer = timed_predict(process.url)
            assert answer == (200, {"predictions": [2.5]})
            assert elapsed < 1.0, f"predict took {elapsed:.2f} s behind idle/slow connections"
    finally:
        stop.set()
        thread.join(timeout=5)
        for sock in [*idle, slow]:
            sock.close()


@pytest.mark.slow
def test_stalled_connections_are_closed_after_the_read_timeout(
    server: tuple[StandinProcess, int],
) -> None:
    """An idle connection and a slowloris one are closed once the request is not in after the
    read deadline (TFS_STANDIN_REST_READ_TIMEOUT_S, 3 s here), so they cannot pile up."""
    process, _ = server
    idle = socket.create_connection(("127.0.0.1", process.rest_port), timeout=READ_TIMEOUT_S + 5)
    slow = socket.create_connection(("127.0.0.1", process.rest_port), timeout=READ_TIMEOUT_S + 5)
    started = time.monotonic()
    try:
        slow.sendall(b"GET /v1/models/half_plus_two HTTP/1.1\r\n")
        for sock in (idle, slow):
            closed = b""
            try:
                while True:
                    if time.monotonic() - started > READ_TIMEOUT_S + 5:
                        raise AssertionError("the server kept a stalled connection open")
                    if sock is slow:
                        sock.sendall(b"X")  # keeps trickling; the deadline is per request
                    chunk = sock.recv(1024)
                    if not chunk:
                        break
                    closed += chunk
            except (ConnectionResetError, BrokenPipeError):
                pass
        elapsed = time.monotonic() - started
        assert READ_TIMEOUT_S - 0.5 <= elapsed <= READ_TIMEOUT_S + 4, elapsed
    finally:
        idle.close()
        slow.close()


def test_invalid_content_length(server: tuple[StandinProcess, int]) -> None:
    process, _ = server
    status, body = raw_http(
        process.rest_port,
        b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    )
    assert status == 400
    assert body == {"error": "Invalid Content-Length header: 'abc'"}


def test_huge_content_length_is_refused_before_reading(server: tuple[StandinProcess, int]) -> None:
    """Content-Length: 99999999999 gets a 413 with an {"error": ...} body at once (no
    allocation of the announced size)."""
    process, _ = server
    started = time.monotonic()
    status, body = raw_http(
        process.rest_port,
        b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 99999999999\r\n\r\n{",
    )
    assert status == 413
    assert "over the stand-in's limit" in body["error"]  # type: ignore[index]
    assert time.monotonic() - started < 5
    assert timed_predict(process.url)[1] == (200, {"predictions": [2.5]})


def test_deep_nesting_gets_an_error_body(server: tuple[StandinProcess, int]) -> None:
    """2000 levels of nested instances: an INVALID_ARGUMENT answer, not a dropped connection."""
    process, _ = server
    body = b'{"instances": ' + b"[" * 2000 + b"1.0" + b"]" * 2000 + b"}"
    request = (
        b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    status, answer = raw_http(process.rest_port, request)
    assert status == 400, answer
    assert isinstance(answer, dict) and "error" in answer


@pytest.mark.slow
def test_400_mb_grpc_predict_is_served_and_the_server_answers_after(
    server: tuple[StandinProcess, int],
) -> None:
    """A legal 400 MB Predict (100M floats in tensor_content) is served, typed float_val
    output included, and the server still answers afterwards. Its peak memory is a goal of
    `make bench` (big_predict), not of this test."""
    process, grpc_port = server
    assert process.proc is not None
    count = 100_000_000
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    tensor.tensor_shape.dim.add(size=count)
    tensor.tensor_content = np.full(count, 2.0, np.float32).tobytes()
    request.inputs["x"].CopyFrom(tensor)
    del tensor
    options = [("grpc.max_send_message_length", 2**31 - 1)]
    options.append(("grpc.max_receive_message_length", 2**31 - 1))
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}", options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=300)
    output = response.outputs["y"]
    assert len(output.float_val) == count and output.float_val[0] == 3.0
    assert output.float_val[count - 1] == 3.0
    wait_for(lambda: timed_predict(process.url)[1][0] == 200, 30, "REST after the big predict")
