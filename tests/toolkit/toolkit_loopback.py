"""What the toolkit's two in-process TF Serving doubles share: a gRPC server and a threaded HTTP
server on 127.0.0.1 with ephemeral ports, started and stopped together. Used by
toolkit_serving_server.Serving (real SavedModels, TensorFlow) and toolkit_fake_serving.FakeServing
(scripted answers, no TensorFlow): nothing here imports TensorFlow."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import grpc


class LoopbackServing:
    """A subclass names its gRPC services (``add_services``) and its REST handler
    (``rest_handler``); ``start()`` serves both on 127.0.0.1 (``grpc_port``, ``rest_port``),
    ``stop()`` ends both. Also a context manager."""

    grpc_workers = 4
    grpc_options: Sequence[tuple[str, Any]] = ()

    def __init__(self) -> None:
        self.grpc_port = self.rest_port = 0
        self._grpc: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None

    def add_services(self, server: grpc.Server) -> None:
        raise NotImplementedError

    def rest_handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> Self:
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.grpc_workers),
            options=list(self.grpc_options),
        )
        self.add_services(self._grpc)
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self.rest_handler())
        self._http.daemon_threads = True
        self.rest_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def rest_target(self) -> str:
        return f"127.0.0.1:{self.rest_port}"

    def hosts(self) -> list[str]:
        """The smoke test's --grpc and --rest arguments for this server."""
        return ["--grpc", self.grpc_target, "--rest", self.rest_target]
