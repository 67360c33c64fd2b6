"""TF Serving's protocol buffers, imported without running ``tensorflow/__init__.py``.

``tensorflow_serving.apis.*_pb2`` import ``tensorflow.core.framework.*_pb2`` (and a few other
generated modules under ``tensorflow.core`` / ``tensorflow.compiler``). Importing a submodule
normally executes the parent package first, and ``tensorflow/__init__.py`` loads the whole
runtime: about 3 s per process, on every host of a fleet the smoke test touches.

The generated ``*_pb2`` modules themselves only need ``google.protobuf``, and the package
``__init__.py`` files under ``tensorflow/core`` and ``tensorflow/compiler`` are empty. So, when
TensorFlow is not imported yet, :func:`_light_import` puts a bare placeholder module named
``tensorflow`` into ``sys.modules`` whose ``__path__`` is the installed package directory, imports
the generated modules through it, and removes the placeholder again. The generated modules stay
in ``sys.modules`` under their usual names, so a later ``import tensorflow`` in the same process
runs the real ``tensorflow/__init__.py`` and reuses them (the message classes are the same
objects, protos pass between TensorFlow and this package unchanged).

When TensorFlow is already imported, or is not installed where the placeholder could point, the
modules are imported the ordinary way.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
import types
from typing import Any

_LOCK = threading.Lock()

#: Set to True when the protos were loaded through the placeholder (for tests and --debug).
LOADED_WITHOUT_TENSORFLOW_INIT = False


def _light_import() -> bool:
    """Import the generated modules through a placeholder ``tensorflow`` package.

    Returns True when the placeholder was used, False when TensorFlow was imported normally.
    """
    if "tensorflow" in sys.modules:
        return False
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "tensorflow_serving's protos need the 'tensorflow' (or 'tensorflow-cpu') wheel "
            "installed: run 'make venv' (the controller venv pins tensorflow-cpu)"
        )
    placeholder = types.ModuleType("tensorflow")
    placeholder.__path__ = list(spec.submodule_search_locations)
    placeholder.__spec__ = importlib.machinery.ModuleSpec("tensorflow", None, is_package=True)
    placeholder.__spec__.submodule_search_locations = placeholder.__path__
    sys.modules["tensorflow"] = placeholder
    try:
        _import_all()
    finally:
        if sys.modules.get("tensorflow") is placeholder:
            del sys.modules["tensorflow"]
    return True


_MODULES = {
    "predict_pb2": "tensorflow_serving.apis.predict_pb2",
    "get_model_metadata_pb2": "tensorflow_serving.apis.get_model_metadata_pb2",
    "get_model_status_pb2": "tensorflow_serving.apis.get_model_status_pb2",
    "model_pb2": "tensorflow_serving.apis.model_pb2",
    "prediction_log_pb2": "tensorflow_serving.apis.prediction_log_pb2",
    "classification_pb2": "tensorflow_serving.apis.classification_pb2",
    "regression_pb2": "tensorflow_serving.apis.regression_pb2",
    "inference_pb2": "tensorflow_serving.apis.inference_pb2",
    "input_pb2": "tensorflow_serving.apis.input_pb2",
    "prediction_service_pb2_grpc": "tensorflow_serving.apis.prediction_service_pb2_grpc",
    "model_service_pb2_grpc": "tensorflow_serving.apis.model_service_pb2_grpc",
    "tensor_pb2": "tensorflow.core.framework.tensor_pb2",
    "tensor_shape_pb2": "tensorflow.core.framework.tensor_shape_pb2",
    "types_pb2": "tensorflow.core.framework.types_pb2",
    "example_pb2": "tensorflow.core.example.example_pb2",
    "feature_pb2": "tensorflow.core.example.feature_pb2",
    "meta_graph_pb2": "tensorflow.core.protobuf.meta_graph_pb2",
    "saved_model_pb2": "tensorflow.core.protobuf.saved_model_pb2",
}


def _import_all() -> dict[str, types.ModuleType]:
    return {alias: importlib.import_module(name) for alias, name in _MODULES.items()}


def _load() -> dict[str, types.ModuleType]:
    global LOADED_WITHOUT_TENSORFLOW_INIT
    with _LOCK:
        LOADED_WITHOUT_TENSORFLOW_INIT = _light_import()
        return _import_all()


_loaded = _load()

predict_pb2: Any = _loaded["predict_pb2"]
get_model_metadata_pb2: Any = _loaded["get_model_metadata_pb2"]
get_model_status_pb2: Any = _loaded["get_model_status_pb2"]
model_pb2: Any = _loaded["model_pb2"]
prediction_log_pb2: Any = _loaded["prediction_log_pb2"]
classification_pb2: Any = _loaded["classification_pb2"]
regression_pb2: Any = _loaded["regression_pb2"]
inference_pb2: Any = _loaded["inference_pb2"]
input_pb2: Any = _loaded["input_pb2"]
prediction_service_pb2_grpc: Any = _loaded["prediction_service_pb2_grpc"]
model_service_pb2_grpc: Any = _loaded["model_service_pb2_grpc"]
tensor_pb2: Any = _loaded["tensor_pb2"]
tensor_shape_pb2: Any = _loaded["tensor_shape_pb2"]
types_pb2: Any = _loaded["types_pb2"]
example_pb2: Any = _loaded["example_pb2"]
feature_pb2: Any = _loaded["feature_pb2"]
meta_graph_pb2: Any = _loaded["meta_graph_pb2"]
saved_model_pb2: Any = _loaded["saved_model_pb2"]
