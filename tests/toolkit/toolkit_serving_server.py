"""An in-process TF Serving stand-in for the toolkit's integration tests.

It implements TF Serving's gRPC services (PredictionService.Predict / GetModelMetadata,
ModelService.GetModelStatus) from tensorflow-serving-api and a REST side (status, metadata,
predict) on 127.0.0.1 with ephemeral ports, and it runs REAL SavedModels with TensorFlow: every
numeric version directory under a model's base path is loaded with tag "serve", signature
metadata comes from saved_model.pb, Predict calls the loaded signature. Only the tensor
conversions here use TensorFlow's own helpers (tf.make_ndarray / tf.make_tensor_proto), so the
client's codec is checked against an independent implementation.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from toolkit_loopback import LoopbackServing

from tfs_fleet.export import read_signature_defs
from tfs_fleet.tensors import typed_field

_STATES = {"LOADING": 20, "AVAILABLE": 30, "END": 50}


class ServingFailure(Exception):
    def __init__(self, code: grpc.StatusCode, http: int, message: str) -> None:
        super().__init__(message)
        self.code, self.http = code, http


@dataclass
class Version:
    number: int
    path: Path
    loaded: Any
    signature_defs: dict[str, Any]
    state: str = "AVAILABLE"


@dataclass
class Model:
    name: str
    versions: dict[int, Version] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)


def load_model(name: str, base_path: Path) -> Model:
    """Load every numeric version under base_path, as TF Serving's file system source does."""
    model = Model(name)
    for path in sorted(base_path.iterdir()):
        if path.is_dir() and path.name.isdigit():
            number = int(path.name)
            loaded = tf.saved_model.load(str(path), tags=["serve"])
            model.versions[number] = Version(number, path, loaded, read_signature_defs(path))
    if not model.versions:
        raise ValueError(f"{base_path}: no numeric version directory")
    return model


def typed_tensor_proto(value: np.ndarray) -> Any:
    """What TF Serving sends by default: the typed repeated field, no tensor_content."""
    proto = tf.make_tensor_proto(value)
    field_name = typed_field(proto.dtype)
    if proto.tensor_content:
        array = tf.make_ndarray(proto)
        proto.ClearField("tensor_content")
        getattr(proto, field_name).extend(array.ravel().tolist())
    return proto


