"""client_vs_stub_ratio: tfs_fleet.client.GrpcClient.predict (request built, tensors encoded
and decoded, retry wrapper) against a bare PredictionServiceStub.Predict with a request built
once, on the same server, interleaved in rounds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np

from tfs_bench.figures import Figure, measured
from tfs_bench.server import MODEL, BenchError
from tfs_bench.stats import median, percentile, ratio
from tfs_fleet.client import DEFAULT_MAX_MESSAGE_BYTES, GrpcClient, RetryPolicy
from tfs_fleet.protos import predict_pb2, prediction_service_pb2_grpc
from tfs_fleet.tensors import to_tensor_proto

Progress = Callable[[str], None]
TIMEOUT_S = 10.0
WARMUP = 50


def _timed(call: Callable[[], Any], n: int, into: list[float]) -> None:
    for _ in range(n):
        start = time.perf_counter()
        call()
        into.append((time.perf_counter() - start) * 1000.0)


def client_vs_stub(
    target: str, calls: int = 1000, rounds: int = 20, progress: Progress = print
) -> tuple[Figure, dict[str, list[float]]]:
    """The figure and the per-call latencies in ms of both clients."""
    if calls <= 0 or rounds <= 0 or calls % rounds:
        raise ValueError("calls and rounds must be positive, calls a multiple of rounds")
    x = np.array([[1.0]], dtype=np.float32)
    client = GrpcClient(target, timeout_s=TIMEOUT_S, retry=RetryPolicy(attempts=1))
    options = [
        ("grpc.max_send_message_length", DEFAULT_MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", DEFAULT_MAX_MESSAGE_BYTES),
    ]
    channel = grpc.insecure_channel(target, options=options)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "serving_default"
    request.inputs["x"].CopyFrom(to_tensor_proto(x))
    try:

        def project() -> Any:
            return client.predict(MODEL, {"x": x})

        def bare() -> Any:
            return stub.Predict(request, timeout=TIMEOUT_S)

        answer = float(project().outputs["pred"].reshape(-1)[0])
        raw = bare().outputs["pred"]
        if answer != 2.5 or not (raw.float_val or raw.tensor_content):
            raise BenchError(f"half_plus_two answered {answer} / {raw}, expected 2.5")
        samples: dict[str, list[float]] = {"client": [], "stub": []}
        _timed(project, WARMUP, [])
        _timed(bare, WARMUP, [])
        per_round = calls // rounds
        for n in range(rounds):
            # Alternate which client goes first, so that neither always follows the other.
            order = [("client", project), ("stub", bare)]
            for name, call in order if n % 2 == 0 else order[::-1]:
                _timed(call, per_round, samples[name])
            if (n + 1) % max(1, rounds // 4) == 0:
                progress(f"client_vs_stub: round {n + 1}/{rounds}")
    finally:
        client.close()
        channel.close()
    med_client, med_stub = median(samples["client"]), median(samples["stub"])
    figure = measured(
        "client_vs_stub_ratio",
        round(ratio(med_client, med_stub), 4),
        calls_each=calls,
        rounds=rounds,
        client_median_ms=round(med_client, 4),
        stub_median_ms=round(med_stub, 4),
        client_p99_ms=round(percentile(samples["client"], 99), 4),
        stub_p99_ms=round(percentile(samples["stub"], 99), 4),
    )
    return figure, samples
