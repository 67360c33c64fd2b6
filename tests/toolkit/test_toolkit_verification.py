"""The smoke test against models we did not export (issue 22) and every repeated answer checked
(issue 23 item 3), without TensorFlow: the SavedModel reader (pb, pbtxt), the TFRecord and
warmup readers, the golden format, and the checks against a scripted TF Serving double."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from toolkit_fake_serving import (
    HALF_PLUS_TWO,
    MNIST,
    FakeServing,
    signature_def,
    write_saved_model,
)

from tfs_fleet.golden import GoldenError, load_golden, parse_golden
from tfs_fleet.protos import (
    classification_pb2,
    example_pb2,
    inference_pb2,
    predict_pb2,
    prediction_log_pb2,
)
from tfs_fleet.savedmodel import SavedModelError, parse_version, read_saved_model
from tfs_fleet.smoke_cli import main as smoke_main
from tfs_fleet.tensors import to_tensor_proto
from tfs_fleet.tfrecord import (
    TFRecordError,
    crc32c,
    frame,
    masked_crc32c,
    read_records,
    write_records,
)
from tfs_fleet.warmup import WarmupError, read_warmup

WARMUP = Path("assets.extra") / "tf_serving_warmup_requests"


# ---- the SavedModel reader -------------------------------------------------------------------


@pytest.mark.parametrize("text", [False, True], ids=["pb", "pbtxt"])
def test_reads_the_serve_meta_graph_of_pb_and_pbtxt(tmp_path: Path, text: bool) -> None:
    directory = write_saved_model(
        tmp_path / "mnist" / "007", MNIST, text=text, extra_meta_graphs=(("serve", "gpu"),)
    )
    info = read_saved_model(directory)
    assert info.format == ("pbtxt" if text else "pb")
    assert info.version == 7 and info.warmup_file is None
    assert sorted(info.public) == ["predict_images", "serving_default"]
    default = info.signatures["serving_default"]
    assert default.method_name == "tensorflow/serving/classify"
    assert default.inputs["inputs"].dtype == "DT_STRING"
    assert default.outputs["scores"].shape == (-1, 10)
    assert default.unbuildable_reason() == "input 'inputs' takes serialized tf.Example"
    assert info.signatures["predict_images"].unbuildable_reason() is None
    # The tag set must equal, as TF Serving's loader requires.
    gpu = read_saved_model(directory, {"gpu", "serve"})
    assert gpu.public == {}


def test_reader_errors_name_the_directory(tmp_path: Path) -> None:
    write_saved_model(tmp_path / "1", HALF_PLUS_TWO, tags=("train",))
    with pytest.raises(SavedModelError, match=r"no MetaGraphDef with the tag set \{serve\}.*\{tr"):
        read_saved_model(tmp_path / "1")
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "saved_model.cpb").write_bytes(b"chunks")
    with pytest.raises(SavedModelError, match=r"chunked SavedModel.*cannot be read here"):
        read_saved_model(tmp_path / "2")
    with pytest.raises(SavedModelError, match=r"no saved_model\.pb or saved_model\.pbtxt"):
        read_saved_model(tmp_path)
    with pytest.raises(SavedModelError, match="no such directory"):
        read_saved_model(tmp_path / "9")
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / "saved_model.pbtxt").write_text("meta_graphs { nonsense: 1 }")
    with pytest.raises(SavedModelError, match=r"3/saved_model.pbtxt: not a SavedModel pbtxt file"):
        read_saved_model(tmp_path / "3")
    (tmp_path / "4").mkdir()
    (tmp_path / "4" / "saved_model.pb").write_bytes(b"\xff\xff\xff")
    with pytest.raises(SavedModelError, match="not a SavedModel pb file"):
        read_saved_model(tmp_path / "4")


@pytest.mark.parametrize(
    ("name", "version"),
    [("1", 1), ("007", 7), ("+3", 3), (" 12 ", 12), ("-1", None), ("v1", None), ("1.0", None),
     ("", None), (".tfs-fleet-incoming-3", None), ("99999999999999999999", None)],
)  # fmt: skip
def test_version_names_parse_like_simple_atoi(name: str, version: int | None) -> None:
    assert parse_version(name) == version


# ---- TFRecord and warmup files ---------------------------------------------------------------


def test_crc32c_known_values() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4
    assert masked_crc32c(b"") == 0xA282EAD8


def test_tfrecord_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "r.tfrecord"
    assert write_records(path, [b"a", b"", b"xyz" * 100]) == 3
    assert read_records(path) == [b"a", b"", b"xyz" * 100]
    data = path.read_bytes()
    # A flipped data byte of the third record.
    bad = bytearray(data)
    bad[len(frame(b"a")) + len(frame(b"")) + 12] ^= 1
    path.write_bytes(bytes(bad))
    with pytest.raises(TFRecordError, match=r"record 3 at byte 33: data CRC mismatch"):
        read_records(path)
    # A corrupt length field.
    bad = bytearray(data)
    bad[0] = 7
    path.write_bytes(bytes(bad))
    with pytest.raises(TFRecordError, match="record 1 at byte 0: length CRC mismatch"):
        read_records(path)
    cuts = ((5, "truncated header"), (14, "truncated data"), (len(data) - 2, "truncated data CRC"))
    for cut, message in cuts:
        path.write_bytes(data[:cut])
        with pytest.raises(TFRecordError, match=message):
            read_records(path)
    path.write_bytes(data)
    with pytest.raises(TFRecordError, match="more than 2 records"):
        read_records(path, max_records=2)


def predict_log(inputs: dict[str, Any], signature: str = "", name: str = "other") -> bytes:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(to_tensor_proto(value))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    ).SerializeToString()


def example(**features: float) -> Any:
    ex = example_pb2.Example()
    for key, value in features.items():
        ex.features.feature[key].float_list.value.append(value)
    return ex


def classify_log(count: int = 2, signature: str = "serving_default") -> bytes:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "mnist-as-exported"
    request.model_spec.version.value = 99
    request.model_spec.signature_name = signature
    for n in range(count):
        request.input.example_list.examples.add().CopyFrom(example(x=float(n)))
    return prediction_log_pb2.PredictionLog(
        classify_log=prediction_log_pb2.ClassifyLog(request=request)
    ).SerializeToString()


def multi_inference_log() -> bytes:
    request = inference_pb2.MultiInferenceRequest()
    for method, sig in (("classify", "serving_default"), ("regress", "regress_x")):
        task = request.tasks.add()
        task.model_spec.name = "x"
        task.model_spec.signature_name = sig
        task.method_name = f"tensorflow/serving/{method}"
    request.input.example_list.examples.add().CopyFrom(example(x=1.0))
    return prediction_log_pb2.PredictionLog(
        multi_inference_log=prediction_log_pb2.MultiInferenceLog(request=request)
    ).SerializeToString()


def test_warmup_reader(tmp_path: Path) -> None:
    path = tmp_path / "w"
    one = predict_log({"x": np.ones((1, 1), np.float32)})
    write_records(path, [one, classify_log(), multi_inference_log()])
    records = read_warmup(path)
    assert [(r.index, r.call, r.signatures) for r in records] == [
        (1, "Predict", ("serving_default",)),
        (2, "Classify", ("serving_default",)),
        (3, "MultiInference", ("regress_x", "serving_default")),
    ]
    session = prediction_log_pb2.PredictionLog()
    session.session_run_log.SetInParent()
    write_records(path, [predict_log({}), session.SerializeToString()])
    with pytest.raises(WarmupError, match="record 2: log type session_run_log cannot be replayed"):
        read_warmup(path)
    write_records(path, [b"\xff\xff"])
    with pytest.raises(WarmupError, match="record 1: not a PredictionLog"):
        read_warmup(path)
    write_records(path, [predict_log({})] * 1001)
    with pytest.raises(WarmupError, match="more than 1000 records"):
        read_warmup(path)


# ---- the golden format ----------------------------------------------------------------------


REFERENCE_LIKE = {
    **HALF_PLUS_TWO,
    "classify_x_to_y": signature_def(
        "classify", {"inputs": ("DT_STRING", None)}, {"scores": ("DT_FLOAT", [-1, 1])}
    ),
    "regress_x_to_y": signature_def(
        "regress", {"inputs": ("DT_STRING", None)}, {"outputs": ("DT_FLOAT", [-1, 1])}
    ),
    "ints": signature_def(
        "predict",
        {"i": ("DT_INT64", [-1]), "s": ("DT_STRING", [-1]), "b": ("DT_BOOL", [-1])},
        {"o": ("DT_INT64", [-1])},
    ),
}


def signatures_of(defs: dict[str, Any], tmp_path: Path) -> Any:
    return read_saved_model(write_saved_model(tmp_path / "sm" / "1", defs)).signatures


def test_golden_format_parses(tmp_path: Path) -> None:
    sigs = signatures_of(REFERENCE_LIKE, tmp_path)
    doc = {
        "rtol": 0.01,
        "requests": [
            {"inputs": {"x": [[1.0], [2.0]]}, "outputs": {"y": [[2.5], [3.0]]}, "atol": 0},
            {"signature": "ints", "outputs": {"o": [1, 2]},
             "inputs": {"i": [1, 2], "s": ["a", {"b64": "AAE="}], "b": [True, False]}},
            {"name": "two examples", "signature": "classify_x_to_y", "method": "classify",
             "examples": [{"x": 1.0, "n": 3, "w": ["a", "b"]}, {"x": [1, 2.5]}],
             "context": {"c": {"b64": "AA=="}}, "results": [[["", 2.5]], [["", 3.0]]]},
            {"signature": "regress_x_to_y", "method": "regress", "examples": [{"x": 2}],
             "results": [3]},
        ],
    }  # fmt: skip
    requests = parse_golden(doc, "g.json", sigs)
    first, ints, classify, regress = requests
    assert (first.rtol, first.atol) == (0.01, 0.0)
    assert first.inputs["x"].dtype == np.float32 and first.inputs["x"].shape == (2, 1)
    assert ints.inputs["i"].dtype == np.int64 and ints.inputs["b"].dtype == np.bool_
    assert ints.inputs["s"].tolist() == [b"a", b"\x00\x01"]
    assert classify.label == "g.json request 3 ('two examples') (classify classify_x_to_y)"
    features = classify.examples[0].features.feature
    assert list(features["x"].float_list.value) == [1.0]
    assert list(features["n"].int64_list.value) == [3]
    assert list(features["w"].bytes_list.value) == [b"a", b"b"]
    assert list(classify.examples[1].features.feature["x"].float_list.value) == [1.0, 2.5]
    request = classify.request("m", 4)
    assert request.model_spec.version.value == 4
    assert len(request.input.example_list_with_context.examples) == 2
    assert regress.results == (3.0,)
    assert regress.request("m", None).input.example_list.examples[0].features.feature[
        "x"
    ].int64_list.value == [2]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "the top level must be an object"),
        ({"requests": []}, "'requests' must be a non-empty list"),
        ({"requests": [{}], "extra": 1}, r"unknown keys \['extra'\]"),
        ({"format": 2, "requests": [{}]}, "format 2"),
        ({"requests": [{"signature": "nope", "inputs": {}, "outputs": {}}]},
         r"request 1: signature 'nope' is not in the SavedModel"),
        ({"requests": [{"inputs": {"x": [[1.0]]}, "output": {}}]},
         r"request 1: unknown keys \['output'\]"),
        ({"requests": [{"inputs": {"x": [[1.0]]}}]}, "request 1: 'outputs' missing"),
        ({"requests": [{"inputs": {"z": [[1.0]]}, "outputs": {}}]},
         r"inputs \['z'\] not declared by the signature"),
        ({"requests": [{"inputs": {"x": [["a"]]}, "outputs": {"y": [[1]]}}]},
         r"inputs 'x': expected numbers, got 'a'"),
        ({"requests": [{"inputs": {"x": [[1.0], [2.0, 3.0]]}, "outputs": {"y": [[1]]}}]},
         "inputs 'x'"),
        ({"requests": [{"inputs": {"x": [1.0]}, "outputs": {"y": [[1]]}}]},
         r"shape \[1\] does not fit the signature's \[-1, 1\]"),
        ({"requests": [{"signature": "ints", "inputs": {"i": [1.5], "s": ["a"], "b": [True]},
                        "outputs": {"o": [1]}}]}, "an integer tensor takes whole numbers"),
        ({"requests": [{"signature": "ints", "outputs": {"o": [1]},
                        "inputs": {"i": [1], "s": [{"b64": "!!"}], "b": [True]}}]}, "bad base64"),
        ({"requests": [{"method": "classify", "examples": [{"x": 1.0}], "results": [[["a", 1]]]}]},
         "classify needs a signature with method_name tensorflow/serving/classify"),
        ({"requests": [{"signature": "classify_x_to_y", "method": "classify",
                        "examples": [{"x": 1.0}, {"x": 2.0}], "results": [[["", 1]]]}]},
         "2 examples but 1 results"),
        ({"requests": [{"signature": "classify_x_to_y", "method": "classify",
                        "examples": [{"x": [True]}], "results": [[["", 1]]]}]},
         "examples\\[0\\] feature 'x': a feature is numbers, strings"),
        ({"requests": [{"signature": "regress_x_to_y", "method": "regress",
                        "examples": [{"x": 1.0}], "results": ["a"]}]},
         "'results' must be a list of numbers"),
        ({"requests": [{"inputs": {"x": [[1.0]]}, "outputs": {"y": [[1]]}, "rtol": -1}]},
         "'rtol' must be a finite number >= 0"),
        ({"requests": [{"method": "explain", "inputs": {}}]}, "method 'explain'"),
    ],
)  # fmt: skip
def test_bad_golden_documents_name_the_file_and_entry(
    tmp_path: Path, doc: Any, message: str
) -> None:
    sigs = signatures_of(REFERENCE_LIKE, tmp_path)
    path = tmp_path / "golden.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(GoldenError, match=message) as err:
        load_golden(path, sigs)
    assert f"--golden {path}" in str(err.value)


def test_golden_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_text("{")
    with pytest.raises(GoldenError, match=f"--golden {path}: not JSON"):
        load_golden(path, {})
    with pytest.raises(GoldenError, match="not readable"):
        load_golden(tmp_path / "missing.json", {})


# ---- the checks against a scripted server ----------------------------------------------------


def run_smoke(
    fake: FakeServing, directory: Path, *extra: str, capsys: Any
) -> tuple[int, dict[str, Any], str]:
    rc = smoke_main(
        ["--saved-model", str(directory), "--model", fake.model, "--wait", "3", "--poll", "0.1",
         "--timeout", "5", "--json", *extra, *fake.hosts()]
    )  # fmt: skip
    captured = capsys.readouterr()
    return rc, json.loads(captured.out), captured.err


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    [host] = doc["hosts"]
    return {name: check["status"] for name, check in host["checks"].items()}


def detail(doc: dict[str, Any], check: str) -> str:
    return str(doc["hosts"][0]["checks"][check]["detail"])


def test_a_model_we_did_not_export_without_warmup(tmp_path: Path, capsys: Any) -> None:
    """TF Serving's mnist shape: the classify signature is NOT RUN with its reason, the
    numeric one is built; the host passes on what was checked and the table says what not."""
    directory = write_saved_model(tmp_path / "mnist" / "1", MNIST, text=True)
    with FakeServing(MNIST) as fake:
        rc, doc, err = run_smoke(fake, directory, capsys=capsys)
    assert rc == 0, err
    assert statuses(doc) == {
        "status": "PASS",
        "signatures": "PASS",
        "predict predict_images": "PASS",
        "predict serving_default": "NOT RUN",
        "warmup": "NOT RUN",
        "golden": "NOT RUN",
    }
    assert detail(doc, "predict serving_default") == (
        "input 'inputs' takes serialized tf.Example: add "
        "assets.extra/tf_serving_warmup_requests or a golden file"
    )
    host = doc["hosts"][0]
    assert host["ok"] is True and host["failed_check"] is None and host["version"] == 1
    assert host["checks"]["predict serving_default"]["ok"] is None
    assert host["not_run"] == ["predict serving_default", "warmup", "golden"]
    assert doc["saved_model_format"] == "pbtxt" and doc["manifest"] is None
    # Five built Predicts of ones [1, 784], all to predict_images of version 1.
    calls = fake.calls_of("Predict")
    assert len(calls) == 5
    assert {c.model_spec.signature_name for c in calls} == {"predict_images"}
    assert calls[0].model_spec.version.value == 1
    assert [d.size for d in calls[0].inputs["images"].tensor_shape.dim] == [1, 784]
    table = "\n".join(doc["table"])
    assert "predict serving_default  NOT RUN  input 'inputs' takes serialized tf.Example" in table
    assert "not verified for predict serving_default, warmup, golden (NOT RUN)" in table


def test_classify_signature_passes_by_its_warmup_records(tmp_path: Path, capsys: Any) -> None:
    directory = write_saved_model(tmp_path / "mnist" / "3", MNIST)
    (directory / WARMUP).parent.mkdir()
    write_records(directory / WARMUP, [classify_log(2), classify_log(1), multi_inference_log()])
    with FakeServing(MNIST, model="mnist", version=3) as fake:
        rc, doc, err = run_smoke(fake, directory, capsys=capsys)
        classify_calls = fake.calls_of("Classify")
        multi = fake.calls_of("MultiInference")
    assert rc == 0, err
    assert statuses(doc)["predict serving_default"] == "PASS"
    assert statuses(doc)["warmup"] == "PASS"
    assert detail(doc, "warmup") == (
        "3 records replayed (2 Classify, 1 MultiInference): every call answered, floats finite"
    )
    assert "answered by 2 warmup Classify requests, 1 warmup MultiInference request" in detail(
        doc, "predict serving_default"
    )
    # Replayed as recorded, but addressed to the model and version under test.
    assert [len(c.input.example_list.examples) for c in classify_calls] == [2, 1]
    assert {(c.model_spec.name, c.model_spec.version.value) for c in classify_calls} == {
        ("mnist", 3)
    }
    assert {(t.model_spec.name, t.model_spec.version.value) for t in multi[0].tasks} == {
        ("mnist", 3)
    }


def test_a_failing_warmup_record_fails_warmup_and_its_signature(
    tmp_path: Path, capsys: Any
) -> None:
    directory = write_saved_model(tmp_path / "mnist" / "1", MNIST)
    (directory / WARMUP).parent.mkdir()
    write_records(directory / WARMUP, [classify_log(1), classify_log(1)])

    def nan_scores(call: str, request: Any, n: int) -> Any:
        if call == "Classify" and n == 2:
            response = classification_pb2.ClassificationResponse()
            response.result.classifications.add().classes.add(label="0", score=math.nan)
            return response
        return None

    with FakeServing(MNIST, answer=nan_scores) as fake:
        rc, doc, err = run_smoke(fake, directory, capsys=capsys)
    assert rc == 1
    assert statuses(doc)["warmup"] == "FAIL"
    assert detail(doc, "warmup") == (
        "record 2 (Classify): classification scores are not finite: 1 NaN of 1 values"
    )
    assert statuses(doc)["predict serving_default"] == "FAIL"
    assert detail(doc, "predict serving_default") == (
        "not built (input 'inputs' takes serialized tf.Example); warmup record 2 (Classify) "
        "failed (see warmup)"
    )
    assert doc["hosts"][0]["failed_check"] == "predict serving_default"
    assert "FAIL host" in err and "warmup: record 2 (Classify)" in err


def test_a_corrupt_warmup_file_fails_the_warmup_check(tmp_path: Path, capsys: Any) -> None:
    directory = write_saved_model(tmp_path / "m" / "1", HALF_PLUS_TWO)
    (directory / WARMUP).parent.mkdir()
    (directory / WARMUP).write_bytes(frame(classify_log())[:-3])
    with FakeServing(HALF_PLUS_TWO) as fake:
        rc, doc, _ = run_smoke(fake, directory, capsys=capsys)
    assert rc == 1 and statuses(doc)["warmup"] == "FAIL"
    assert "truncated data CRC" in detail(doc, "warmup")
    assert "TF Serving would not load this version" in detail(doc, "warmup")


def float_response(key: str, value: Any) -> Any:
    response = predict_pb2.PredictResponse()
    response.outputs[key].CopyFrom(to_tensor_proto(np.asarray(value, np.float32)))
    return response


def test_nan_answer_fails_the_built_predict(tmp_path: Path, capsys: Any) -> None:
    directory = write_saved_model(tmp_path / "m" / "1", HALF_PLUS_TWO)
    with FakeServing(
        HALF_PLUS_TWO, answer=lambda c, r, n: float_response("y", [[math.nan]])
    ) as fake:
        rc, doc, err = run_smoke(fake, directory, capsys=capsys)
    assert rc == 1
    assert statuses(doc)["predict serving_default"] == "FAIL"
    assert detail(doc, "predict serving_default") == (
        "answer 1 of 5: output 'y' is not finite: 1 NaN of 1 values"
    )
    assert "FAIL host 127.0.0.1" in err


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([[1.0, 2.0]], "output 'y' shape [1, 2] does not match the signature's [-1, 1]"),
        ([1.0], "output 'y' shape [1] does not match the signature's [-1, 1]"),
        ([[math.inf]], "output 'y' is not finite: 1 Inf of 1 values"),
    ],
)
def test_answers_that_do_not_fit_the_signature_fail(
    tmp_path: Path, capsys: Any, value: Any, message: str
) -> None:
    directory = write_saved_model(tmp_path / "m" / "1", HALF_PLUS_TWO)
    with FakeServing(HALF_PLUS_TWO, answer=lambda c, r, n: float_response("y", value)) as fake:
        rc, doc, _ = run_smoke(fake, directory, capsys=capsys)
    assert rc == 1
    assert message in detail(doc, "predict serving_default")


def test_wrong_output_keys_and_dtypes_fail(tmp_path: Path, capsys: Any) -> None:
    directory = write_saved_model(tmp_path / "m" / "1", HALF_PLUS_TWO)

    def answer(call: str, request: Any, n: int) -> Any:
        response = float_response("y", [[1.0]])
        if n == 1:
            response.outputs["extra"].CopyFrom(to_tensor_proto(np.ones(1, np.float32)))
        else:
            response.outputs["y"].CopyFrom(to_tensor_proto(np.ones((1, 1), np.float64)))
        return response

    with FakeServing(HALF_PLUS_TWO, answer=answer) as fake:
        rc, doc, _ = run_smoke(fake, directory, capsys=capsys)
    assert rc == 1
    assert detail(doc, "predict serving_default") == (
        "answer 1 of 5: output keys ['extra', 'y'], the signature declares ['y'] "
        "(not declared ['extra'])"
    )
    rc, doc, _ = 0, {}, ""
    with FakeServing(HALF_PLUS_TWO, answer=lambda c, r, n: answer(c, r, 2)) as fake:
        rc, doc, _ = run_smoke(fake, directory, capsys=capsys)
    assert "output 'y' dtype DT_DOUBLE, the signature says DT_FLOAT" in detail(
        doc, "predict serving_default"
    )


def test_nan_in_any_repeated_answer_fails(tmp_path: Path, capsys: Any) -> None:
    """Issue 23 item 3: four NaN answers then a right one used to pass (only the last of the
    --repeat results was compared). Here the fourth of five is wrong, for a built predict and
    for the golden request alike."""
    directory = write_saved_model(tmp_path / "m" / "1", HALF_PLUS_TWO)
    golden = tmp_path / "golden.json"
    golden.write_text(
        json.dumps({"requests": [{"inputs": {"x": [[1.0]]}, "outputs": {"y": [[2.5]]}}]})
    )

    def fourth_is_nan(call: str, request: Any, n: int) -> Any:
        value = math.nan if n in (4, 8) else 2.5  # the 4th built, the 4th golden answer
        return float_response("y", [[value]])

    with FakeServing(HALF_PLUS_TWO, answer=fourth_is_nan) as fake:
        rc, doc, _ = run_smoke(fake, directory, "--golden", str(golden), capsys=capsys)
        assert len(fake.calls_of("Predict")) == 8  # each stopped at its first wrong answer
    assert rc == 1
    assert detail(doc, "predict serving_default") == (
        "answer 4 of 5: output 'y' is not finite: 1 NaN of 1 values"
    )
    assert detail(doc, "golden") == (
        f"--golden {golden} request 1 (predict serving_default): answer 4 of 5: "
        "output 'y' is not finite: 1 NaN of 1 values"
    )


def test_golden_values_are_compared(tmp_path: Path, capsys: Any) -> None:
    defs = {**HALF_PLUS_TWO, "classify_x": REFERENCE_LIKE["classify_x_to_y"]}
    directory = write_saved_model(tmp_path / "m" / "1", defs)
    golden = tmp_path / "golden.json"
    good = {"signature": "classify_x", "method": "classify", "examples": [{"x": 1.0}],
            "results": [[["0", 0.25], ["1", 0.75]]]}  # fmt: skip
    golden.write_text(json.dumps({"requests": [good]}))
    with FakeServing(defs) as fake:
        rc, doc, err = run_smoke(fake, directory, "--golden", str(golden), capsys=capsys)
    assert rc == 0, err
    assert statuses(doc)["golden"] == "PASS" and statuses(doc)["predict classify_x"] == "PASS"
    assert detail(doc, "predict classify_x") == (
        "not built (input 'inputs' takes serialized tf.Example); answered by 1 golden "
        "classify request"
    )
    wrong = {**good, "results": [[["0", 0.25], ["1", 0.7]]]}
    wrong_predict = {"inputs": {"x": [[1.0]]}, "outputs": {"y": [[3.0]]}}
    for entry, message in (
        (wrong, "request 1 (classify classify_x): answer 1 of 5: example 1 scores differs"),
        (wrong_predict, "request 1 (predict serving_default): answer 1 of 5: output 'y' differs "
                        "from the expected output: max abs diff 2"),
    ):  # fmt: skip
        golden.write_text(json.dumps({"requests": [entry]}))
        with FakeServing(defs) as fake:
            rc, doc, _ = run_smoke(fake, directory, "--golden", str(golden), capsys=capsys)
        assert rc == 1 and statuses(doc)["golden"] == "FAIL"
        assert message in detail(doc, "golden")
    # --atol widens every golden comparison.
    with FakeServing(defs) as fake:
        rc, doc, _ = run_smoke(
            fake, directory, "--golden", str(golden), "--atol", "2.5", capsys=capsys
        )
    assert rc == 0, doc


def test_a_bad_golden_file_exits_2_before_any_request(tmp_path: Path, capsys: Any) -> None:
    directory = write_saved_model(tmp_path / "m" / "1", HALF_PLUS_TWO)
    golden = tmp_path / "golden.json"
    golden.write_text(json.dumps({"requests": [{"inputs": {"x": [[1.0]]}, "outputs": {"z": 1}}]}))
    with FakeServing(HALF_PLUS_TWO) as fake:
        rc = smoke_main(["--saved-model", str(directory), "--golden", str(golden), *fake.hosts()])
        assert fake.calls == []
    err = capsys.readouterr().err
    assert rc == 2
    assert f"--golden {golden} request 1: outputs ['z'] not declared by the signature" in err


def test_signatures_must_match_and_previous_ones_stay(tmp_path: Path, capsys: Any) -> None:
    v1 = write_saved_model(tmp_path / "mnist" / "1", MNIST)
    only_default = {"serving_default": MNIST["serving_default"]}
    v2 = write_saved_model(tmp_path / "mnist" / "2", only_default, text=True)
    # Version 2 dropped predict_images: the host serves what v2 declares, but a client of v1
    # would break.
    with FakeServing(only_default, version=2) as fake:
        rc, doc, err = run_smoke(
            fake, v2, "--previous-saved-model", str(v1), "--golden", str(golden_classify(tmp_path)),
            capsys=capsys,
        )  # fmt: skip
    assert rc == 1
    assert statuses(doc)["signatures"] == "FAIL"
    assert detail(doc, "signatures") == (
        "signatures ['predict_images'] of the previous version 1 are no longer served "
        "(clients calling them would fail)"
    )
    assert doc["hosts"][0]["failed_check"] == "signatures"
    # Same version against its own previous: passes and says so.
    with FakeServing(MNIST, version=2) as fake:
        rc, doc, err = run_smoke(fake, v1, "--version", "2", "--previous-saved-model", str(v1),
                                 capsys=capsys)  # fmt: skip
    assert rc == 0, err
    assert detail(doc, "signatures").endswith("; all 2 of the previous version 1 still served")


def golden_classify(tmp_path: Path) -> Path:
    path = tmp_path / "classify.json"
    path.write_text(
        json.dumps(
            {"requests": [{"method": "classify", "examples": [{"x": 1.0}],
                           "results": [[["0", 0.25], ["1", 0.75]]]}]}
        )
    )  # fmt: skip
    return path


def test_served_signatures_differing_from_the_saved_model_fail(tmp_path: Path, capsys: Any) -> None:
    directory = write_saved_model(tmp_path / "m" / "1", MNIST)
    served = {
        "serving_default": MNIST["serving_default"],
        "predict_images": signature_def(
            "predict", {"images": ("DT_HALF", [-1, 28, 28])}, {"scores": ("DT_FLOAT", [-1, 10])}
        ),
        "extra": HALF_PLUS_TWO["serving_default"],
    }
    with FakeServing(MNIST, served_signatures=served) as fake:
        rc, doc, _ = run_smoke(fake, directory, capsys=capsys)
    assert rc == 1
    text = detail(doc, "signatures")
    assert "served signatures ['extra'] are not in the SavedModel" in text
    assert (
        "signature 'predict_images' input 'images' dtype DT_HALF, the SavedModel says DT_FLOAT"
    ) in text
    assert "input 'images' shape [-1, 28, 28], the SavedModel says [-1, 784]" in text


def test_nothing_callable_fails_the_host(tmp_path: Path, capsys: Any) -> None:
    """Only a classify signature, no warmup, no golden file: nothing was checked, so the host
    is not reported as passing."""
    only_classify = {"serving_default": MNIST["serving_default"]}
    directory = write_saved_model(tmp_path / "m" / "1", only_classify)
    with FakeServing(only_classify) as fake:
        rc, doc, err = run_smoke(fake, directory, capsys=capsys)
    assert rc == 1
    host = doc["hosts"][0]
    assert host["ok"] is False and host["failed_check"] == "answers"
    assert statuses(doc)["answers"] == "FAIL"
    assert detail(doc, "answers").startswith(
        "nothing could be called, so no answer of this host was checked: predict "
        "serving_default: input 'inputs' takes serialized tf.Example"
    )
    assert "answers: nothing could be called" in err


def test_saved_model_problems_exit_2(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "m" / "4").mkdir(parents=True)
    (tmp_path / "m" / "4" / "saved_model.cpb").write_bytes(b"")
    rc = smoke_main(["--saved-model", str(tmp_path / "m" / "4"), "--grpc", "h:1", "--rest", "h:2"])
    assert rc == 2
    assert "--saved-model " in (err := capsys.readouterr().err) and "cannot be read here" in err
    write_saved_model(tmp_path / "m" / "5", HALF_PLUS_TWO)
    rc = smoke_main(["--saved-model", str(tmp_path / "m" / "5"), "--saved-model-tags", "serve,gpu",
                     "--grpc", "h:1", "--rest", "h:2"])  # fmt: skip
    assert rc == 2 and "no MetaGraphDef with the tag set {gpu, serve}" in capsys.readouterr().err
    rc = smoke_main(["--saved-model", str(tmp_path / "m" / "5"), "--previous-saved-model",
                     str(tmp_path / "m" / "4"), "--grpc", "h:1", "--rest", "h:2"])  # fmt: skip
    assert rc == 2 and "--previous-saved-model " in capsys.readouterr().err


def test_model_and_version_default_from_the_directory(tmp_path: Path, capsys: Any) -> None:
    directory = write_saved_model(tmp_path / "half" / "0003", HALF_PLUS_TWO)
    with FakeServing(HALF_PLUS_TWO, model="half", version=3) as fake:
        rc = smoke_main(["--saved-model", str(directory), "--json", "--repeat", "1", *fake.hosts()])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["model"] == "half" and doc["version"] == 3


def test_grpc_errors_fail_the_check_with_the_code(tmp_path: Path, capsys: Any) -> None:
    directory = write_saved_model(tmp_path / "m" / "1", HALF_PLUS_TWO)
    with FakeServing(
        HALF_PLUS_TWO, answer=lambda c, r, n: grpc.StatusCode.INVALID_ARGUMENT
    ) as fake:
        rc, doc, _ = run_smoke(fake, directory, capsys=capsys)
    assert rc == 1
    assert "INVALID_ARGUMENT: scripted failure" in detail(doc, "predict serving_default")


def test_frame_matches_the_documented_layout() -> None:
    framed = frame(b"abc")
    assert framed[:8] == struct.pack("<Q", 3) and framed[12:15] == b"abc"
    assert struct.unpack("<I", framed[8:12])[0] == masked_crc32c(struct.pack("<Q", 3))


def test_golden_bare_values_for_one_input_and_one_output(tmp_path: Path) -> None:
    defs = {
        **HALF_PLUS_TWO,
        "text": signature_def("predict", {"s": ("DT_STRING", [])}, {"n": ("DT_INT32", [])}),
    }
    sigs = signatures_of(defs, tmp_path)
    doc = {
        "requests": [
            {"inputs": [[1.0]], "outputs": [[2.5]]},
            {"signature": "text", "inputs": {"b64": "AAE="}, "outputs": 7},
        ]
    }
    half, text = parse_golden(doc, "g.json", sigs)
    assert half.inputs["x"].tolist() == [[1.0]] and half.outputs["y"].tolist() == [[2.5]]
    assert text.inputs["s"].shape == () and text.inputs["s"].item() == b"\x00\x01"
    assert text.outputs["n"].dtype == np.int32 and int(text.outputs["n"]) == 7
    request = text.request("m", 3)
    assert request.inputs["s"].string_val == [b"\x00\x01"]
    with pytest.raises(GoldenError, match="a bare value only for a signature with one input"):
        parse_golden(
            {"requests": [{"signature": "ints", "inputs": [1], "outputs": {"o": [1]}}]},
            "g.json",
            signatures_of(REFERENCE_LIKE, tmp_path / "other"),
        )
