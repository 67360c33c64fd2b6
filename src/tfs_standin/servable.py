"""One loaded SavedModel version: a TF1-style graph and session, as TF Serving's SavedModelBundle.

Loading uses TensorFlow's session-based loader (tf.compat.v1.saved_model.loader.load), which
reads TF1-era graphs and TF2 exports alike. Feeds go straight to the C session (as TF Serving's
C++ Session::Run does), without the Python client's shape check, so a [3] batch fed to a
[-1, 1] placeholder behaves exactly as it does in TF Serving.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
from tensorflow.python.client import pywrap_tf_session
from tensorflow.python.util import deprecation

from tfs_standin.errors import ServingError, code_from_number
from tfs_standin.tensors import as_array


@dataclass
class SessionSettings:
    """What every version's session gets: tags, ConfigProto and the request timeout."""

    tags: list[str] = field(default_factory=lambda: ["serve"])
    config: config_pb2.ConfigProto = field(default_factory=config_pb2.ConfigProto)


def error_from_exception(exc: BaseException, context: str = "") -> ServingError:
    """Map a TensorFlow or Python exception to a ServingError with a canonical code."""
    prefix = f"{context}: " if context else ""
    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, tf.errors.OpError):
        message = exc.message.replace("Graph execution error:\n\n", "").strip()
        return ServingError(code_from_number(exc.error_code), prefix + message)
    if isinstance(exc, OSError):
        return ServingError(grpc.StatusCode.NOT_FOUND, prefix + str(exc))
    if isinstance(exc, (ValueError, TypeError)):
        return ServingError(grpc.StatusCode.INVALID_ARGUMENT, prefix + str(exc))
    if isinstance(exc, RuntimeError):
        return ServingError(grpc.StatusCode.NOT_FOUND, prefix + str(exc))
    return ServingError(grpc.StatusCode.UNKNOWN, f"{prefix}{type(exc).__name__}: {exc}")


class Servable:
    """A SavedModel version loaded into its own graph and session."""

    def __init__(self, name: str, version: int, path: str, settings: SessionSettings) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph, config=settings.config)
        self._outputs: dict[str, Any] = {}
        self._lock = threading.Lock()
        # Requests in flight (TF Serving unloads a version only once every handle to it is
        # released: a request that found this version finishes on it).
        self._idle = threading.Condition()
        self._busy = 0
        self._last_start = 0.0
        try:
            with self.graph.as_default(), deprecation.silence():
                self.meta_graph: meta_graph_pb2.MetaGraphDef = tf.compat.v1.saved_model.loader.load(
                    self.session, settings.tags, path
                )
            self.session._extend_graph()
        except BaseException:
            self.session.close()
            raise

    @property
    def signatures(self) -> Any:
        return self.meta_graph.signature_def

    def _tf_output(self, name: str) -> Any:
        with self._lock:
            out = self._outputs.get(name)
            if out is None:
                tensor = self.graph.get_tensor_by_name(name)
                out = self._outputs[name] = tensor._as_tf_output()
            return out

    def run(
        self, feeds: dict[str, np.ndarray], fetches: list[str], timeout_ms: int = 0
    ) -> list[np.ndarray]:
        """Run the session: feeds and fetches are tensor names (e.g. "x:0")."""
        with self._idle:
            self._busy += 1
            self._last_start = time.monotonic()
        try:
            return self._run(feeds, fetches, timeout_ms)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _run(
        self, feeds: dict[str, np.ndarray], fetches: list[str], timeout_ms: int
    ) -> list[np.ndarray]:
        try:
            feed_map = {self._tf_output(name): value for name, value in feeds.items()}
            fetch_list = [self._tf_output(name) for name in fetches]
        except (KeyError, ValueError) as exc:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc
        options = None
        if timeout_ms > 0:
            run_options = config_pb2.RunOptions(timeout_in_ms=timeout_ms)
            options = pywrap_tf_session.TF_NewBufferFromString(run_options.SerializeToString())
        try:
            values = self.session._call_tf_sessionrun(options, feed_map, fetch_list, [], None)
            return [as_array(v) for v in values]
        except tf.errors.OpError as exc:
            raise error_from_exception(exc) from exc
        finally:
            if options is not None:
                pywrap_tf_session.TF_DeleteBuffer(options)

    def close(self, grace_s: float = 0.2, limit_s: float = 30.0) -> None:
        """Close once no request has been running for ``grace_s`` (a request that resolved this
        version just before it was unpublished still starts on it), at most ``limit_s``."""
        deadline = time.monotonic() + limit_s
        with self._idle:
            while time.monotonic() < deadline:
                quiet = time.monotonic() - self._last_start
                if self._busy == 0 and quiet >= grace_s:
                    break
                self._idle.wait(timeout=max(0.01, grace_s - quiet) if self._busy == 0 else 0.1)
        self.session.close()
