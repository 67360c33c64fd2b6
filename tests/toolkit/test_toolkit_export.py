"""Export with real TensorFlow: numbering, refusal, atomicity, signatures, manifest, validation."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
import toolkit_models
from ansible_collections.tfs_fleet.common.plugins.module_utils.model_manifest import verify
from tensorflow_serving.apis import prediction_log_pb2
from toolkit_helpers import REPO, VENV_PYTHON, export_demo, quiet

from tfs_fleet import export as ex
from tfs_fleet.export_cli import main as export_main
from tfs_fleet.manifest import MANIFEST_NAME, load_manifest
from tfs_fleet.tensors import from_tensor_proto

X = np.array([[1.0], [2.0], [5.0]], np.float32)


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        p.relative_to(root).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_cli_numbers_versions_and_refuses_an_existing_one(tmp_path: Path, capsys: Any) -> None:
    base = tmp_path / "models"
    assert export_main(["--demo", "half_plus_two", "--export-base", str(base)]) == 0
    assert export_main(["--demo", "half_plus_two", "--export-base", str(base)]) == 0
    model_dir = base / "half_plus_two"
    assert sorted(p.name for p in model_dir.iterdir() if p.name.isdigit()) == ["1", "2"]
    out = capsys.readouterr().out.split()
    assert out == [str(model_dir / "1"), str(model_dir / "2")]
    before = snapshot(model_dir)
    assert (
        export_main(["--demo", "half_plus_two", "--export-base", str(base), "--version", "2"]) == 4
    )
    err = capsys.readouterr().err
    assert "--version 2:" in err and "already exists" in err
    assert snapshot(model_dir) == before


def test_library_refuses_a_zero_padded_twin(tmp_path: Path) -> None:
    """TF Serving reads '0003' as version 3: --version 3 must be refused too."""
    (tmp_path / "half_plus_two" / "0003").mkdir(parents=True)
    with pytest.raises(ex.VersionExistsError, match="0003 already exists"):
        export_demo(tmp_path, version=3)
    assert export_demo(tmp_path).version == 4


@pytest.mark.slow
def test_subprocess_cli_example(tmp_path: Path) -> None:
    """The README example, as a user runs it."""
    proc = subprocess.run(
        [
            VENV_PYTHON,
            str(REPO / "scripts" / "export_model.py"),
            "--demo",
            "half_plus_two",
            "--export-base",
            str(tmp_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["version"] == 1 and doc["path"] == str(tmp_path / "half_plus_two" / "1")
    assert "export: validate done in" in proc.stderr and "export: published" in proc.stderr
    assert (tmp_path / "half_plus_two" / "1" / "saved_model.pb").is_file()


def test_staging_is_non_numeric_and_nothing_numeric_is_left_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []

    def failing_validate(staging: Path, *args: Any) -> None:
        seen.append(sorted(p.name for p in staging.parent.iterdir()))
        assert (staging / "saved_model.pb").is_file()
        raise ex.ValidationError("validation: injected failure")

    monkeypatch.setattr(ex, "validate", failing_validate)
    with pytest.raises(ex.ValidationError):
        export_demo(tmp_path)
    [names] = seen
    staging = [n for n in names if n.startswith(ex.STAGING_PREFIX)]
    assert len(staging) == 1 and not staging[0].isdigit()
    assert not any(n.isdigit() for n in names)
    left = sorted(p.name for p in (tmp_path / "half_plus_two").iterdir())
    assert left == []  # staging removed, no lock taken, nothing numeric


def test_validation_failure_publishes_nothing(tmp_path: Path, capsys: Any) -> None:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    toolkit_models.save_checkpoint(str(ckpt), 0.5, 2.0)
    rc = export_main(
        [
            "--checkpoint",
            str(ckpt),
            "--model-fn",
            "toolkit_models:noisy",
            "--model-name",
            "noisy",
            "--export-base",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 3
    assert "validation: signature 'serving_default' of the reloaded SavedModel differs" in err
    assert "the version was not published" in err
    assert not any(
        p.name.isdigit() or p.name.startswith(ex.STAGING_PREFIX)
        for p in (tmp_path / "out" / "noisy").iterdir()
    )


def test_both_signatures_serve_the_same_math(good_export: ex.ExportResult) -> None:
    loaded = tf.saved_model.load(str(good_export.path), tags=["serve"])
    assert set(loaded.signatures) == {"serving_default", "tf_example"}
    direct = loaded.signatures["serving_default"](x=tf.constant(X))["pred"].numpy()
    examples = ex.serialize_examples(X, "x")
    parsed = loaded.signatures["tf_example"](examples=tf.constant(examples))["pred"].numpy()
    np.testing.assert_allclose(direct, 0.5 * X + 2)
    np.testing.assert_allclose(parsed, direct)


def test_manifest_content_and_checksums(good_export: ex.ExportResult, tmp_path: Path) -> None:
    manifest = load_manifest(good_export.manifest_path)
    doc = manifest.doc
    assert doc["model_name"] == "half_plus_two" and doc["version"] == 1
    assert doc["tensorflow_version"] == tf.__version__
    assert doc["signatures"]["serving_default"] == {
        "method_name": "tensorflow/serving/predict",
        "inputs": {"x": {"dtype": "DT_FLOAT", "shape": [-1, 1]}},
        "outputs": {"pred": {"dtype": "DT_FLOAT", "shape": [-1, 1]}},
    }
    assert doc["signatures"]["tf_example"]["inputs"] == {
        "examples": {"dtype": "DT_STRING", "shape": [-1]}
    }
    golden = manifest.golden()
    np.testing.assert_array_equal(golden.inputs["x"], X)
    np.testing.assert_allclose(golden.expected["pred"], 0.5 * X + 2)
    files = set(doc["files"])
    on_disk = {
        p.relative_to(good_export.path).as_posix()
        for p in good_export.path.rglob("*")
        if p.is_file()
    } - {MANIFEST_NAME}
    assert files == on_disk and "saved_model.pb" in files and ex.WARMUP_FILE in files
    assert verify(str(good_export.path)) == (len(files), [])
    # a changed byte is detected (checked on a copy)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(good_export.path), str(copy)], check=True)
    index = copy / "variables" / "variables.index"
    data = bytearray(index.read_bytes())
    data[0] ^= 0xFF  # same size, other bytes
    index.write_bytes(bytes(data))
    assert verify(str(copy)) == (len(files), ["sha256 differs: variables/variables.index"])
    index.write_bytes(b"tampered")
    assert verify(str(copy))[1] == ["size differs: variables/variables.index"]


def test_warmup_file_holds_prediction_logs(good_export: ex.ExportResult) -> None:
    records = list(tf.data.TFRecordDataset(str(good_export.path / ex.WARMUP_FILE)))
    assert len(records) == 5
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in records]
    request = logs[3].predict_log.request
    assert request.model_spec.name == "half_plus_two"
    assert request.model_spec.signature_name == "serving_default"
    np.testing.assert_array_equal(from_tensor_proto(request.inputs["x"]), X[0:1])


def test_warmup_above_1000_is_refused(tmp_path: Path, capsys: Any) -> None:
    rc = export_main(
        ["--demo", "half_plus_two", "--export-base", str(tmp_path), "--warmup", "1001"]
    )
    assert rc == 2 and "--warmup 1001" in capsys.readouterr().err
    assert not tmp_path.joinpath("half_plus_two").exists()


def test_image_demo_with_custom_names(tmp_path: Path) -> None:
    opts = ex.ExportOptions(
        export_base=tmp_path,
        model_name="image",
        input_key="image",
        output_key="probs",
        example_signature="tf_example",
        warmup_records=2,
    )
    result = ex.export(ex.demo_source("image"), opts, progress=quiet)
    sigs = load_manifest(result.manifest_path).signatures
    assert sigs["serving_default"]["inputs"] == {
        "image": {"dtype": "DT_FLOAT", "shape": [-1, 224, 224, 3]}
    }
    assert sigs["serving_default"]["outputs"] == {"probs": {"dtype": "DT_FLOAT", "shape": [-1, 10]}}
    golden = load_manifest(result.manifest_path).golden()
    assert golden.inputs["image"].shape == (1, 224, 224, 3)
    np.testing.assert_allclose(golden.expected["probs"].sum(), 1.0, rtol=1e-5)
    # deterministic: a second export of the demo gives the same golden output
    again = ex.export(ex.demo_source("image"), opts, progress=quiet)
    np.testing.assert_array_equal(
        load_manifest(again.manifest_path).golden().expected["probs"], golden.expected["probs"]
    )


def test_keras_model_file(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input(shape=(4,))
    outputs = keras.layers.Dense(2, kernel_initializer="ones", bias_initializer="zeros")(inputs)
    path = tmp_path / "net.keras"
    keras.Model(inputs, outputs).save(path)
    rc = export_main(["--keras-model", str(path), "--export-base", str(tmp_path / "out")])
    assert rc == 0
    manifest = load_manifest(tmp_path / "out" / "net" / "1" / MANIFEST_NAME)
    golden = manifest.golden()
    np.testing.assert_allclose(
        golden.expected["pred"],
        np.repeat(golden.inputs["x"].sum(axis=1, keepdims=True), 2, 1),
        rtol=1e-5,
    )


def test_checkpoint_source_restores_the_latest_checkpoint(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    toolkit_models.save_checkpoint(str(ckpt), 1.0, 1.0)
    toolkit_models.save_checkpoint(str(ckpt), 3.0, -1.0)  # latest
    source = ex.checkpoint_source(ckpt, "toolkit_models:linear")
    np.testing.assert_allclose(source.call(tf.constant(X)).numpy(), 3.0 * X - 1.0)


def test_warmup_records_is_the_same_flag(tmp_path: Path) -> None:
    """--warmup-records (the adopt spelling) and --warmup are one option for every source."""
    rc = export_main(
        ["--demo", "half_plus_two", "--export-base", str(tmp_path), "--warmup-records", "2"]
    )
    assert rc == 0
    manifest = load_manifest(tmp_path / "half_plus_two" / "1" / MANIFEST_NAME)
    assert manifest.doc["warmup_records"] == 2 and "adopted" not in manifest.doc
    records = list(tf.data.TFRecordDataset(str(tmp_path / "half_plus_two" / "1" / ex.WARMUP_FILE)))
    assert len(records) == 2
