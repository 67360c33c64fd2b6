"""Start-up and shutdown: load the initial models, then open the ports (as TF Serving does)."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import grpc
from tensorflow_serving.config import model_server_config_pb2

from tfs_standin import BANNER, grpc_api, protos, rest
from tfs_standin.core import ServerCore
from tfs_standin.errors import ServingError
from tfs_standin.flags import Options
from tfs_standin.manager import validate_config, validate_platforms

log = logging.getLogger("tfs_standin")


class StartupError(RuntimeError):
    """The server cannot start; the message says what to fix."""


def check_config_files(core: ServerCore) -> model_server_config_pb2.ModelServerConfig:
    """Read and validate every config file before any model loads or port opens."""
    options = core.options
    if options.enable_batching:
        if options.batching_parameters_file:
            params = protos.parse_text_file(
                options.batching_parameters_file,
                protos.BatchingParameters(),
                "batching_parameters_file",
            )
            problems = protos.validate_batching_parameters(params, options.batching_parameters_file)
            if problems:
                raise StartupError("; ".join(problems))
        log.warning(
            "--enable_batching: batching parameters are validated, but the stand-in runs each "
            "request on its own (no server-side batching)"
        )
    rest.prometheus_path(core)
    if options.ssl_config_file:
        grpc_api.credentials_from(options.ssl_config_file)
    config = core.initial_config()
    try:
        validate_config(config)
        if config.WhichOneof("config") == "model_config_list":
            validate_platforms(config)
    except ServingError as exc:
        source = (
            f"--model_config_file {options.model_config_file!r}: "
            if options.model_config_file
            else ""
        )
        raise StartupError(source + exc.message) from exc
    return config


class ConfigFilePoller:
    """Re-reads --model_config_file every N seconds and reloads it, changed or not, as
    Server::PollFilesystemAndReloadConfig does (so it also reverts a HandleReloadConfigRequest
    and retries a reload that failed, e.g. a label on a version still loading)."""

    def __init__(self, core: ServerCore) -> None:
        self.core = core

    def poll(self) -> None:
        try:
            config = self.core.read_config_file()
        except protos.ConfigFileError as exc:
            log.error("Failed to read ModelServerConfig file: %s", exc)
            return
        if config != self.core.manager.current_config:
            log.info("model_config_file changed: reloading %s", self.core.options.model_config_file)
        try:
            self.core.apply_config(config)
        except ServingError as exc:
            log.error("PollFilesystemAndReloadConfig failed to ReloadConfig: %s", exc.message)

    def run(self, interval_s: float, stop: threading.Event) -> None:
        while not stop.wait(interval_s):
            self.poll()


def run(options: Options, stop: threading.Event | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or stop is set); return the process exit code."""
    stop = stop or threading.Event()
    log.info("%s", BANNER)
    core = ServerCore(options)
    try:
        config = check_config_files(core)
    except (StartupError, protos.ConfigFileError) as exc:
        log.error("Failed to start server. Error: %s", exc)
        return 1
    flag = _SignalFlag()
    flag.install()
    watcher = threading.Thread(target=_stop_on_signal, args=(stop, flag, core), daemon=True)
    watcher.start()
    try:
        core.apply_config(config)
    except ServingError as exc:
        core.manager.close()
        if exc.code == grpc.StatusCode.CANCELLED:
            log.info("Shutting down before the initial models were available")
            return 0
        log.error("Failed to start server. Error: %s: %s", exc.code.name, exc.message)
        return 1
    try:
        grpc_server, addresses = grpc_api.build_server(core)
    except (OSError, ValueError, protos.ConfigFileError) as exc:
        log.error("Failed to start server. Error: %s", exc)
        core.manager.close()
        return 1
    for address in addresses:
        log.info("Running gRPC ModelServer at %s ...", address)
    try:
        http_server = _start_rest(core)
    except OSError as exc:
        log.error("Failed to start HTTP Server at localhost:%d: %s", options.rest_api_port, exc)
        grpc_server.stop(grace=0)
        core.manager.close()
        return 1
    threads = _start_pollers(core, config, stop)
    stop.wait()
    log.info("Shutting down")
    core.manager.stop()
    if http_server is not None:
        http_server.shutdown()
        http_server.server_close()
    grpc_server.stop(grace=2).wait()
    for thread in threads:
        thread.join(timeout=5)
    core.manager.close()
    return 0


def _start_rest(core: ServerCore) -> Any:
    options = core.options
    if not options.rest_api_port:
        return None
    if options.rest_api_port == options.port:
        log.error(
            "--rest_api_port cannot be same as --port. Please use a different port for HTTP/REST "
            "API. Skipped exporting HTTP/REST API."
        )
        return None
    server = rest.start(core, options.rest_api_port, rest.prometheus_path(core))
    log.info("Exporting HTTP/REST API at:localhost:%d ...", options.rest_api_port)
    return server


def _start_pollers(
    core: ServerCore, config: model_server_config_pb2.ModelServerConfig, stop: threading.Event
) -> list[threading.Thread]:
    threads = []
    interval = core.options.file_system_poll_wait_seconds
    if interval > 0:
        threads.append(
            threading.Thread(
                target=core.manager.run_polling, args=(interval,), name="fs-poll", daemon=True
            )
        )
    config_interval = core.options.model_config_file_poll_wait_seconds
    if core.options.model_config_file and config_interval > 0:
        poller = ConfigFilePoller(core)
        threads.append(
            threading.Thread(
                target=poller.run, args=(config_interval, stop), name="config-poll", daemon=True
            )
        )
    for thread in threads:
        thread.start()
    return threads


class _SignalFlag:
    """Set by SIGTERM/SIGINT. The handler takes no lock, so a second signal cannot deadlock."""

    def __init__(self) -> None:
        self.signum = 0

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signum = signum


def _wait(stop: threading.Event, flag: _SignalFlag) -> None:
    while not flag.signum and not stop.wait(0.2):
        pass
    if flag.signum:
        log.info("Received signal %d", flag.signum)
    stop.set()


def _stop_on_signal(stop: threading.Event, flag: _SignalFlag, core: ServerCore) -> None:
    """Turn a signal into stop (also while the initial models load)."""
    _wait(stop, flag)
    core.manager.stop()
