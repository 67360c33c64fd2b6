"""Model warmup: replay assets.extra/tf_serving_warmup_requests when a version loads
(TF Serving's saved_model_warmup_util: PredictionLog records, at most 1000)."""

from __future__ import annotations

import os
from collections.abc import Callable

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tfs_standin.errors import ServingError, invalid_argument

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_RECORDS = 1000

Runner = Callable[[str, object], None]


def read_records(path: str) -> list[prediction_log_pb2.PredictionLog]:
    logs = []
    for index, raw in enumerate(tf.compat.v1.io.tf_record_iterator(path)):
        if index >= MAX_RECORDS:
            raise invalid_argument(
                f"Number of warmup records exceeds the maximum ({MAX_RECORDS}) at {path}"
            )
        entry = prediction_log_pb2.PredictionLog()
        entry.ParseFromString(raw)
        logs.append(entry)
    return logs


def run_warmup(version_dir: str, iterations: int, run: Runner) -> int:
    """Replay the warmup file if present; return how many requests ran. run(kind, request)."""
    path = os.path.join(version_dir, WARMUP_FILE)
    if not os.path.exists(path):
        return 0
    try:
        records = read_records(path)
    except tf.errors.OpError as exc:
        raise invalid_argument(f"Failed to read warmup file {path}: {exc.message}") from exc
    done = 0
    for entry in records:
        kind = entry.WhichOneof("log_type")
        if kind not in ("predict_log", "classify_log", "regress_log"):
            raise invalid_argument(f"Unsupported log_type for warmup: {kind}")
        request = getattr(entry, kind).request
        for _ in range(max(1, iterations)):
            try:
                run(kind, request)
            except ServingError as exc:
                raise ServingError(exc.code, f"warmup request failed: {exc.message}") from exc
            done += 1
    return done