class Serving(LoopbackServing):
    """Models plus the two front ends. ``tensor_content=True`` mimics
    --enable_serialization_as_tensor_content."""

    grpc_workers = 8
    grpc_options = (("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1))

    def __init__(self, models: dict[str, Model], *, tensor_content: bool = False) -> None:
        self.models = models
        self.tensor_content = tensor_content
        self.lock = threading.Lock()
        super().__init__()

    # ---- model resolution ---------------------------------------------------------------
    def resolve(self, name: str, version: int | None, label: str | None) -> tuple[Model, Version]:
        model = self.models.get(name)
        if model is None:
            raise ServingFailure(
                grpc.StatusCode.NOT_FOUND, 404, f"Servable not found for request: Latest({name})"
            )
        if label:
            if label not in model.labels:
                raise ServingFailure(
                    grpc.StatusCode.NOT_FOUND, 404, f"Unrecognized servable version label: {label}"
                )
            version = model.labels[label]
        with self.lock:
            available = {n: v for n, v in model.versions.items() if v.state == "AVAILABLE"}
        if version is None:
            if not available:
                raise ServingFailure(
                    grpc.StatusCode.UNAVAILABLE, 503, f"No versions of servable {name} available"
                )
            return model, available[max(available)]
        if version not in available:
            raise ServingFailure(
                grpc.StatusCode.NOT_FOUND,
                404,
                f"Servable not found for request: Specific({name}, {version})",
            )
        return model, available[version]

    def predict(
        self,
        name: str,
        version: int | None,
        label: str | None,
        signature: str,
        inputs: dict[str, np.ndarray],
    ) -> tuple[Version, dict[str, np.ndarray]]:
        _, entry = self.resolve(name, version, label)
        signature = signature or "serving_default"
        if signature not in entry.loaded.signatures:
            raise ServingFailure(
                grpc.StatusCode.FAILED_PRECONDITION,
                400,
                f'Serving signature key "{signature}" not found.',
            )
        expected = set(entry.signature_defs[signature].inputs)
        if set(inputs) != expected:
            raise ServingFailure(
                grpc.StatusCode.INVALID_ARGUMENT,
                400,
                f"inputs {sorted(inputs)} do not match {sorted(expected)}",
            )
        try:
            result = entry.loaded.signatures[signature](
                **{k: tf.constant(v) for k, v in inputs.items()}
            )
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as exc:
            raise ServingFailure(grpc.StatusCode.INVALID_ARGUMENT, 400, str(exc)) from exc
        return entry, {k: v.numpy() for k, v in result.items()}

    def status(self, name: str, version: int | None, label: str | None) -> list[Version]:
        model = self.models.get(name)
        if model is None:
            raise ServingFailure(
                grpc.StatusCode.NOT_FOUND, 404, f"Could not find any versions of model {name}"
            )
        if label:
            version = model.labels.get(label, -1)
        if version is None:
            return [model.versions[n] for n in sorted(model.versions)]
        if version not in model.versions:
            raise ServingFailure(
                grpc.StatusCode.NOT_FOUND, 404, f"Could not find version {version} of model {name}"
            )
        return [model.versions[version]]

    def set_state(self, name: str, version: int, state: str) -> None:
        with self.lock:
            self.models[name].versions[version].state = state

    # ---- lifecycle (LoopbackServing) ----------------------------------------------------
    def add_services(self, server: grpc.Server) -> None:
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionServicer(self), server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelServicer(self), server)

    def rest_handler(self) -> type[BaseHTTPRequestHandler]:
        return _rest_handler(self)

    def out_proto(self, value: np.ndarray) -> Any:
        if self.tensor_content and value.dtype != object:
            return tf.make_tensor_proto(value)
        return typed_tensor_proto(value)


def _spec(model_spec: Any) -> tuple[str, int | None, str | None]:
    version = model_spec.version.value if model_spec.HasField("version") else None
    return model_spec.name, version, (model_spec.version_label or None)


class _PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, serving: Serving) -> None:
        self.serving = serving

    def Predict(self, request: Any, context: Any) -> Any:
        name, version, label = _spec(request.model_spec)
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        try:
            entry, outputs = self.serving.predict(
                name, version, label, request.model_spec.signature_name, inputs
            )
        except ServingFailure as exc:
            context.abort(exc.code, str(exc))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = name
        response.model_spec.version.value = entry.number
        response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        for key, value in outputs.items():
            if not request.output_filter or key in request.output_filter:
                response.outputs[key].CopyFrom(self.serving.out_proto(value))
        return response

    def GetModelMetadata(self, request: Any, context: Any) -> Any:
        if list(request.metadata_field) != ["signature_def"]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Metadata field signature_def only")
        name, version, label = _spec(request.model_spec)
        try:
            _, entry = self.serving.resolve(name, version, label)
        except ServingFailure as exc:
            context.abort(exc.code, str(exc))
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in entry.signature_defs.items():
            sig_map.signature_def[key].CopyFrom(sig)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = name
        response.model_spec.version.value = entry.number
        response.metadata["signature_def"].Pack(sig_map)
        return response


class _ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, serving: Serving) -> None:
        self.serving = serving

    def GetModelStatus(self, request: Any, context: Any) -> Any:
        name, version, label = _spec(request.model_spec)
        try:
            versions = self.serving.status(name, version, label)
        except ServingFailure as exc:
            context.abort(exc.code, str(exc))
        response = get_model_status_pb2.GetModelStatusResponse()
        for entry in versions:
            status = response.model_version_status.add()
            status.version = entry.number
            status.state = _STATES[entry.state]
        return response


_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<rest>/metadata|:predict)?$"
)


