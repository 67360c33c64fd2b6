"""A scripted TF Serving double for the smoke test's fast tests: no TensorFlow, no model.

It serves one model and version over gRPC (GetModelStatus, Predict, Classify, Regress,
MultiInference) and REST (metadata), with the signatures of a SavedModel proto the test builds
(also written to disk as saved_model.pb or .pbtxt for the smoke test to read). Answers follow
the signature (ones of the declared dtype, -1 dimensions as the request's batch) unless a test
scripts them: ``answer`` is called with (call name, request, call number) and may return the
response, or None for the default one. Every request is recorded.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format, text_format
from toolkit_loopback import LoopbackServing

from tfs_fleet.protos import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    meta_graph_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
    saved_model_pb2,
    types_pb2,
)
from tfs_fleet.tensors import numpy_dtype_for, to_tensor_proto

Answer = Callable[[str, Any, int], Any]


def tensor_info(dtype: str, shape: list[int] | None, name: str = "t:0") -> Any:
    info = meta_graph_pb2.TensorInfo(name=name, dtype=types_pb2.DataType.Value(dtype))
    if shape is None:
        info.tensor_shape.unknown_rank = True
    else:
        for size in shape:
            info.tensor_shape.dim.add(size=size)
    return info


def signature_def(
    method: str,
    inputs: dict[str, tuple[str, list[int] | None]],
    outputs: dict[str, tuple[str, list[int] | None]],
) -> Any:
    sig = meta_graph_pb2.SignatureDef(method_name=f"tensorflow/serving/{method}")
    for key, (dtype, shape) in inputs.items():
        sig.inputs[key].CopyFrom(tensor_info(dtype, shape, f"{key}:0"))
    for key, (dtype, shape) in outputs.items():
        sig.outputs[key].CopyFrom(tensor_info(dtype, shape, f"{key}_out:0"))
    return sig


# TF Serving's mnist tutorial model: a classify signature on serialized tf.Example (the
# default) and a numeric predict signature.
MNIST = {
    "serving_default": signature_def(
        "classify",
        {"inputs": ("DT_STRING", [-1])},
        {"classes": ("DT_STRING", [-1, 10]), "scores": ("DT_FLOAT", [-1, 10])},
    ),
    "predict_images": signature_def(
        "predict", {"images": ("DT_FLOAT", [-1, 784])}, {"scores": ("DT_FLOAT", [-1, 10])}
    ),
}
HALF_PLUS_TWO = {
    "serving_default": signature_def(
        "predict", {"x": ("DT_FLOAT", [-1, 1])}, {"y": ("DT_FLOAT", [-1, 1])}
    ),
}


def write_saved_model(
    directory: Path,
    signatures: dict[str, Any],
    *,
    text: bool = False,
    tags: tuple[str, ...] = ("serve",),
    extra_meta_graphs: tuple[tuple[str, ...], ...] = (),
) -> Path:
    """A SavedModel holding only the MetaGraphs' tags and signatures (what the smoke test
    reads); saved_model.pbtxt when ``text``."""
    proto = saved_model_pb2.SavedModel(saved_model_schema_version=1)
    for tag_set in (*extra_meta_graphs, tags):
        meta_graph = proto.meta_graphs.add()
        meta_graph.meta_info_def.tags.extend(tag_set)
        if tag_set == tags:
            for name, sig in signatures.items():
                meta_graph.signature_def[name].CopyFrom(sig)
    directory.mkdir(parents=True, exist_ok=True)
    if text:
        (directory / "saved_model.pbtxt").write_text(text_format.MessageToString(proto))
    else:
        (directory / "saved_model.pb").write_bytes(proto.SerializeToString())
    return directory


def ones_like_declared(info: Any, batch: int) -> Any:
    dtype = types_pb2.DataType.Name(info.dtype)
    shape = (
        [1]
        if info.tensor_shape.unknown_rank
        else [d.size if d.size >= 0 else batch for d in info.tensor_shape.dim]
    )
    if dtype == "DT_STRING":
        return to_tensor_proto(np.full(shape, b"1", dtype=object))
    return to_tensor_proto(np.ones(shape, dtype=numpy_dtype_for(dtype)), use_tensor_content=False)


def _batch(request: Any) -> int:
    for proto in request.inputs.values():
        if proto.tensor_shape.dim:
            return int(proto.tensor_shape.dim[0].size)
    return 1


class FakeServing(LoopbackServing):
    def __init__(
        self,
        signatures: dict[str, Any],
        *,
        model: str = "m",
        version: int = 1,
        answer: Answer | None = None,
        served_signatures: dict[str, Any] | None = None,
    ) -> None:
        self.signatures = signatures
        self.served = served_signatures if served_signatures is not None else signatures
        self.model, self.version = model, version
        self.answer = answer
        self.calls: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        super().__init__()

    # ---- answers ------------------------------------------------------------------------
    def respond(self, call: str, request: Any, context: Any) -> Any:
        with self.lock:
            self.calls.append((call, request))
            number = sum(1 for c, _ in self.calls if c == call)
        spec = request.model_spec if call != "MultiInference" else request.tasks[0].model_spec
        if spec.name != self.model or spec.version.value not in (0, self.version):
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found: {spec.name}")
        if self.answer is not None:
            scripted = self.answer(call, request, number)
            if isinstance(scripted, grpc.StatusCode):
                context.abort(scripted, "scripted failure")
            if scripted is not None:
                return scripted
        return self.default(call, request, context)

    def default(self, call: str, request: Any, context: Any) -> Any:
        if call == "Predict":
            name = request.model_spec.signature_name or "serving_default"
            sig = self.served.get(name)
            if sig is None:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"no signature {name}")
            response = predict_pb2.PredictResponse()
            for key, info in sig.outputs.items():
                response.outputs[key].CopyFrom(ones_like_declared(info, _batch(request)))
            return response
        if call == "Classify":
            response = classification_pb2.ClassificationResponse()
            for _ in request.input.example_list.examples:
                row = response.result.classifications.add()
                row.classes.add(label="0", score=0.25)
                row.classes.add(label="1", score=0.75)
            return response
        if call == "Regress":
            response = regression_pb2.RegressionResponse()
            for _ in request.input.example_list.examples:
                response.result.regressions.add(value=1.5)
            return response
        response = inference_pb2.MultiInferenceResponse()
        for task in request.tasks:
            result = response.results.add()
            result.model_spec.CopyFrom(task.model_spec)
            if task.method_name.endswith("classify"):
                result.classification_result.classifications.add().classes.add(label="0", score=0.5)
            else:
                result.regression_result.regressions.add(value=0.5)
        return response

    def metadata_doc(self) -> dict[str, Any]:
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in self.served.items():
            sig_map.signature_def[key].CopyFrom(sig)
        return {
            "model_spec": {"name": self.model, "signature_name": "", "version": str(self.version)},
            "metadata": {
                "signature_def": json_format.MessageToDict(
                    sig_map,
                    preserving_proto_field_name=True,
                    always_print_fields_with_no_presence=True,
                )
            },
        }

    def calls_of(self, call: str) -> list[Any]:
        with self.lock:
            return [r for c, r in self.calls if c == call]

    # ---- lifecycle (LoopbackServing) ----------------------------------------------------
    def add_services(self, server: grpc.Server) -> None:
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _Prediction(self), server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_Models(self), server)

    def rest_handler(self) -> type[BaseHTTPRequestHandler]:
        return _rest(self)


class _Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, fake: FakeServing) -> None:
        self.fake = fake

    def Predict(self, request: Any, context: Any) -> Any:
        return self.fake.respond("Predict", request, context)

    def Classify(self, request: Any, context: Any) -> Any:
        return self.fake.respond("Classify", request, context)

    def Regress(self, request: Any, context: Any) -> Any:
        return self.fake.respond("Regress", request, context)

    def MultiInference(self, request: Any, context: Any) -> Any:
        return self.fake.respond("MultiInference", request, context)


class _Models(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, fake: FakeServing) -> None:
        self.fake = fake

    def GetModelStatus(self, request: Any, context: Any) -> Any:
        if request.model_spec.name != self.fake.model:
            context.abort(grpc.StatusCode.NOT_FOUND, "Could not find any versions of model")
        response = get_model_status_pb2.GetModelStatusResponse()
        status = response.model_version_status.add()
        status.version = self.fake.version
        status.state = 30  # AVAILABLE
        return response


_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?/metadata$")


def _rest(fake: FakeServing) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            match = _PATH.match(self.path)
            if match and match["name"] == fake.model:
                code, doc = 200, fake.metadata_doc()
            else:
                code, doc = 404, {"error": f"not found: {self.path}"}
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
