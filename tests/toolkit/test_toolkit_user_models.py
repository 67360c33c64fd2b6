"""The smoke test against SavedModels written by other code (issue 22): TF1 graphs saved with
SavedModelBuilder (text and binary), TF Serving's mnist shape (a classify signature on
serialized tf.Example plus a numeric predict one), a Keras 3 ``model.export()``, with and
without warmup records, served by the stand-in (``python -m tfs_standin``: TF Serving's APIs,
Classify and Regress included, on real SavedModels). No tfs_fleet manifest anywhere."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_log_pb2
from toolkit_helpers import REPO, VENV_PYTHON

from tfs_fleet.smoke_cli import main as smoke_main
from tfs_fleet.tfrecord import frame, read_records
from tfs_fleet.warmup import read_warmup

pytestmark = pytest.mark.slow  # TensorFlow exports and a stand-in process

W = np.array([[0.5, -0.2, 0.1], [0.3, 0.8, -0.5], [-0.7, 0.2, 0.4], [0.1, 0.1, 0.9]], np.float32)
B = np.array([0.1, -0.1, 0.0], np.float32)
WARMUP = Path("assets.extra") / "tf_serving_warmup_requests"


# ---- SavedModels as other teams write them --------------------------------------------------


def tf1_export(path: Path, build: Callable[[], dict[str, Any]], *, as_text: bool) -> Path:
    """A TF1 graph saved with SavedModelBuilder (tag serve), as the runbook's era did."""
    graph = tf.Graph()
    with graph.as_default():
        signature_map = build()
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(
                session,
                [tf.compat.v1.saved_model.tag_constants.SERVING],
                signature_def_map=signature_map,
            )
            builder.save(as_text=as_text)
    return path


def mnist_like(*, with_images: bool = True) -> Callable[[], dict[str, Any]]:
    """TF Serving's mnist tutorial, 4 features and 3 classes: ``serving_default`` classifies
    serialized tf.Examples (parse_example in the graph), ``predict_images`` takes floats."""

    def build() -> dict[str, Any]:
        v1 = tf.compat.v1
        serialized = v1.placeholder(tf.string, [None], name="tf_example")
        parsed = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([4], tf.float32)})
        w, b = v1.Variable(W, name="w"), v1.Variable(B, name="b")

        def net(x: Any) -> Any:
            return tf.nn.softmax(tf.matmul(x, w) + b)

        scores = net(parsed["x"])
        classes = tf.tile(tf.constant([["0", "1", "2"]]), [tf.shape(scores)[0], 1])
        sigs = {
            "serving_default": v1.saved_model.classification_signature_def(
                serialized, classes, scores
            )
        }
        if with_images:
            images = v1.placeholder(tf.float32, [None, 4], name="images")
            sigs["predict_images"] = v1.saved_model.predict_signature_def(
                {"images": images}, {"scores": net(images)}
            )
        return sigs

    return build


def half(*, output: Callable[[Any], Any], declared_width: int | None = None) -> Any:
    def build() -> dict[str, Any]:
        v1 = tf.compat.v1
        x = v1.placeholder(tf.float32, [None, 2], name="x")
        offset = v1.Variable(2.0, name="offset")
        sig = v1.saved_model.predict_signature_def({"x": x}, {"y": output(x) + 0 * offset})
        if declared_width is not None:  # what the signature claims, not what the graph does
            sig.outputs["y"].tensor_shape.dim[1].size = declared_width
        return {"serving_default": sig}

    return build


def example(values: list[float]) -> Any:
    ex = tf.train.Example()
    ex.features.feature["x"].float_list.value.extend(values)
    return ex


ROWS = [[1.0, 0.0, 2.0, 0.5], [0.0, 1.0, 0.0, 3.0]]


def expected_scores(rows: list[list[float]]) -> np.ndarray:
    logits = np.asarray(rows, np.float32) @ W + B
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def write_warmup(version_dir: Path) -> None:
    """Two classify records and a predict record, written by TensorFlow's own writer."""
    records = []
    for rows in (ROWS, ROWS[:1]):
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = "whatever-it-was-called"
        for row in rows:
            request.input.example_list.examples.add().CopyFrom(example(row))
        log = prediction_log_pb2.PredictionLog()
        log.classify_log.request.CopyFrom(request)
        records.append(log.SerializeToString())
    predict = predict_pb2.PredictRequest()
    predict.model_spec.signature_name = "predict_images"
    predict.inputs["images"].CopyFrom(tf.make_tensor_proto(np.asarray(ROWS, np.float32)))
    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.CopyFrom(predict)
    records.append(log.SerializeToString())
    (version_dir / WARMUP).parent.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(version_dir / WARMUP)) as writer:
        for record in records:
            writer.write(record)


