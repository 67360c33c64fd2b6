"""HTTP/REST front end: TF Serving's /v1/models API and the Prometheus page."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from tfs_standin import json_api
from tfs_standin.core import ServerCore
from tfs_standin.errors import ServingError, http_status, invalid_argument

log = logging.getLogger("tfs_standin")

PREDICT_RE = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
STATUS_RE = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
API_RE = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


def _model_spec(name: str, version: str | None, label: str | None) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=unquote(name))
    if version:
        try:
            spec.version.value = int(version)
        except ValueError as exc:
            raise invalid_argument(f"Failed to convert version: {version} to numeric.") from exc
    if label:
        spec.version_label = unquote(label)
    return spec


def _proto_json(message: Any, preserve: bool) -> str:
    return json_format.MessageToJson(
        message,
        indent=1,
        preserving_proto_field_name=preserve,
        always_print_fields_with_no_presence=True,
    )


def metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> str:
    """Concatenated like TF Serving's ToJsonString(GetModelMetadataResponse)."""
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(sig_map)
    spec = _proto_json(response.model_spec, True)
    sigs = _proto_json(sig_map, True)
    return '{\n"model_spec":' + spec + ',\n"metadata": {"signature_def": ' + sigs + "}\n}\n"


class RestApi:
    """Turns (method, path, body) into (HTTP status, JSON body), as HttpRestApiHandler."""

    def __init__(self, core: ServerCore) -> None:
        self.core = core
        self.timeout_ms = max(0, core.options.rest_api_timeout_in_ms)

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        try:
            return 200, self._process(method, path, body)
        except ServingError as exc:
            return exc.http_status, json_api.error_body(exc.message)
        except RecursionError:
            return 400, json_api.error_body("JSON Value nesting is too deep for the stand-in")

    def _process(self, method: str, path: str, body: bytes) -> str:
        malformed = invalid_argument(f"Malformed request: {method} {path}")
        if method == "POST":
            match = PREDICT_RE.fullmatch(path)
            if not match:
                raise malformed
            name, version, label, verb = match.groups()
            spec = _model_spec(name, version, label)
            # The path regex ignores case, the dispatch does not (http_rest_api_handler.cc):
            # ":PREDICT" matches and then falls through to "Malformed request".
            if verb not in ("classify", "regress", "predict"):
                raise malformed
            return getattr(self, f"_{verb}")(spec, body)
        if method == "GET":
            match = STATUS_RE.fullmatch(path)
            if not match:
                raise malformed
            name, version, label, sub = match.groups()
            if not name:
                raise invalid_argument("Missing model name in request.")
            spec = _model_spec(name, version, label)
            return self._metadata(spec) if sub == "metadata" else self._status(spec)
        raise malformed

    def _status(self, spec: model_pb2.ModelSpec) -> str:
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec)
        # http_server.cc counts every REST request, a GET of the status too.
        response = self.core.call("GetModelStatus", "REST", spec, lambda: self.core.status(request))
        return _proto_json(response, False)

    def _metadata(self, spec: model_pb2.ModelSpec) -> str:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=spec, metadata_field=["signature_def"]
        )
        return metadata_json(self.core.metadata(request, entrypoint="REST"))

    def _predict(self, spec: model_pb2.ModelSpec, body: bytes) -> str:
        doc = json_api.parse_json(body)
        request = predict_pb2.PredictRequest(model_spec=spec)
        request.model_spec.signature_name = json_api.signature_name(doc)
        inputs, fmt = json_api.predict_inputs(
            doc, lambda sig: self.core.input_infos(request.model_spec, sig)
        )
        for alias, tensor in inputs.items():
            request.inputs[alias].CopyFrom(tensor)
        response = self.core.predict(request, self.timeout_ms, entrypoint="REST")
        outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
        return json_api.predict_answer({k: np.asarray(v) for k, v in outputs.items()}, fmt)

    @staticmethod
    def _examples_request(request: Any, body: bytes, method: str) -> Any:
        """A Classify or Regress request filled from the JSON body (signature, examples)."""
        doc = json_api.parse_json(body)
        request.model_spec.signature_name = json_api.signature_name(doc)
        request.input.CopyFrom(json_api.examples_input(doc, method))
        return request

    def _classify(self, spec: model_pb2.ModelSpec, body: bytes) -> str:
        request = classification_pb2.ClassificationRequest(model_spec=spec)
        request = self._examples_request(request, body, "classify")
        response = self.core.classify(request, self.timeout_ms, entrypoint="REST")
        return json_api.classify_answer(response.result.classifications)

    def _regress(self, spec: model_pb2.ModelSpec, body: bytes) -> str:
        request = regression_pb2.RegressionRequest(model_spec=spec)
        request = self._examples_request(request, body, "regress")
        response = self.core.regress(request, self.timeout_ms, entrypoint="REST")
        return json_api.regress_answer(response.result.regressions)


