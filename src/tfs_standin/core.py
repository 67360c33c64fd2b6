"""The server core shared by the gRPC and REST front ends: config, model manager, requests."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import grpc
from tensorflow.core.protobuf import config_pb2
from tensorflow_serving.apis import get_model_status_pb2, model_pb2
from tensorflow_serving.config import model_server_config_pb2

from tfs_standin import inference, metrics, protos, warmup
from tfs_standin.errors import ServingError
from tfs_standin.flags import Options
from tfs_standin.manager import ModelManager, VersionState
from tfs_standin.servable import Servable, SessionSettings, error_from_exception

log = logging.getLogger("tfs_standin")
T = TypeVar("T")


def single_model_config(name: str, base_path: str) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name, model.base_path, model.model_platform = name, base_path, "tensorflow"
    return config


def session_settings(options: Options) -> SessionSettings:
    config = config_pb2.ConfigProto()
    if options.tensorflow_session_config_file:
        protos.parse_text_file(
            options.tensorflow_session_config_file, config, "tensorflow_session_config_file"
        )
    intra, inter = options.tensorflow_intra_op_parallelism, options.tensorflow_inter_op_parallelism
    if intra > 0 or inter > 0:
        config.intra_op_parallelism_threads, config.inter_op_parallelism_threads = intra, inter
    elif options.tensorflow_session_parallelism > 0:
        n = options.tensorflow_session_parallelism
        config.intra_op_parallelism_threads = config.inter_op_parallelism_threads = n
    tags = [t for t in options.saved_model_tags.split(",") if t]
    return SessionSettings(tags=tags, config=config)


class ServerCore:
    """Owns the models; answers Predict/Classify/Regress/Metadata/Status/Reload requests."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.metrics = metrics.Metrics()
        self.session = session_settings(options)
        self.run_settings = inference.RunSettings(
            timeout_ms=0,
            tensor_content=options.enable_serialization_as_tensor_content,
            method_name_check=options.enable_signature_method_name_check,
        )
        self.manager = ModelManager(
            loader=self._load,
            max_retries=options.max_num_load_retries,
            retry_interval_s=max(0, options.load_retry_interval_micros) / 1e6,
            allow_unavailable_labels=options.allow_version_labels_for_unavailable_models,
            on_event=self._on_event,
        )

    # ---- loading ---------------------------------------------------------------------------
    def _load(self, name: str, version: int, path: str) -> Servable:
        try:
            servable = Servable(name, version, path, self.session)
        except BaseException as exc:
            self.metrics.count(metrics.LOAD_ATTEMPT, {"model_path": path, "status": "fail"})
            raise error_from_exception(exc, f"Failed to load SavedModel at {path}") from exc
        self.metrics.count(metrics.LOAD_ATTEMPT, {"model_path": path, "status": "success"})
        if self.options.enable_model_warmup:
            self._warmup(servable)
        return servable

    def _warmup(self, servable: Servable) -> None:
        def replay(kind: str, request: Any) -> None:
            request.model_spec.name = servable.name
            runner = {
                "predict_log": inference.predict,
                "classify_log": inference.classify,
                "regress_log": inference.regress,
            }[kind]
            runner(servable, request, self.run_settings)

        started = time.monotonic()
        try:
            count = warmup.run_warmup(
                servable.path, self.options.num_request_iterations_for_warmup, replay
            )
        except BaseException:
            servable.close()
            raise
        if count:
            micros = (time.monotonic() - started) * 1e6
            records = count // max(1, self.options.num_request_iterations_for_warmup)
            self.metrics.record_warmup(servable.path, "OK", micros, records)
            log.info(
                "Finished reading warmup data for model at %s: %d requests", servable.path, count
            )

    def _on_event(self, name: str, version: int, state: str, error: ServingError | None) -> None:
        self.metrics.gauge(
            metrics.AVAILABLE_VERSIONS,
            {"model_name": name},
            self.manager.available_counts().get(name, 0),
        )

    # ---- config ----------------------------------------------------------------------------
    def initial_config(self) -> model_server_config_pb2.ModelServerConfig:
        if self.options.model_config_file:
            return self.read_config_file()
        return single_model_config(self.options.model_name, self.options.model_base_path)

    def read_config_file(self) -> model_server_config_pb2.ModelServerConfig:
        return protos.parse_text_file(
            self.options.model_config_file,
            model_server_config_pb2.ModelServerConfig(),
            "model_config_file",
        )

    def apply_config(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        self.manager.apply_config(config, float(self.options.file_system_poll_wait_seconds))

    # ---- requests --------------------------------------------------------------------------
    def call(self, api: str, entrypoint: str, spec: model_pb2.ModelSpec, fn: Callable[[], T]) -> T:
        """Run one request, recording TF Serving's request count and latency metrics."""
        started = time.monotonic()
        status = "OK"
        try:
            return fn()
        except ServingError as exc:
            status = exc.code.name
            raise
        except Exception as exc:
            status = grpc.StatusCode.UNKNOWN.name
            raise error_from_exception(exc) from exc
        finally:
            micros = (time.monotonic() - started) * 1e6
            self.metrics.record_request(spec.name, api, entrypoint, status, micros)

    def settings(self, timeout_ms: int) -> inference.RunSettings:
        return inference.RunSettings(
            timeout_ms=max(0, timeout_ms),
            tensor_content=self.run_settings.tensor_content,
            method_name_check=self.run_settings.method_name_check,
        )

    def servable(self, spec: model_pb2.ModelSpec) -> Servable:
        """The loaded SavedModel a request names (the manager holds what its loader built)."""
        return cast(Servable, self.manager.resolve(spec))

    def _one_model(
        self,
        method: str,
        run: Callable[[Servable, Any, inference.RunSettings], Any],
        request: Any,
        timeout_ms: int,
        entrypoint: str,
    ) -> Any:
        """Predict, Classify or Regress: the request's own model_spec names the model."""
        require_model_spec(request)
        spec = request.model_spec
        return self.call(
            method,
            entrypoint,
            spec,
            lambda: run(self.servable(spec), request, self.settings(timeout_ms)),
        )

    def predict(self, request: Any, timeout_ms: int = 0, entrypoint: str = "GRPC") -> Any:
        return self._one_model("predict", inference.predict, request, timeout_ms, entrypoint)

    def classify(self, request: Any, timeout_ms: int = 0, entrypoint: str = "GRPC") -> Any:
        return self._one_model("classify", inference.classify, request, timeout_ms, entrypoint)

    def regress(self, request: Any, timeout_ms: int = 0, entrypoint: str = "GRPC") -> Any:
        return self._one_model("regress", inference.regress, request, timeout_ms, entrypoint)

    def multi_inference(self, request: Any, timeout_ms: int = 0, entrypoint: str = "GRPC") -> Any:
        """multi_inference_helper.cc: the model of the first task (an empty spec without one)."""
        spec = request.tasks[0].model_spec if len(request.tasks) else model_pb2.ModelSpec()
        return self.call(
            "MultiInference",
            entrypoint,
            spec,
            lambda: inference.multi_inference(
                self.servable(spec), request, self.settings(timeout_ms)
            ),
        )

    def metadata(self, request: Any, entrypoint: str = "GRPC") -> Any:
        require_model_spec(request)
        spec = request.model_spec
        return self.call(
            "GetModelMetadata",
            entrypoint,
            spec,
            lambda: inference.metadata(self.servable(spec), request),
        )

    def status(self, request: Any) -> get_model_status_pb2.GetModelStatusResponse:
        if not request.HasField("model_spec"):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        response = get_model_status_pb2.GetModelStatusResponse()
        for vs in self.manager.status(request.model_spec):
            add_version_status(response, vs)
        return response

    def input_infos(self, spec: model_pb2.ModelSpec, signature: str) -> dict[str, Any]:
        """Signature inputs for REST predict (HttpRestApiHandler::GetInfoMap)."""
        servable = self.servable(spec)
        name = signature or inference.DEFAULT_SIGNATURE
        found = servable.signatures.get(name)
        if found is None:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f'Serving signature name: "{name}" not found in signature def',
            )
        return dict(found.inputs)


def require_model_spec(request: Any) -> None:
    """predict_impl.cc, classification_service.cc, regression_service.cc,
    get_model_metadata_impl.cc: a request without model_spec."""
    if not request.HasField("model_spec"):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")


def add_version_status(response: Any, vs: VersionState) -> None:
    entry = response.model_version_status.add()
    entry.version = vs.version
    entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(vs.state)
    entry.status.SetInParent()  # TF Serving always fills status, OK included
    if vs.error is not None:
        entry.status.error_code = vs.error.code_number
        entry.status.error_message = vs.error.message
