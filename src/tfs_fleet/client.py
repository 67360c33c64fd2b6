"""TF Serving clients: gRPC (Predict, Classify, Regress, MultiInference, GetModelMetadata,
GetModelStatus) and REST.

Imports no TensorFlow (see :mod:`tfs_fleet.protos`); cold start is about 0.2 s.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np

from tfs_fleet.protos import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tfs_fleet.tensors import (
    dtype_name,
    from_json_value,
    from_tensor_proto,
    to_json_value,
    to_tensor_proto,
)

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_READ_CHUNK = 64 * 1024
DEFAULT_SIGNATURE = "serving_default"

# ModelVersionStatus.State values (tensorflow_serving/apis/get_model_status.proto).
STATE_NAMES = {
    0: "UNKNOWN",
    10: "START",
    20: "LOADING",
    30: "AVAILABLE",
    40: "UNLOADING",
    50: "END",
}


class ServingError(RuntimeError):
    """A request to TF Serving failed; the message names the target and the cause."""

    def __init__(self, message: str, code: str = "UNKNOWN") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class VersionStatus:
    """One entry of GetModelStatus / GET /v1/models/<name>."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


@dataclass(frozen=True)
class PredictResult:
    outputs: dict[str, np.ndarray]
    model_name: str
    model_version: int | None
    signature_name: str


@dataclass(frozen=True)
class RetryPolicy:
    """Retry with exponential backoff, on UNAVAILABLE only (every other code is final)."""

    attempts: int = 4
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 2.0
    multiplier: float = 2.0

    def delays(self) -> list[float]:
        delay, out = self.initial_backoff_s, []
        for _ in range(max(self.attempts - 1, 0)):
            out.append(min(delay, self.max_backoff_s))
            delay *= self.multiplier
        return out


def remaining_s(deadline: float | None, timeout_s: float, what: str, target: str) -> float:
    """Seconds a request may take: its own timeout, cut to what is left before ``deadline``
    (``time.monotonic()`` based); ServingError(DEADLINE_EXCEEDED) when nothing is left."""
    if deadline is None:
        return timeout_s
    left = deadline - time.monotonic()
    if left <= 0:
        raise ServingError(
            f"{what} on {target}: the run's deadline has passed", "DEADLINE_EXCEEDED"
        )
    return min(timeout_s, left)


@dataclass(frozen=True)
class TlsConfig:
    """gRPC over TLS: the CA that signed the server's certificate, and for mutual TLS the
    client's key and certificate (PEM files)."""

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None  # the name in the server certificate, when not the host

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("mutual TLS needs both a client certificate and its key")
        try:
            ca = _read_bytes(self.ca_file)
            cert = _read_bytes(self.cert_file) if self.cert_file else None
            key = _read_bytes(self.key_file) if self.key_file else None
        except OSError as exc:
            raise ValueError(f"TLS file not readable: {exc}") from exc
        return grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _model_spec(
    spec: Any, name: str, version: int | None, label: str | None, signature: str | None
) -> None:
    if version is not None and label is not None:
        raise ValueError("give a model version or a version label, not both")
    spec.name = name
    if version is not None:
        spec.version.value = int(version)
    if label is not None:
        spec.version_label = label
    if signature is not None:
        spec.signature_name = signature


_GRPC_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


def _status_from_proto(entry: Any) -> VersionStatus:
    code = int(entry.status.error_code)  # tensorflow.error.Code uses gRPC's numbers
    return VersionStatus(
        version=int(entry.version),
        state=STATE_NAMES.get(entry.state, str(entry.state)),
        error_code=_GRPC_CODE_NAMES.get(code, str(code)),
        error_message=entry.status.error_message,
    )


