"""The smoke test's import path stays free of TensorFlow's runtime (fresh interpreters)."""

from __future__ import annotations

import subprocess

import pytest
from toolkit_helpers import REPO, VENV_PYTHON


def run(code: str) -> str:
    proc = subprocess.run(
        [VENV_PYTHON, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(
            "import sys\n"
            "import tfs_fleet.smoke_cli, tfs_fleet.client\n"
            "from tfs_fleet import protos\n"
            "print(protos.LOADED_WITHOUT_TENSORFLOW_INIT, 'tensorflow' in sys.modules,\n"
            "      any(m.startswith('tensorflow.python') for m in sys.modules))\n",
            "True False False",
            id="smoke-cli-does-not-run-tensorflow-init",
        ),
        pytest.param(
            "import numpy as np\n"
            "from tfs_fleet.client import predict_pb2\n"
            "from tfs_fleet.tensors import to_tensor_proto\n"
            "import tensorflow as tf\n"
            "proto = tf.make_tensor_proto(np.ones((2, 2), np.float32))\n"
            "request = predict_pb2.PredictRequest()\n"
            "request.inputs['x'].CopyFrom(proto)\n"
            "print(type(proto) is type(to_tensor_proto(1.0)), float(tf.reduce_sum(\n"
            "      tf.make_ndarray(request.inputs['x']))), tf.constant([2.0]).numpy()[0])\n",
            "True 4.0 2.0",
            id="tensorflow-still-imports-afterwards-and-shares-the-classes",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            "import tensorflow\n"
            "from tfs_fleet import protos\n"
            "print(protos.LOADED_WITHOUT_TENSORFLOW_INIT)\n",
            "False",
            id="with-tensorflow-imported-first-the-normal-path-is-used",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_import_path_in_a_fresh_interpreter(code: str, expected: str) -> None:
    assert run(code) == expected
