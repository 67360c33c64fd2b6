"""The image: `docker run ... -v <base>:/models/half_plus_two -e MODEL_NAME=half_plus_two
tfs-fleet/serving-standin:latest` serves the reference model with TF Serving's answers.
Builds the image first through scripts/build_standin_image.sh (cached: a no-op when current)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import tensorflow as tf
from standin_helpers import REPO, half_plus_two_base, http, reference_models
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tfs_standin import VERSION

from helpers import wait_for

IMAGE = os.environ.get("TFS_FLEET_STANDIN_IMAGE", "tfs-fleet/serving-standin")
pytestmark = pytest.mark.docker


def docker(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    if shutil.which("docker") is None:
        raise AssertionError("docker is missing: run 'make docker-engine' first")
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=check
    )


@pytest.fixture(scope="module")
def image() -> str:
    env = dict(os.environ)
    env.setdefault("PIP", f"{sys.executable} -m pip")
    result = subprocess.run(
        [str(REPO / "scripts" / "build_standin_image.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )
    assert result.returncode == 0, f"image build failed:\n{result.stderr[-3000:]}"
    return f"{IMAGE}:latest"


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[dict[str, str]]:
    name = f"tfsf-standin-test-{uuid.uuid4().hex[:8]}"
    docker(
        "run", "-d", "--name", name,
        "-p", "127.0.0.1::8501", "-p", "127.0.0.1::8500",
        "-v", f"{half_plus_two_base()}:/models/half_plus_two:ro",
        "-e", "MODEL_NAME=half_plus_two",
        image,
        "--file_system_poll_wait_seconds=2", "--per_process_gpu_memory_fraction=0.5",
    )  # fmt: skip
    try:
        rest = docker("port", name, "8501").stdout.split()[0].rsplit(":", 1)[1]
        grpc_port = docker("port", name, "8500").stdout.split()[0].rsplit(":", 1)[1]
        url = f"http://127.0.0.1:{rest}"

        def ready() -> bool:
            running = docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
            if running != "true":
                logs = docker("logs", name, check=False)
                raise AssertionError(f"container exited:\n{logs.stdout}{logs.stderr}")
            try:
                return http("GET", f"{url}/v1/models/half_plus_two", timeout=2)[0] == 200
            except OSError:
                return False

        wait_for(ready, 120, "the container to serve half_plus_two", interval=0.5)
        yield {"name": name, "url": url, "grpc": f"127.0.0.1:{grpc_port}"}
    finally:
        docker("rm", "-f", name, check=False)


def test_image_tags_and_single_layer(image: str) -> None:
    inspect = json.loads(docker("image", "inspect", image).stdout)[0]
    assert f"{IMAGE}:{VERSION}" in inspect["RepoTags"]
    assert len(inspect["RootFS"]["Layers"]) == 1
    assert inspect["Config"]["Entrypoint"] == ["/usr/bin/tf_serving_entrypoint.sh"]
    assert {"8500/tcp", "8501/tcp"} <= set(inspect["Config"]["ExposedPorts"])
    env = dict(e.split("=", 1) for e in inspect["Config"]["Env"])
    assert (env["MODEL_NAME"], env["MODEL_BASE_PATH"]) == ("model", "/models")


def test_container_rest_answers(container: dict[str, str]) -> None:
    url = container["url"] + "/v1/models/half_plus_two"
    assert http("POST", f"{url}:predict", {"instances": [1.0, 2.0, 5.0]}) == (
        200,
        {"predictions": [2.5, 3.0, 4.5]},
    )
    assert http("POST", f"{url}:predict", {"inputs": {"x": [[1.0]]}}) == (200, {"outputs": [[2.5]]})
    assert http(
        "POST", f"{url}:classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
    ) == (200, {"results": [[["", 3.0]]]})
    assert http(
        "POST", f"{url}:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}
    ) == (200, {"results": [3.0]})
    status, body = http("GET", url)
    assert status == 200
    assert body == {
        "model_version_status": [
            {
                "version": "123",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    reference = json.loads((reference_models() / "half_plus_two_model_metadata.json").read_text())
    status, body = http("GET", f"{url}/metadata")
    assert status == 200 and body["metadata"] == reference["metadata"]  # type: ignore[index]
    status, body = http("GET", container["url"] + "/v1/models/nope")
    assert status == 404 and "error" in body


def test_container_grpc_predict(container: dict[str, str]) -> None:
    with grpc.insecure_channel(container["grpc"]) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "half_plus_two"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[1.0], [5.0]], np.float32)))
        response = stub.Predict(request, timeout=20)
    assert list(response.outputs["y"].float_val) == [2.5, 4.5]


def test_container_contract_in_logs(container: dict[str, str]) -> None:
    logs = docker("logs", container["name"])
    text = logs.stdout + logs.stderr
    assert "NOT TensorFlow Serving" in text
    assert (
        "Loading servable: {name: half_plus_two version: 123} from /models/half_plus_two/" in text
    )
    assert "flag --per_process_gpu_memory_fraction is a TF Serving flag" in text
    assert "Running gRPC ModelServer at 0.0.0.0:8500" in text
    assert "Exporting HTTP/REST API at:localhost:8501" in text


def test_container_rejects_unknown_flag(image: str) -> None:
    name = f"tfsf-standin-test-{uuid.uuid4().hex[:8]}"
    result = docker("run", "--rm", "--name", name, image, "--rest_port=1", check=False, timeout=60)
    assert result.returncode == 2, result
    assert "unknown argument: '--rest_port=1'" in result.stderr
