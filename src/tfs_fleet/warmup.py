"""A version's warmup records (``assets.extra/tf_serving_warmup_requests``), read and replayed
against a host without TensorFlow.

TF Serving replays this file when it loads a version (saved_model_warmup.cc): a TFRecord file of
``tensorflow_serving.apis.PredictionLog`` records, at most 1000, each a ``predict_log``,
``classify_log``, ``regress_log`` or ``multi_inference_log`` (other log types make the load
fail). The smoke test sends each record's request to the host with the matching gRPC call, the
model spec set to the model and version it checks, and requires every call to succeed with
finite float answers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from google.protobuf import message as pb_message

from tfs_fleet.answers import (
    AnswerError,
    check_classification,
    check_finite_outputs,
    check_regression,
    example_count,
    signature_or_default,
)
from tfs_fleet.protos import prediction_log_pb2
from tfs_fleet.tfrecord import TFRecordError, read_records

MAX_RECORDS = 1000  # TF Serving's limit (saved_model_warmup_util)
REPLAYABLE = {
    "predict_log": "Predict",
    "classify_log": "Classify",
    "regress_log": "Regress",
    "multi_inference_log": "MultiInference",
}


class WarmupError(ValueError):
    """A warmup file TF Serving would refuse; the message names the file and the record."""


@dataclass(frozen=True)
class WarmupRecord:
    index: int  # 1-based position in the file
    kind: str  # predict_log | classify_log | regress_log | multi_inference_log
    request: Any

    @property
    def call(self) -> str:
        return REPLAYABLE[self.kind]

    @property
    def signatures(self) -> tuple[str, ...]:
        """The signatures this record calls (a MultiInference record may call several)."""
        if self.kind == "multi_inference_log":
            names = {signature_or_default(t.model_spec.signature_name) for t in self.request.tasks}
            return tuple(sorted(names))
        return (signature_or_default(self.request.model_spec.signature_name),)


def read_warmup(path: Path) -> list[WarmupRecord]:
    """Every record of a warmup file; WarmupError for what TF Serving would not load."""
    try:
        raw = read_records(path, MAX_RECORDS)
    except TFRecordError as exc:
        raise WarmupError(str(exc)) from exc
    records = []
    for index, data in enumerate(raw, start=1):
        log = prediction_log_pb2.PredictionLog()
        try:
            log.ParseFromString(data)
        except pb_message.DecodeError as exc:
            raise WarmupError(f"{path}: record {index}: not a PredictionLog: {exc}") from exc
        kind = log.WhichOneof("log_type")
        if kind not in REPLAYABLE:
            raise WarmupError(
                f"{path}: record {index}: log type {kind or 'none'} cannot be replayed "
                "(TF Serving's warmup takes predict_log, classify_log, regress_log and "
                "multi_inference_log only)"
            )
        records.append(WarmupRecord(index, kind, getattr(log, kind).request))
    return records


class Caller(Protocol):
    def predict_request(self, request: Any) -> Any: ...
    def classify(self, request: Any) -> Any: ...
    def regress(self, request: Any) -> Any: ...
    def multi_inference(self, request: Any) -> Any: ...


def _set_spec(spec: Any, model: str, version: int) -> None:
    spec.name = model
    spec.ClearField("version_label")
    spec.version.value = version


def addressed(record: WarmupRecord, model: str, version: int) -> Any:
    """A copy of the record's request with the model spec(s) set to ``model``/``version``."""
    request = type(record.request)()
    request.CopyFrom(record.request)
    if record.kind == "multi_inference_log":
        for task in request.tasks:
            _set_spec(task.model_spec, model, version)
    else:
        _set_spec(request.model_spec, model, version)
    return request


def replay_one(client: Caller, record: WarmupRecord, model: str, version: int) -> None:
    """Send one record; ServingError when the call fails, AnswerError on a bad answer."""
    request = addressed(record, model, version)
    if record.kind == "predict_log":
        check_finite_outputs(client.predict_request(request).outputs)
    elif record.kind == "classify_log":
        response = client.classify(request)
        check_classification(response.result, example_count(request.input))
    elif record.kind == "regress_log":
        response = client.regress(request)
        check_regression(response.result, example_count(request.input))
    else:
        response = client.multi_inference(request)
        if len(response.results) != len(request.tasks):
            raise AnswerError(f"{len(response.results)} results for {len(request.tasks)} tasks")
        for result in response.results:
            kind = result.WhichOneof("result")
            if kind == "classification_result":
                check_classification(result.classification_result)
            elif kind == "regression_result":
                check_regression(result.regression_result)


def describe(records: list[WarmupRecord]) -> str:
    counts = Counter(r.call for r in records)
    return ", ".join(f"{n} {call}" for call, n in sorted(counts.items()))