class _BadRequest(Exception):
    """A request the HTTP layer refuses before the API sees it (status, message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tfs-fleet-standin"
    api: RestApi
    prometheus_path: str | None
    cors: bool
    server: _RestServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("REST %s", format % args)

    def handle_one_request(self) -> None:
        # The whole request (the wait for it on a kept-alive connection, its headers and its
        # body) must arrive before the read deadline, or the connection is closed: idle and
        # slow (slowloris) clients cost one thread each and never block the others.
        self.server.watch(self.connection)
        try:
            super().handle_one_request()
        finally:
            self.server.unwatch(self.connection)

    def _body(self) -> bytes:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        text = raw.strip()
        if not text.isdigit() or not text.isascii():
            raise _BadRequest(400, f"Invalid Content-Length header: {raw!r}")
        length = int(text)
        limit = self.server.max_body_bytes
        if length > limit:
            raise _BadRequest(
                413,
                f"Request body of {length} bytes is over the stand-in's limit of {limit} bytes "
                "(TFS_STANDIN_MAX_REST_BODY_BYTES)",
            )
        data = self.rfile.read(length) if length > 0 else b""
        if len(data) != length:
            raise _BadRequest(400, f"Request body ended after {len(data)} of {length} bytes")
        return data

    def _reply(self, status: int, body: str, content_type: str = "application/json") -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if self.cors:
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Methods", "POST, GET")
            self.send_header("Access-Control-Allow-Headers", "Content-Type")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self) -> None:
        try:
            body = self._body()
        except _BadRequest as exc:
            self.close_connection = True  # the rest of the stream cannot be trusted
            self._reply(exc.status, json_api.error_body(str(exc)))
            return
        self.server.unwatch(self.connection)  # the request is in; running it has no deadline
        path = urlsplit(self.path).path
        if self.prometheus_path and path == self.prometheus_path:
            self._reply(200, self.api.core.metrics.render(), "text/plain")
            return
        if not API_RE.fullmatch(path):
            self._reply(404, "", "text/plain")
            return
        if self.command == "OPTIONS":
            origin = self.headers.get("Origin", "")
            if re.search(r"https?://", origin):
                self._reply(200, "")
            else:
                error = "Origin header is missing in CORS preflight"
                self._reply(
                    http_status(grpc.StatusCode.FAILED_PRECONDITION), json_api.error_body(error)
                )
            return
        with self.server.workers:
            try:
                status, answer = self.api.handle(self.command, path, body)
            except Exception as exc:  # never drop a connection without an answer
                log.exception("REST %s %s failed", self.command, path)
                status, answer = 500, json_api.error_body(f"{type(exc).__name__}: {exc}")
        self._reply(status, answer)

    do_GET = do_POST = do_OPTIONS = do_PUT = do_DELETE = do_PATCH = _dispatch


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        log.warning("%s=%r is not a number: using %s", name, os.environ.get(name), default)
        return default


class _RestServer(ThreadingHTTPServer):
    """One thread per connection (up to MAX_CONNECTIONS), --rest_api_num_threads requests
    running at a time, and a read deadline per request enforced by one reaper thread."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, threads: int) -> None:
        self.workers = threading.BoundedSemaphore(max(1, threads))
        self.max_connections = int(_env_number("TFS_STANDIN_REST_MAX_CONNECTIONS", 512))
        self.read_timeout_s = _env_number("TFS_STANDIN_REST_READ_TIMEOUT_S", 30.0)
        self.max_body_bytes = int(_env_number("TFS_STANDIN_MAX_REST_BODY_BYTES", 16 << 20))
        self._connections = threading.BoundedSemaphore(max(1, self.max_connections))
        self._deadlines: dict[Any, float] = {}
        self._watch_lock = threading.Lock()
        super().__init__(address, handler)
        threading.Thread(target=self._reap, name="rest-reaper", daemon=True).start()

    def watch(self, conn: Any) -> None:
        with self._watch_lock:
            self._deadlines[conn] = time.monotonic() + self.read_timeout_s

    def unwatch(self, conn: Any) -> None:
        with self._watch_lock:
            self._deadlines.pop(conn, None)

    def _reap(self) -> None:
        interval = min(1.0, max(0.05, self.read_timeout_s / 4))
        while True:
            time.sleep(interval)
            now = time.monotonic()
            with self._watch_lock:
                late = [c for c, deadline in self._deadlines.items() if deadline <= now]
                for conn in late:
                    del self._deadlines[conn]
            for conn in late:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._connections.acquire(blocking=False):
            log.warning("REST: %d connections open, refusing one more", self.max_connections)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()


def prometheus_path(core: ServerCore) -> str | None:
    from tfs_standin import protos

    if not core.options.monitoring_config_file:
        return None
    config = protos.parse_text_file(
        core.options.monitoring_config_file, protos.MonitoringConfig(), "monitoring_config_file"
    )
    if not config.prometheus_config.enable:
        return None
    return config.prometheus_config.path or DEFAULT_PROMETHEUS_PATH


def start(core: ServerCore, port: int, metrics_path: str | None) -> ThreadingHTTPServer:
    handler = type(
        "Handler",
        (_Handler,),
        {
            "api": RestApi(core),
            "prometheus_path": metrics_path,
            "cors": core.options.rest_api_enable_cors_support,
        },
    )
    server = _RestServer(("0.0.0.0", port), handler, core.options.rest_api_num_threads)
    threading.Thread(target=server.serve_forever, name="rest", daemon=True).start()
    return server