def keras_export(path: Path) -> Path:
    import keras

    inputs = keras.Input((4,), name="features")
    outputs = keras.layers.Dense(3, activation="softmax")(inputs)
    keras.Model(inputs, outputs).export(str(path), verbose=False)
    return path


# ---- the stand-in serving them ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Standin:
    def __init__(self, base: Path, models: list[str], log: Path) -> None:
        self.grpc_port, self.rest_port = free_port(), free_port()
        config = base / "models.config"
        config.write_text(
            "model_config_list: {\n"
            + "".join(
                f'  config: {{ name: "{m}" base_path: "{base / m}" '
                'model_platform: "tensorflow" }\n'
                for m in models
            )
            + "}\n"
        )
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tfs_standin", f"--port={self.grpc_port}",
                 f"--rest_api_port={self.rest_port}", f"--model_config_file={config}"],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + 120
        pending = set(models)
        while pending and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"stand-in exited:\n{log.read_text(errors='replace')}")
            for model in list(pending):
                url = f"http://127.0.0.1:{self.rest_port}/v1/models/{model}"
                try:
                    with urllib.request.urlopen(url, timeout=2) as answer:
                        states = [v["state"] for v in json.load(answer)["model_version_status"]]
                    if "AVAILABLE" in states:
                        pending.discard(model)
                except OSError:
                    pass
            time.sleep(0.3)
        if pending:
            self.stop()
            raise AssertionError(f"{pending} not AVAILABLE:\n{log.read_text(errors='replace')}")

    def hosts(self) -> list[str]:
        return ["--grpc", f"127.0.0.1:{self.grpc_port}", "--rest", f"127.0.0.1:{self.rest_port}"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tfsf-user-models")
    write_warmup(tf1_export(root / "mnist" / "1", mnist_like(), as_text=True))
    tf1_export(root / "mnist_nowarm" / "1", mnist_like(), as_text=False)
    tf1_export(root / "nan" / "1", half(output=lambda x: tf.math.log(x - 2.0)), as_text=True)
    tf1_export(root / "shape" / "1", half(output=lambda x: 2.0 * x, declared_width=3), as_text=True)
    tf1_export(root / "evolving" / "1", mnist_like(), as_text=True)
    tf1_export(root / "evolving" / "2", mnist_like(with_images=False), as_text=True)
    keras_export(root / "keras" / "1")
    return root


@pytest.fixture(scope="module")
def standin(base: Path) -> Iterator[Standin]:
    server = Standin(
        base, ["mnist", "mnist_nowarm", "nan", "shape", "evolving", "keras"], base / "log"
    )
    yield server
    server.stop()


def smoke(
    standin: Standin, version_dir: Path, *extra: str, capsys: Any
) -> tuple[int, dict[str, Any], str]:
    rc = smoke_main(
        ["--saved-model", str(version_dir), "--wait", "10", "--json", "--repeat", "2", *extra,
         *standin.hosts()]
    )  # fmt: skip
    captured = capsys.readouterr()
    return rc, json.loads(captured.out), captured.err


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {name: c["status"] for name, c in doc["hosts"][0]["checks"].items()}


def detail(doc: dict[str, Any], check: str) -> str:
    return str(doc["hosts"][0]["checks"][check]["detail"])


# ---- the tests ---------------------------------------------------------------------------------


def test_tfrecords_of_tensorflow_read_and_written_alike(base: Path) -> None:
    path = base / "mnist" / "1" / WARMUP
    records = read_records(path)
    assert len(records) == 3
    assert path.read_bytes() == b"".join(frame(r) for r in records)
    assert [r.call for r in read_warmup(path)] == ["Classify", "Classify", "Predict"]


def test_a_tf1_model_we_did_not_export_passes(standin: Standin, base: Path, capsys: Any) -> None:
    """pbtxt, classify on tf.Example plus numeric predict, warmup records: every signature is
    checked (the classify one by its warmup records), nothing is NOT RUN but golden."""
    rc, doc, err = smoke(standin, base / "mnist" / "1", capsys=capsys)
    assert rc == 0, err
    assert doc["model"] == "mnist" and doc["saved_model_format"] == "pbtxt"
    assert statuses(doc) == {
        "status": "PASS",
        "signatures": "PASS",
        "predict predict_images": "PASS",
        "predict serving_default": "PASS",
        "warmup": "PASS",
        "golden": "NOT RUN",
    }
    assert detail(doc, "warmup").startswith("3 records replayed (2 Classify, 1 Predict)")
    assert "answered by 2 warmup Classify requests" in detail(doc, "predict serving_default")


def test_the_classify_signature_is_not_run_without_warmup(
    standin: Standin, base: Path, capsys: Any
) -> None:
    rc, doc, err = smoke(standin, base / "mnist_nowarm" / "1", capsys=capsys)
    assert rc == 0, err  # predict_images was checked; the table says what was not
    assert doc["saved_model_format"] == "pb"
    assert statuses(doc)["predict serving_default"] == "NOT RUN"
    assert statuses(doc)["predict predict_images"] == "PASS"
    assert detail(doc, "predict serving_default") == (
        "input 'inputs' takes serialized tf.Example: add "
        "assets.extra/tf_serving_warmup_requests or a golden file"
    )
    assert "not verified for predict serving_default, warmup, golden" in doc["table"][-1]


def golden_doc(scores: np.ndarray) -> dict[str, Any]:
    return {
        "rtol": 1e-5,
        "atol": 1e-6,
        "requests": [
            {"name": "two rows", "method": "classify",
             "examples": [{"x": row} for row in ROWS],
             "results": [[[str(k), float(s)] for k, s in enumerate(r)] for r in scores]},
            {"signature": "predict_images", "inputs": {"images": ROWS},
             "outputs": {"scores": scores.tolist()}},
        ],
    }  # fmt: skip


def test_golden_requests_check_the_answers(
    standin: Standin, base: Path, tmp_path: Path, capsys: Any
) -> None:
    golden = tmp_path / "golden.json"
    scores = expected_scores(ROWS)
    golden.write_text(json.dumps(golden_doc(scores)))
    rc, doc, err = smoke(standin, base / "mnist_nowarm" / "1", "--golden", str(golden),
                         capsys=capsys)  # fmt: skip
    assert rc == 0, err
    assert statuses(doc)["golden"] == "PASS"
    assert statuses(doc)["predict serving_default"] == "PASS"  # by the golden classify
    wrong = scores.copy()
    wrong[1, 2] += 0.01
    golden.write_text(json.dumps(golden_doc(wrong)))
    rc, doc, err = smoke(standin, base / "mnist_nowarm" / "1", "--golden", str(golden),
                         capsys=capsys)  # fmt: skip
    assert rc == 1
    assert statuses(doc)["golden"] == "FAIL"
    assert (
        f"golden: --golden {golden} request 1 ('two rows') (classify serving_default): "
        "answer 1 of 2: example 2 scores differs from the expected output"
    ) in err


def test_a_bad_golden_file_exits_2_naming_file_and_entry(base: Path, tmp_path: Path) -> None:
    golden = tmp_path / "golden.json"
    doc = golden_doc(expected_scores(ROWS))
    doc["requests"][1]["inputs"] = {"image": ROWS}  # the input is called images
    golden.write_text(json.dumps(doc))
    proc = subprocess.run(
        [VENV_PYTHON, str(REPO / "scripts" / "smoke_test.py"), "--saved-model",
         str(base / "mnist" / "1"), "--golden", str(golden), "--grpc", "127.0.0.1:9",
         "--rest", "127.0.0.1:9"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert (
        f"--golden {golden} request 2: inputs ['image'] not declared by the signature "
        "(it has ['images'])"
    ) in proc.stderr


def test_a_model_answering_nan_fails(standin: Standin, base: Path, capsys: Any) -> None:
    rc, doc, _ = smoke(standin, base / "nan" / "1", capsys=capsys)
    assert rc == 1
    assert statuses(doc)["predict serving_default"] == "FAIL"
    assert detail(doc, "predict serving_default") == (
        "answer 1 of 2: output 'y' is not finite: 2 NaN of 2 values"
    )
    assert doc["hosts"][0]["failed_check"] == "predict serving_default"


def test_an_answer_that_does_not_fit_its_signature_fails(
    standin: Standin, base: Path, capsys: Any
) -> None:
    rc, doc, _ = smoke(standin, base / "shape" / "1", capsys=capsys)
    assert rc == 1
    assert statuses(doc)["signatures"] == "PASS"  # served as declared...
    assert detail(doc, "predict serving_default") == (  # ...but answered otherwise
        "answer 1 of 2: output 'y' shape [1, 2] does not match the signature's [-1, 3]"
    )


def test_a_version_that_drops_a_signature_fails(standin: Standin, base: Path, capsys: Any) -> None:
    rc, doc, err = smoke(
        standin, base / "evolving" / "2", "--previous-saved-model", str(base / "evolving" / "1"),
        capsys=capsys,
    )  # fmt: skip
    assert rc == 1
    assert doc["hosts"][0]["version"] == 2
    assert detail(doc, "signatures") == (
        "signatures ['predict_images'] of the previous version 1 are no longer served "
        "(clients calling them would fail)"
    )
    assert "FAIL host" in err and "signatures: signatures ['predict_images']" in err


def test_a_keras_3_export_passes(standin: Standin, base: Path, capsys: Any) -> None:
    rc, doc, err = smoke(standin, base / "keras" / "1", capsys=capsys)
    assert rc == 0, err
    assert statuses(doc) == {
        "status": "PASS",
        "signatures": "PASS",
        "predict serve": "PASS",
        "predict serving_default": "PASS",
        "warmup": "NOT RUN",
        "golden": "NOT RUN",
    }