def _signature_def_json(entry: Version) -> dict[str, Any]:
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    for key, sig in entry.signature_defs.items():
        sig_map.signature_def[key].CopyFrom(sig)
    return json_format.MessageToDict(
        sig_map, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _json_out(value: np.ndarray) -> Any:
    if value.dtype == object:
        return [v.decode("utf-8", "replace") for v in value.ravel()]
    return value.tolist()


def _rest_handler(serving: Serving) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output quiet
            pass

        def _send(self, code: int, doc: Any) -> None:
            body = json.dumps(doc).encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _route(self) -> tuple[str, int | None, str | None, str]:
            match = _PATH.match(self.path)
            if not match:
                raise ServingFailure(
                    grpc.StatusCode.NOT_FOUND, 404, f"Malformed request: {self.path}"
                )
            version = int(match["version"]) if match["version"] else None
            return match["name"], version, match["label"], match["rest"] or ""

        def do_GET(self) -> None:
            try:
                name, version, label, rest = self._route()
                if rest == "/metadata":
                    _, entry = serving.resolve(name, version, label)
                    self._send(
                        200,
                        {
                            "model_spec": {
                                "name": name,
                                "signature_name": "",
                                "version": str(entry.number),
                            },
                            "metadata": {"signature_def": _signature_def_json(entry)},
                        },
                    )
                elif rest == "":
                    versions = serving.status(name, version, label)
                    self._send(
                        200,
                        {
                            "model_version_status": [
                                {
                                    "version": str(v.number),
                                    "state": v.state,
                                    "status": {"error_code": "OK", "error_message": ""},
                                }
                                for v in versions
                            ]
                        },
                    )
                else:
                    raise ServingFailure(grpc.StatusCode.NOT_FOUND, 404, "use POST for :predict")
            except ServingFailure as exc:
                self._send(exc.http, {"error": str(exc)})

        def do_POST(self) -> None:
            try:
                name, version, label, rest = self._route()
                if rest != ":predict":
                    raise ServingFailure(grpc.StatusCode.NOT_FOUND, 404, "POST only to :predict")
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                self._send(200, self._predict(name, version, label, body))
            except ServingFailure as exc:
                self._send(exc.http, {"error": str(exc)})
            except (ValueError, KeyError) as exc:
                self._send(400, {"error": f"bad request: {exc}"})

        def _predict(
            self, name: str, version: int | None, label: str | None, body: dict[str, Any]
        ) -> dict[str, Any]:
            signature = body.get("signature_name", "serving_default")
            _, entry = serving.resolve(name, version, label)
            keys = (
                sorted(entry.signature_defs[signature].inputs)
                if (signature in entry.signature_defs)
                else []
            )
            if "instances" in body:
                rows = body["instances"]
                if rows and isinstance(rows[0], dict):
                    inputs = {k: np.array([r[k] for r in rows]) for k in rows[0]}
                else:
                    inputs = {keys[0] if keys else "x": np.array(rows)}
            else:
                cols = body["inputs"]
                inputs = (
                    {k: np.array(v) for k, v in cols.items()}
                    if isinstance(cols, dict)
                    else {keys[0] if keys else "x": np.array(cols)}
                )
            inputs = {
                k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in inputs.items()
            }
            _, outputs = serving.predict(name, version, label, signature, inputs)
            if "instances" in body:
                if len(outputs) == 1:
                    return {"predictions": _json_out(next(iter(outputs.values())))}
                batch = len(next(iter(outputs.values())))
                return {
                    "predictions": [
                        {
                            k: _json_out(v[i : i + 1])[0] if v.ndim == 1 else v[i].tolist()
                            for k, v in outputs.items()
                        }
                        for i in range(batch)
                    ]
                }
            if len(outputs) == 1:
                return {"outputs": _json_out(next(iter(outputs.values())))}
            return {"outputs": {k: _json_out(v) for k, v in outputs.items()}}

    return Handler


def _main() -> None:
    """Serve models by hand: python tests/toolkit/toolkit_serving_server.py NAME=BASE_PATH ..."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="NAME=BASE_PATH")
    parser.add_argument("--seconds", type=float, default=600.0, help="serve this long (600)")
    args = parser.parse_args()
    models = {}
    for spec in args.models:
        name, _, base = spec.partition("=")
        models[name] = load_model(name, Path(base))
    server = Serving(models).start()
    print(f"grpc {server.grpc_target} rest {server.rest_target}", flush=True)
    try:
        time.sleep(args.seconds)
    finally:
        server.stop()


if __name__ == "__main__":
    _main()
