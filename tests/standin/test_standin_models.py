"""Model management against one stand-in serving a model_config_file over TLS gRPC: several
models, version rollover under load, a version that fails to load, labels, warmup, and
model_config_file polling."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from standin_helpers import (
    StandinProcess,
    half_plus_two_base,
    http,
    status_states,
)
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc

from helpers import free_ports, wait_for

REFERENCE_VERSION = half_plus_two_base() / "00000123"


def _model_block(name: str, base: Path, extra: str = "") -> str:
    return (
        f'  config: {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" {extra}}}\n'
    )


def write_config(path: Path, blocks: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("model_config_list: {\n" + "".join(blocks) + "}\n")
    tmp.replace(path)


def add_version(base: Path, version: int, source: Path | None = REFERENCE_VERSION) -> None:
    """Publish a version atomically (copy beside, then rename), as exporters should."""
    staging = base / f".staging-{version}"
    if source is None:
        staging.mkdir(parents=True)
        (staging / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    else:
        shutil.copytree(source, staging)
    staging.rename(base / str(version))


def write_warmup(version_dir: Path, x: float) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "warm"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[x]], np.float32)))
    record = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )
    (version_dir / "assets.extra").mkdir()
    with tf.io.TFRecordWriter(
        str(version_dir / "assets.extra" / "tf_serving_warmup_requests")
    ) as out:
        out.write(record.SerializeToString())


def export_tf2_model(version_dir: Path) -> None:
    """A TF2 export (tf.saved_model.save of a tf.Module with a variable): y = 0.5 x + 3."""

    class HalfPlusThree(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.offset = tf.Variable(3.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": 0.5 * x + self.offset}

    module = HalfPlusThree()
    tf.saved_model.save(module, str(version_dir), signatures={"serving_default": module.serve})


def base_blocks(root: Path) -> list[str]:
    return [
        _model_block("roll", root / "roll"),
        _model_block("fail", root / "fail", 'version_labels { key: "stable" value: 1 } '),
        _model_block("warm", root / "warm"),
        _model_block("tf2", root / "tf2"),
    ]


def self_signed_cert(directory: Path) -> tuple[str, str]:
    key, cert = directory / "key.pem", directory / "cert.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise AssertionError("openssl is needed to make the TLS test certificate") from exc
    return key.read_text(), cert.read_text()


class Dynamic:
    def __init__(self, root: Path, server: StandinProcess, grpc_port: int, cert: str) -> None:
        self.root, self.server, self.grpc_port, self.cert = root, server, grpc_port, cert

    def channel(self) -> grpc.Channel:
        creds = grpc.ssl_channel_credentials(root_certificates=self.cert.encode())
        return grpc.secure_channel(f"localhost:{self.grpc_port}", creds)


@pytest.fixture(scope="module")
def dynamic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dynamic]:
    root = Path(tmp_path_factory.mktemp("standin-models"))
    add_version(root / "roll", 1)
    add_version(root / "fail", 1)
    add_version(root / "warm", 5)
    write_warmup(root / "warm" / "5", 3.0)
    export_tf2_model(root / "tf2" / "1")
    key, cert = self_signed_cert(root)
    ssl = root / "ssl.txt"
    ssl.write_text(f"server_key: {json.dumps(key)}\nserver_cert: {json.dumps(cert)}\n")
    write_config(root / "models.config", base_blocks(root))
    grpc_port, rest_port = free_ports(2)
    server = StandinProcess(
        [
            f"--port={grpc_port}",
            f"--rest_api_port={rest_port}",
            f"--model_config_file={root / 'models.config'}",
            "--model_config_file_poll_wait_seconds=1",
            "--file_system_poll_wait_seconds=1",
            "--max_num_load_retries=0",
            # models.config carries a label from the start: TF Serving refuses to start with it
            # unless this flag is set (server_core.cc sets labels before loading any model).
            "--allow_version_labels_for_unavailable_models",
            f"--ssl_config_file={ssl}",
        ],
        root / "server.log",
        rest_port,
    )
    server.start("roll")
    yield Dynamic(root, server, grpc_port, cert)
    assert server.stop() == 0, server.log()


def _predict(
    stub: prediction_service_pb2_grpc.PredictionServiceStub, model: str
) -> tuple[int, float]:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[2.0]], np.float32)))
    response = stub.Predict(request, timeout=10)
    return response.model_spec.version.value, response.outputs["y"].float_val[0]


def test_models_from_config_file_with_labels(dynamic: Dynamic) -> None:
    for model, version in (("roll", 1), ("fail", 1), ("warm", 5)):
        assert status_states(dynamic.server.url, model) == {version: "AVAILABLE"}
    status, body = http(
        "POST", f"{dynamic.server.url}/v1/models/fail/labels/stable:predict", {"instances": [[2.0]]}
    )
    assert (status, body) == (200, {"predictions": [[3.0]]})


def test_tf2_export_served_with_the_session_loader(dynamic: Dynamic) -> None:
    url = f"{dynamic.server.url}/v1/models/tf2"
    assert http("POST", f"{url}:predict", {"instances": [2.0, 4.0]}) == (
        200,
        {"predictions": [4.0, 5.0]},
    )
    status, body = http("GET", f"{url}/metadata")
    assert status == 200
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]  # type: ignore[index]
    assert list(signature["inputs"]) == ["x"] and list(signature["outputs"]) == ["y"]


def test_warmup_requests_replayed(dynamic: Dynamic) -> None:
    log = dynamic.server.log()
    assert "Finished reading warmup data for model at" in log and "warm/5: 1 requests" in log


def test_grpc_is_tls_only(dynamic: Dynamic) -> None:
    with dynamic.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert _predict(stub, "roll") == (1, 3.0)
    with grpc.insecure_channel(f"127.0.0.1:{dynamic.grpc_port}") as plain:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(plain)
        with pytest.raises(grpc.RpcError) as raised:
            _predict(stub, "roll")
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def test_version_rollover_under_load(dynamic: Dynamic) -> None:
    failures: list[str] = []
    versions: list[int] = []
    done = threading.Event()

    def client() -> None:
        with dynamic.channel() as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            deadline = time.monotonic() + 60
            while not done.is_set() and time.monotonic() < deadline and len(versions) < 20000:
                try:
                    version, value = _predict(stub, "roll")
                    versions.append(version)
                    if value != 3.0:
                        failures.append(f"wrong answer {value}")
                except grpc.RpcError as exc:
                    failures.append(f"{exc.code()}: {exc.details()}")

    thread = threading.Thread(target=client)
    thread.start()
    try:
        wait_for(lambda: len(versions) >= 20, 30, "the client's first answers")
        add_version(dynamic.root / "roll", 2)
        wait_for(
            lambda: status_states(dynamic.server.url, "roll") == {2: "AVAILABLE", 1: "END"},
            30,
            "version 2 AVAILABLE and version 1 unloaded",
        )
        seen = len(versions)
        wait_for(lambda: len(versions) >= seen + 20, 30, "answers after the rollover")
    finally:
        done.set()
        thread.join(timeout=30)
    assert not failures, failures[:5]
    assert versions[0] == 1 and versions[-1] == 2
    assert versions == sorted(versions), "answers must move from version 1 to 2, never back"


def test_failing_version_keeps_the_serving_one(dynamic: Dynamic) -> None:
    add_version(dynamic.root / "fail", 2, source=None)

    def failed() -> dict | None:
        status, body = http("GET", f"{dynamic.server.url}/v1/models/fail")
        states = {v["version"]: v for v in body["model_version_status"]} if status == 200 else {}
        return states if states.get("2", {}).get("state") == "END" else None

    states = wait_for(failed, 30, "version 2 of fail to end in an error")
    assert states["2"]["status"]["error_code"] != "OK"
    assert "Failed to load SavedModel" in states["2"]["status"]["error_message"]
    assert states["1"]["state"] == "AVAILABLE"
    status, body = http(
        "POST", f"{dynamic.server.url}/v1/models/fail:predict", {"instances": [[2.0]]}
    )
    assert (status, body) == (200, {"predictions": [[3.0]]})


def test_model_config_file_is_polled(dynamic: Dynamic) -> None:
    add_version(dynamic.root / "extra", 3)
    config = dynamic.root / "models.config"
    blocks = base_blocks(dynamic.root)
    write_config(config, [*blocks, _model_block("extra", dynamic.root / "extra")])
    wait_for(
        lambda: status_states(dynamic.server.url, "extra") == {3: "AVAILABLE"}, 30, "model extra"
    )
    write_config(config, blocks)
    wait_for(lambda: status_states(dynamic.server.url, "extra") == {3: "END"}, 30, "extra removed")
    status, _ = http("POST", f"{dynamic.server.url}/v1/models/extra:predict", {"instances": [1.0]})
    assert status == 404


@pytest.mark.slow
def test_ports_open_only_after_the_first_version_loads(tmp_path: Path) -> None:
    base = tmp_path / "late"
    base.mkdir()
    grpc_port, rest_port = free_ports(2)
    server = StandinProcess(
        [
            f"--port={grpc_port}",
            f"--rest_api_port={rest_port}",
            "--model_name=late",
            f"--model_base_path={base}",
            "--file_system_poll_wait_seconds=1",
        ],
        tmp_path / "server.log",
        rest_port,
    )
    server.start_background()
    try:
        wait_for(lambda: "No versions of servable late found" in server.log(), 60, "the wait")
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            with pytest.raises(grpc.RpcError) as raised:
                _predict(stub, "late")
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(OSError):
            http("GET", f"{server.url}/v1/models/late", timeout=2)
        add_version(base, 4)
        wait_for(lambda: status_states(server.url, "late") == {4: "AVAILABLE"}, 60, "version 4")
    finally:
        assert server.stop() == 0, server.log()
