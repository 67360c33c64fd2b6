"""The smoke test against SavedModels written by other code (issue 22), the user-style models of
tests/usermodels/make_user_models.py: TF1 graphs saved with SavedModelBuilder (text and binary),
TF Serving's mnist shape (a classify signature on serialized tf.Example plus a numeric predict
one), a Keras 3 ``model.export()``, with and without warmup records, served by the stand-in
(``python -m tfs_standin``: TF Serving's APIs, Classify and Regress included, on real
SavedModels). No tfs_fleet manifest anywhere."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from standin.standin_helpers import StandinProcess, serve_models
from toolkit_helpers import REPO, VENV_PYTHON
from usermodels import make_user_models as mum

from tfs_fleet.smoke_cli import main as smoke_main
from tfs_fleet.tfrecord import frame, read_records
from tfs_fleet.warmup import read_warmup

pytestmark = pytest.mark.slow  # TensorFlow exports and a stand-in process

WARMUP = Path(mum.WARMUP_FILE)
SERVED = ["mnist", "mnist_nowarm", "nan", "shape", "evolving", "keras"]


def user_model(
    root: Path, served: str, version: int, name: str, variant: str = "good", **kw: Any
) -> Path:
    """make_user_models's ``name`` (its ``variant``) as version ``version`` of the served model
    ``served``: root/served/version, moved there from make_user_models's own layout."""
    written = mum.write_model(root / ".written" / served, name, version, variant, **kw)
    (root / served).mkdir(exist_ok=True)
    return written.rename(root / served / str(version))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tfsf-user-models")
    mnist = user_model(root, "mnist", 1, "mnist_tf1", saved_model_format="pbtxt")
    mum.write_warmup(mnist, "mnist_tf1", per_signature=2)  # a 1-row and a 2-row request each
    user_model(root, "mnist_nowarm", 1, "mnist_tf1")  # saved_model.pb
    user_model(root, "nan", 1, "keras3", "nan")
    user_model(root, "shape", 1, "keras3", "bad_shape")
    user_model(root, "evolving", 1, "mnist_tf1")
    user_model(root, "evolving", 2, "mnist_tf1", "no_signature")
    user_model(root, "keras", 1, "keras3")
    return root


@pytest.fixture(scope="module")
def standin(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinProcess]:
    workdir = tmp_path_factory.mktemp("tfsf-user-models-standin")
    server = serve_models({served: base / served for served in SERVED}, workdir)
    yield server
    server.stop()


def smoke(
    standin: StandinProcess, version_dir: Path, *extra: str, capsys: Any
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
    assert len(records) == 4
    assert path.read_bytes() == b"".join(frame(r) for r in records)
    assert [r.call for r in read_warmup(path)] == ["Predict", "Predict", "Classify", "Classify"]


def test_a_tf1_model_we_did_not_export_passes(
    standin: StandinProcess, base: Path, capsys: Any
) -> None:
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
    assert detail(doc, "warmup").startswith("4 records replayed (2 Classify, 2 Predict)")
    assert "answered by 2 warmup Classify requests" in detail(doc, "predict serving_default")


def test_the_classify_signature_is_not_run_without_warmup(
    standin: StandinProcess, base: Path, capsys: Any
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


def golden_doc(shift: float = 0.0) -> dict[str, Any]:
    """Two requests on 2 rows with make_user_models's expected answers: a classify (scores best
    first; ``shift`` added to the third score of the second example) and a predict_images."""
    rows = mum.sample_rows("mnist_tf1", 2)
    classify = mum.golden("mnist_tf1", "serving_default", rows=2)["expected_outputs"]
    scores = classify["scores"].astype(np.float64)
    scores[1, 2] += shift
    predict = mum.golden("mnist_tf1", "predict_images", rows=2)
    return {
        "rtol": 1e-5,
        "atol": 1e-6,
        "requests": [
            {"name": "two rows", "method": "classify",
             "examples": [{"x": row} for row in rows.tolist()],
             "results": [[[label.decode(), float(s)] for label, s in zip(c, r, strict=True)]
                         for c, r in zip(classify["classes"], scores, strict=True)]},
            {"signature": "predict_images",
             "inputs": {k: v.tolist() for k, v in predict["inputs"].items()},
             "outputs": {k: v.tolist() for k, v in predict["expected_outputs"].items()}},
        ],
    }  # fmt: skip


def test_golden_requests_check_the_answers(
    standin: StandinProcess, base: Path, tmp_path: Path, capsys: Any
) -> None:
    golden = tmp_path / "golden.json"
    golden.write_text(json.dumps(golden_doc()))
    rc, doc, err = smoke(standin, base / "mnist_nowarm" / "1", "--golden", str(golden),
                         capsys=capsys)  # fmt: skip
    assert rc == 0, err
    assert statuses(doc)["golden"] == "PASS"
    assert statuses(doc)["predict serving_default"] == "PASS"  # by the golden classify
    golden.write_text(json.dumps(golden_doc(shift=0.01)))
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
    doc = golden_doc()
    inputs = doc["requests"][1]["inputs"]
    inputs["image"] = inputs.pop("images")  # the input is called images
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


def test_a_model_answering_nan_fails(standin: StandinProcess, base: Path, capsys: Any) -> None:
    rc, doc, _ = smoke(standin, base / "nan" / "1", capsys=capsys)
    assert rc == 1
    for signature in ("serve", "serving_default"):  # Keras 3's two endpoints, one function
        assert statuses(doc)[f"predict {signature}"] == "FAIL"
        assert detail(doc, f"predict {signature}") == (
            "answer 1 of 2: output 'output_0' is not finite: 3 NaN of 3 values"
        )
    assert doc["hosts"][0]["failed_check"] == "predict serve"


def test_an_answer_that_does_not_fit_its_signature_fails(
    standin: StandinProcess, base: Path, capsys: Any
) -> None:
    rc, doc, _ = smoke(standin, base / "shape" / "1", capsys=capsys)
    assert rc == 1
    assert statuses(doc)["signatures"] == "PASS"  # served as declared...
    assert detail(doc, "predict serving_default") == (  # ...but answered otherwise
        "answer 1 of 2: output 'output_0' shape [1, 3] does not match the signature's [-1, 5]"
    )


def test_a_version_that_drops_a_signature_fails(
    standin: StandinProcess, base: Path, capsys: Any
) -> None:
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


def test_a_keras_3_export_passes(standin: StandinProcess, base: Path, capsys: Any) -> None:
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