@dataclass
class GrpcClient:
    """TF Serving's gRPC API on one ``host:port``."""

    target: str
    timeout_s: float = 10.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    # time.monotonic() after which no request starts and every request is cut short.
    deadline: float | None = None
    tls: TlsConfig | None = None
    _channel: Any = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        if ":" not in self.target:
            raise ValueError(f"gRPC target {self.target!r} must be HOST:PORT")
        options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", int(self.max_message_bytes)),
            ("grpc.max_receive_message_length", int(self.max_message_bytes)),
        ]
        if self.tls is None:
            self._channel = grpc.insecure_channel(self.target, options=options)
        else:
            if self.tls.server_name:
                options.append(("grpc.ssl_target_name_override", self.tls.server_name))
            self._channel = grpc.secure_channel(
                self.target, self.tls.credentials(), options=options
            )
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GrpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self,
        what: str,
        method: Callable[..., Any],
        request: Any,
        timeout_s: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        delays = (retry or self.retry).delays()
        timeout = self.timeout_s if timeout_s is None else timeout_s
        for attempt in range(len(delays) + 1):
            try:
                return method(
                    request, timeout=remaining_s(self.deadline, timeout, what, self.target)
                )
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
                if code == grpc.StatusCode.UNAVAILABLE and attempt < len(delays):
                    pause = delays[attempt]
                    if self.deadline is not None:
                        pause = min(pause, max(self.deadline - time.monotonic(), 0.0))
                    self.sleep(pause)
                    continue
                details = exc.details() if hasattr(exc, "details") else str(exc)
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise ServingError(
                    f"{what} on {self.target} failed{tries}: {code.name}: {details}", code.name
                ) from exc
        raise AssertionError("unreachable")

    def predict(
        self,
        model: str,
        inputs: Mapping[str, Any],
        *,
        signature: str = DEFAULT_SIGNATURE,
        version: int | None = None,
        version_label: str | None = None,
        output_filter: list[str] | None = None,
    ) -> PredictResult:
        request = predict_pb2.PredictRequest()
        _model_spec(request.model_spec, model, version, version_label, signature)
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(to_tensor_proto(value))
        request.output_filter.extend(output_filter or [])
        response = self._call("Predict", self._predict.Predict, request)
        outputs = {key: from_tensor_proto(t) for key, t in response.outputs.items()}
        spec = response.model_spec
        return PredictResult(
            outputs=outputs,
            model_name=spec.name or model,
            model_version=int(spec.version.value) if spec.HasField("version") else None,
            signature_name=spec.signature_name or signature,
        )

    def predict_request(self, request: Any) -> Any:
        """Send a ready ``PredictRequest``; the ``PredictResponse`` proto (outputs undecoded)."""
        return self._call("Predict", self._predict.Predict, request)

    def classify(self, request: Any) -> Any:
        """Send a ``ClassificationRequest``; the ``ClassificationResponse`` proto."""
        return self._call("Classify", self._predict.Classify, request)

    def regress(self, request: Any) -> Any:
        """Send a ``RegressionRequest``; the ``RegressionResponse`` proto."""
        return self._call("Regress", self._predict.Regress, request)

    def multi_inference(self, request: Any) -> Any:
        """Send a ``MultiInferenceRequest``; the ``MultiInferenceResponse`` proto."""
        return self._call("MultiInference", self._predict.MultiInference, request)

    def get_model_metadata(
        self, model: str, *, version: int | None = None, version_label: str | None = None
    ) -> dict[str, Any]:
        """Signature definitions: {signature: SignatureDef proto}, plus the served version."""
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        _model_spec(request.model_spec, model, version, version_label, None)
        request.metadata_field.append("signature_def")
        response = self._call("GetModelMetadata", self._predict.GetModelMetadata, request)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        if "signature_def" not in response.metadata:
            raise ServingError(f"GetModelMetadata on {self.target}: no signature_def in answer")
        response.metadata["signature_def"].Unpack(sig_map)
        return dict(sig_map.signature_def)

    def get_model_status(
        self,
        model: str,
        *,
        version: int | None = None,
        version_label: str | None = None,
        timeout_s: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> list[VersionStatus]:
        """Version states. ``timeout_s``/``retry`` override the client's for this call (a
        polling loop passes its remaining time and a single attempt)."""
        request = get_model_status_pb2.GetModelStatusRequest()
        _model_spec(request.model_spec, model, version, version_label, None)
        response = self._call(
            "GetModelStatus", self._models.GetModelStatus, request, timeout_s, retry
        )
        return [_status_from_proto(entry) for entry in response.model_version_status]


def signature_summary(signature: Any) -> dict[str, Any]:
    """A SignatureDef proto -> {"inputs": {key: {dtype, shape}}, "outputs": ..., method_name}."""

    def infos(m: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, info in sorted(m.items()):
            shape = None
            if not info.tensor_shape.unknown_rank:
                shape = [int(d.size) for d in info.tensor_shape.dim]
            out[key] = {"dtype": dtype_name(info.dtype), "shape": shape}
        return out

    return {
        "method_name": signature.method_name,
        "inputs": infos(signature.inputs),
        "outputs": infos(signature.outputs),
    }


def _version_path(model: str, version: int | None, label: str | None) -> str:
    if version is not None and label is not None:
        raise ValueError("give a model version or a version label, not both")
    path = f"/v1/models/{model}"
    if version is not None:
        path += f"/versions/{int(version)}"
    elif label is not None:
        path += f"/labels/{label}"
    return path


@dataclass
class RestClient:
    """TF Serving's REST API on one ``host:port`` (status, metadata, predict).

    ``timeout_s`` bounds each whole request (connect, send, headers and body), not each socket
    read: a server that trickles its answer is cut off at the deadline. Answers larger than
    ``max_response_bytes`` are refused before they are read into memory."""

    target: str
    timeout_s: float = 10.0
    max_response_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    deadline: float | None = None  # time.monotonic() of the whole run's end

    def __post_init__(self) -> None:
        if ":" not in self.target:
            raise ValueError(f"REST target {self.target!r} must be HOST:PORT")
        self.base_url = self.target if "://" in self.target else f"http://{self.target}"
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(
                f"REST target {self.target!r} must be HOST:PORT or http(s)://HOST:PORT"
            )
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._prefix = parts.path.rstrip("/")

    def _request(self, path: str, body: Any = None) -> Any:
        url = self.base_url + path
        method = "GET" if body is None else "POST"
        data = None if body is None else json.dumps(body).encode("utf-8")
        budget = remaining_s(self.deadline, self.timeout_s, f"{method} {url}", self.target)
        end = time.monotonic() + budget
        status, reason, raw = self._exchange(method, self._prefix + path, data, budget, end, url)
        text = raw.decode("utf-8", "replace")
        if status >= 400:
            raise ServingError(f"{method} {url}: HTTP {status}: {_error_text(text, reason)}")
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ServingError(f"{url}: answer is not JSON: {exc}") from exc

    def _exchange(
        self, method: str, path: str, data: bytes | None, budget: float, end: float, url: str
    ) -> tuple[int, str, bytes]:
        conn: http.client.HTTPConnection
        if self._scheme == "https":
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=budget, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=budget)
        expired = threading.Event()
        # The connection's socket, kept: once the answer's headers are read, http.client drops
        # conn.sock for an answer that ends with the connection (HTTP/1.0, Connection: close)
        # while the response goes on reading from the same socket.
        held: list[socket.socket] = []

        def cut_off() -> None:
            expired.set()
            for sock in (conn.sock, *held):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

        # The watchdog ends a request that is still running at its deadline, whatever
        # the server does (one byte every second keeps each read inside its own timeout).
        watchdog = threading.Timer(budget, cut_off)
        watchdog.daemon = True
        watchdog.start()
        try:
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            if conn.sock is not None:
                held.append(conn.sock)
            resp = conn.getresponse()
            length = resp.getheader("Content-Length")
            if (
                length is not None
                and length.strip().isdigit()
                and int(length) > self.max_response_bytes
            ):
                raise ServingError(
                    f"{method} {url}: answer of {int(length)} bytes is over the limit of "
                    f"{self.max_response_bytes} bytes"
                )
            chunks: list[bytes] = []
            total = 0
            while True:
                left = end - time.monotonic()
                if left <= 0 or expired.is_set():
                    raise TimeoutError()
                for sock in held:
                    sock.settimeout(left)
                # read1: one receive at most, so a server that trickles bytes cannot hold a
                # read past the deadline (read(n) waits for all n bytes or the end).
                chunk = resp.read1(_READ_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > self.max_response_bytes:
                    raise ServingError(
                        f"{method} {url}: answer is over the limit of "
                        f"{self.max_response_bytes} bytes"
                    )
                chunks.append(chunk)
            if expired.is_set():
                raise TimeoutError()
            return resp.status, str(resp.reason), b"".join(chunks)
        except ServingError:
            raise
        except TimeoutError as exc:
            raise ServingError(
                f"{method} {url}: no complete answer within {budget:.3g} s", "DEADLINE_EXCEEDED"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            if expired.is_set():
                raise ServingError(
                    f"{method} {url}: no complete answer within {budget:.3g} s",
                    "DEADLINE_EXCEEDED",
                ) from exc
            raise ServingError(f"{url}: {exc}", "UNAVAILABLE") from exc
        finally:
            watchdog.cancel()
            conn.close()

    def status(
        self, model: str, *, version: int | None = None, version_label: str | None = None
    ) -> list[VersionStatus]:
        doc = self._request(_version_path(model, version, version_label))
        return [
            VersionStatus(
                version=int(e.get("version", 0)),
                state=str(e.get("state", "UNKNOWN")),
                error_code=str(e.get("status", {}).get("error_code", "OK")),
                error_message=str(e.get("status", {}).get("error_message", "")),
            )
            for e in doc.get("model_version_status", [])
        ]

    def metadata(
        self, model: str, *, version: int | None = None, version_label: str | None = None
    ) -> dict[str, Any]:
        """The raw metadata document (``{"model_spec": ..., "metadata": {...}}``)."""
        result: dict[str, Any] = self._request(
            _version_path(model, version, version_label) + "/metadata"
        )
        return result

    def predict_rows(
        self,
        model: str,
        instances: Any,
        *,
        signature: str = DEFAULT_SIGNATURE,
        version: int | None = None,
        version_label: str | None = None,
    ) -> Any:
        """Row ("instances") form. ``instances`` is an array (batch first) or a list of dicts
        of arrays; returns ``predictions`` as numpy (or a list of dicts of numpy)."""
        body = {"signature_name": signature, "instances": _rows_to_json(instances)}
        doc = self._request(_version_path(model, version, version_label) + ":predict", body)
        preds = doc["predictions"]
        if preds and isinstance(preds[0], Mapping):
            return [{k: from_json_value(v) for k, v in row.items()} for row in preds]
        return from_json_value(preds)

    def predict_columns(
        self,
        model: str,
        inputs: Mapping[str, Any],
        *,
        signature: str = DEFAULT_SIGNATURE,
        version: int | None = None,
        version_label: str | None = None,
    ) -> dict[str, np.ndarray]:
        """Columnar ("inputs") form; returns {output key: numpy array}."""
        body = {
            "signature_name": signature,
            "inputs": {k: to_json_value(v) for k, v in inputs.items()},
        }
        doc = self._request(_version_path(model, version, version_label) + ":predict", body)
        outputs = doc["outputs"]
        if isinstance(outputs, Mapping):
            return {k: from_json_value(v) for k, v in outputs.items()}
        return {"outputs": from_json_value(outputs)}


def _rows_to_json(instances: Any) -> Any:
    if isinstance(instances, list) and instances and isinstance(instances[0], Mapping):
        return [{k: to_json_value(v) for k, v in row.items()} for row in instances]
    return to_json_value(instances)


def _error_text(body: str, reason: str) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return body[:500] or reason
    if isinstance(doc, dict) and "error" in doc:
        return str(doc["error"])
    return body[:500] or reason
