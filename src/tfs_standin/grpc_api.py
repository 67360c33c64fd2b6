"""gRPC front end: PredictionService and ModelService from tensorflow-serving-api."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from tensorflow_serving.apis import (
    model_management_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from tfs_standin import protos
from tfs_standin.core import ServerCore
from tfs_standin.errors import ServingError, invalid_argument

log = logging.getLogger("tfs_standin")


def _timeout_ms(context: grpc.ServicerContext) -> int:
    remaining = context.time_remaining()
    return 0 if remaining is None or remaining > 1e9 else max(1, int(remaining * 1000))


def _abort(context: grpc.ServicerContext, exc: ServingError) -> Any:
    context.abort(exc.code, exc.message)


def _answer(context: grpc.ServicerContext, call: Callable[[], Any]) -> Any:
    """What ``call`` returns, or the call aborted with the ServingError it raised."""
    try:
        return call()
    except ServingError as exc:
        return _abort(context, exc)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core: ServerCore) -> None:
        self.core = core

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _answer(context, lambda: self.core.predict(request, _timeout_ms(context)))

    def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _answer(context, lambda: self.core.classify(request, _timeout_ms(context)))

    def Regress(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _answer(context, lambda: self.core.regress(request, _timeout_ms(context)))

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _answer(context, lambda: self.core.metadata(request))

    def MultiInference(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _answer(context, lambda: self.core.multi_inference(request, _timeout_ms(context)))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core: ServerCore) -> None:
        self.core = core

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _answer(context, lambda: self.core.status(request))

    def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext) -> Any:
        response = model_management_pb2.ReloadConfigResponse()
        try:
            if request.config.WhichOneof("config") != "model_config_list":
                raise invalid_argument(
                    "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                    "ModelConfigList is currently supported"
                )
            for index, model in enumerate(request.config.model_config_list.config):
                log.info(
                    "Config entry index : %d path : %s name : %s platform : %s",
                    index,
                    model.base_path,
                    model.name,
                    model.model_platform,
                )
            self.core.apply_config(request.config)
        except ServingError as exc:
            log.error("ReloadConfig failed: %s", exc.message)
            return _abort(context, exc)
        response.status.error_code = 0
        return response


def build_server(core: ServerCore) -> tuple[grpc.Server, list[str]]:
    """A started gRPC server on --port and/or --grpc_socket_path; returns it and its addresses."""
    options = core.options
    channel_args: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", 2**31 - 1),
        ("grpc.max_send_message_length", 2**31 - 1),
    ]
    for item in filter(None, options.grpc_channel_arguments.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(
                f"--grpc_channel_arguments: {item!r} is not key=value "
                "(example: grpc.max_connection_age_ms=2000)"
            )
        channel_args.append(
            (key.strip(), int(value) if value.strip().lstrip("-").isdigit() else value)
        )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max(1, options.grpc_max_threads)),
        options=channel_args,
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(core), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core), server)
    credentials = credentials_from(options.ssl_config_file)
    addresses = []
    if options.port:
        addresses.append(f"0.0.0.0:{options.port}")
    if options.grpc_socket_path:
        addresses.append(f"unix:{options.grpc_socket_path}")
    for address in addresses:
        bound = (
            server.add_secure_port(address, credentials)
            if credentials is not None
            else server.add_insecure_port(address)
        )
        if not bound:
            raise OSError(f"gRPC cannot listen on {address}: is the port in use?")
    server.start()
    return server, addresses


def credentials_from(path: str) -> grpc.ServerCredentials | None:
    if not path:
        return None
    config = protos.parse_text_file(path, protos.SSLConfig(), "ssl_config_file")
    if not config.server_key or not config.server_cert:
        raise protos.ConfigFileError(
            f"--ssl_config_file {path!r}: server_key and server_cert (PEM text) are both required"
        )
    return grpc.ssl_server_credentials(
        [(config.server_key.encode(), config.server_cert.encode())],
        root_certificates=config.custom_ca.encode() if config.custom_ca else None,
        require_client_auth=config.client_verify,
    )
