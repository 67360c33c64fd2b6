"""big_predict_peak_rss_gib: the peak resident memory (VmHWM of /proc/PID/status) of a fresh
serving stand-in (src/tfs_standin, not TF Serving) that serves one legal 400 MB gRPC Predict:
100M float32 in tensor_content on input "x" of the demo half_plus_two (scripts/export_model.py;
its output is "pred", TF Serving's reference half_plus_two calls it "y"), every output float_val
3.0. A stand-in process of its own, started for this request alone, so its high-water
mark is this request's (and the start's: the baseline, read before the request, is in detail).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from tfs_bench.figures import Figure, measured
from tfs_bench.server import MODEL, BenchError, Standin
from tfs_fleet.protos import predict_pb2, prediction_service_pb2_grpc, types_pb2

Progress = Callable[[str], None]
COUNT = 100_000_000  # float32: 400 MB of tensor_content
INPUT_VALUE = 2.0
EXPECTED = 3.0  # half_plus_two: 0.5 * 2.0 + 2.0
OUTPUT = "pred"  # the demo export's output name
GIB = 2**30
MAX_MESSAGE_BYTES = 2**31 - 1  # as TF Serving's gRPC server (server.cc SetMaxMessageSize)
TIMEOUT_S = 300.0


def vm_hwm_bytes(status: str) -> int:
    """The VmHWM line of a /proc/PID/status text, in bytes."""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            fields = line.split()
            if len(fields) != 3 or fields[2] != "kB":
                raise BenchError(f"unexpected VmHWM line in /proc status: {line!r}")
            return int(fields[1]) * 1024
    raise BenchError("no VmHWM line in /proc status")


def peak_rss_bytes(pid: int) -> int:
    """The peak resident set size of a live process so far (VmHWM)."""
    return vm_hwm_bytes(Path(f"/proc/{pid}/status").read_text())


def check_answer(values: Sequence[float], count: int) -> None:
    """A float_val of `count` values, the first and the last EXPECTED, or BenchError."""
    n = len(values)
    if n != count:
        raise BenchError(f"big Predict: {n} float_val values in the output, expected {count}")
    first, last = values[0], values[n - 1]
    if first != EXPECTED or last != EXPECTED:
        raise BenchError(
            f"big Predict: the output starts with {first} and ends with {last}, expected {EXPECTED}"
        )


def big_predict_figure(
    baseline_bytes: int, peak_bytes: int, seconds: float, count: int = COUNT
) -> Figure:
    """The figure from the stand-in's VmHWM before and after the request and its wall time."""
    if baseline_bytes <= 0 or peak_bytes < baseline_bytes or seconds < 0:
        raise ValueError(
            f"big_predict: baseline {baseline_bytes} B, peak {peak_bytes} B, {seconds} s: "
            "the peak cannot be below the baseline"
        )
    return measured(
        "big_predict_peak_rss_gib",
        round(peak_bytes / GIB, 3),
        baseline_gib=round(baseline_bytes / GIB, 3),
        growth_gib=round((peak_bytes - baseline_bytes) / GIB, 3),
        request_s=round(seconds, 2),
        floats=count,
        tensor_content_bytes=4 * count,
    )


def _request(count: int) -> Any:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    tensor = request.inputs["x"]
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.tensor_shape.dim.add(size=count)
    tensor.tensor_shape.dim.add(size=1)  # the demo's input is [None, 1]
    tensor.tensor_content = np.full(count, INPUT_VALUE, np.float32).tobytes()
    return request


def big_predict(
    model_base: Path,
    log_path: Path,
    count: int = COUNT,
    progress: Progress = print,
    output: str = OUTPUT,
) -> Figure:
    """Start a stand-in on model_base, read its VmHWM, send one Predict of `count` floats,
    check the answer, read VmHWM again, stop the stand-in."""
    progress("big_predict: starting a stand-in of its own")
    server = Standin(model_base, log_path).start()
    try:
        if server.proc is None:
            raise BenchError("big_predict: the stand-in has no process")
        pid = server.proc.pid
        baseline = peak_rss_bytes(pid)
        progress(f"big_predict: stand-in pid {pid} serving, VmHWM {baseline / GIB:.3f} GiB")
        request = _request(count)
        progress(f"big_predict: sending one Predict of {count:,} floats ({4 * count:,} bytes)")
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        with grpc.insecure_channel(server.grpc_target, options=options) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            start = time.perf_counter()
            try:
                response = stub.Predict(request, timeout=TIMEOUT_S)
            except grpc.RpcError as exc:
                raise BenchError(
                    f"big Predict failed: {exc.code()}: {exc.details()}\n{server.log_tail()}"
                ) from exc
            seconds = time.perf_counter() - start
        del request
        if output not in response.outputs:
            raise BenchError(f"big Predict: no output {output} ({sorted(response.outputs)})")
        check_answer(response.outputs[output].float_val, count)
        del response
        peak = peak_rss_bytes(pid)
        progress(f"big_predict: answered in {seconds:.1f} s, checked; VmHWM {peak / GIB:.3f} GiB")
    finally:
        server.stop()
    return big_predict_figure(baseline, peak, seconds, count)
