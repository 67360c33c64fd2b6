"""export_model.py --saved-model: adopting the SavedModels users already have (issue 22).

The user models come from tests/usermodels/make_user_models.py (a TF1 SavedModelBuilder export
saved as text, a Keras 3 model.export, TF Serving's mnist tutorial), written once per module.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from toolkit_helpers import REPO, VENV_PYTHON, quiet
from usermodels import make_user_models as mum

from tfs_fleet import export as ex
from tfs_fleet.export_cli import main as export_main
from tfs_fleet.manifest import MANIFEST_NAME, load_manifest


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every entry below root: mode, mtime and bytes (directories: no bytes)."""
    out = {}
    for path in sorted([root, *root.rglob("*")]):
        st = path.lstat()
        data = path.read_bytes() if path.is_file() else b""
        out[path.relative_to(root).as_posix()] = (st.st_mode, st.st_mtime_ns, data)
    return out


def assert_files_match_manifest(version_dir: Path, doc: dict[str, Any]) -> None:
    on_disk = {
        p.relative_to(version_dir).as_posix(): p
        for p in version_dir.rglob("*")
        if p.is_file() and p.name != MANIFEST_NAME
    }
    assert set(doc["files"]) == set(on_disk)
    for rel, path in on_disk.items():
        data = path.read_bytes()
        assert doc["files"][rel] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def adopt(source: Path, base: Path, **kw: Any) -> ex.ExportResult:
    name = kw.pop("model_name", source.parent.name)
    opts = ex.ExportOptions(export_base=base, model_name=name, **kw)
    return ex.adopt(source, opts, progress=quiet)


def examples_tfrecord(path: Path, name: str = "mnist_tf1") -> Path:
    import tensorflow as tf

    inputs = mum.sample_inputs(name, "serving_default")
    with tf.io.TFRecordWriter(str(path)) as writer:
        for raw in inputs["inputs"]:
            writer.write(bytes(raw))
    return path


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """{"plain": good models without warmup, "warm": with their own warmup records,
    "nan"/"bad_shape"/"no_signature": variants}: {kind: {model name: version dir}}."""
    base = Path(tmp_path_factory.mktemp("users"))
    out = {
        "plain": mum.write_models(base / "plain", version=3),
        "warm": mum.write_models(base / "warm", ["keras3", "mnist_tf1"], version=3, warmup=True),
        "nan": mum.write_models(base / "nan", ["keras3"], version=4, variant="nan"),
        "bad_shape": mum.write_models(base / "bad", ["seed_tf1"], version=4, variant="bad_shape"),
    }
    # the user's warmup file of the good version left in a version that lost a signature
    lost = mum.write_model(base / "lost", "mnist_tf1", version=4, variant="no_signature")
    (lost / "assets.extra").mkdir()
    shutil.copyfile(out["warm"]["mnist_tf1"] / mum.WARMUP_FILE, lost / mum.WARMUP_FILE)
    out["no_signature"] = {"mnist_tf1": lost}
    return out


@pytest.fixture
def read_only_seed(users: dict[str, dict[str, Path]], tmp_path: Path) -> Iterator[Path]:
    """A copy of seed_tf1 with every file and directory read-only."""
    source = tmp_path / "ro" / "seed_tf1" / "3"
    shutil.copytree(users["plain"]["seed_tf1"], source)
    for path in [source, *source.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    yield source
    for path in [source, *source.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


# ---- the three user models ------------------------------------------------------------------


@pytest.mark.slow
def test_adopt_seed_tf1_read_only_source_left_unchanged(
    read_only_seed: Path, tmp_path: Path
) -> None:
    before = snapshot(read_only_seed)
    result = adopt(read_only_seed, tmp_path / "out")
    assert snapshot(read_only_seed) == before
    assert result.version == 1 and result.path == tmp_path / "out" / "seed_tf1" / "1"
    assert (result.path / "saved_model.pbtxt").is_file()
    # new files with this process's modes, not the source's read-only ones (as root, whom
    # read-only modes do not stop, the snapshot above is what shows the source untouched)
    assert all(p.stat().st_mode & stat.S_IWUSR for p in [result.path, *result.path.rglob("*")])
    assert sorted(p.name for p in result.path.parent.iterdir()) == [
        ".tfs-fleet-export.lock",
        "1",
    ]
    manifest = load_manifest(result.manifest_path)
    doc = manifest.doc
    assert doc["format"] == 1 and doc["model_name"] == "seed_tf1" and doc["version"] == 1
    assert doc["signatures"] == {
        "serving_default": {
            "method_name": "tensorflow/serving/predict",
            "inputs": {"x": {"dtype": "DT_FLOAT", "shape": [-1, 4, 4, 1]}},
            "outputs": {"pred": {"dtype": "DT_INT64", "shape": [-1]}},
        }
    }
    golden = manifest.golden()
    assert golden.signature == "serving_default" and golden.inputs["x"].shape == (1, 4, 4, 1)
    want = mum.expected_outputs("seed_tf1", "serving_default", golden.inputs)
    np.testing.assert_array_equal(golden.expected["pred"], want["pred"])
    assert doc["warmup_records"] == 0 and not (result.path / ex.WARMUP_FILE).exists()
    adopted = doc["adopted"]
    assert adopted["source_dir"] == str(read_only_seed.resolve())
    assert adopted["checks"]["serving_default"]["status"] == "ran"
    assert adopted["checks"]["serving_default"]["output_shapes"] == {"pred": [1]}
    assert_files_match_manifest(result.path, doc)


@pytest.mark.slow
def test_adopt_keras3_adds_warmup_records(
    users: dict[str, dict[str, Path]], tmp_path: Path
) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    rc = export_main(
        [
            "--saved-model",
            str(users["plain"]["keras3"]),
            "--export-base",
            str(tmp_path),
            "--warmup-records",
            "4",
            "--version",
            "7",
        ]
    )
    assert rc == 0
    version = tmp_path / "keras3" / "7"
    manifest = load_manifest(version / MANIFEST_NAME)
    doc = manifest.doc
    assert set(doc["signatures"]) == {"serve", "serving_default"}
    assert doc["signatures"]["serve"]["inputs"] == {
        "features": {"dtype": "DT_FLOAT", "shape": [-1, 4]}
    }
    assert doc["signatures"]["serve"]["outputs"] == {
        "output_0": {"dtype": "DT_FLOAT", "shape": [-1, 3]}
    }
    golden = manifest.golden()
    assert golden.signature == "serving_default"
    want = mum.expected_outputs("keras3", "serving_default", golden.inputs)
    np.testing.assert_allclose(golden.expected["output_0"], want["output_0"], rtol=1e-5)
    assert doc["warmup_records"] == 4 and doc["adopted"]["warmup_from"] == "export_model.py"
    records = list(tf.data.TFRecordDataset(str(version / ex.WARMUP_FILE)))
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in records]
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == [
        "serve",
        "serving_default",
        "serve",
        "serving_default",
    ]
    assert all(log.predict_log.request.model_spec.name == "keras3" for log in logs)
    assert_files_match_manifest(version, doc)


@pytest.mark.slow
def test_adopt_mnist_tf1_runs_the_numeric_signature_only(
    users: dict[str, dict[str, Path]], tmp_path: Path
) -> None:
    result = adopt(users["plain"]["mnist_tf1"], tmp_path)
    doc = load_manifest(result.manifest_path).doc
    assert doc["signatures"]["serving_default"]["method_name"] == "tensorflow/serving/classify"
    assert doc["signatures"]["predict_images"]["inputs"] == {
        "images": {"dtype": "DT_FLOAT", "shape": [-1, mum.MNIST_FEATURES]}
    }
    checks = result.checks
    assert checks["predict_images"]["status"] == "ran"
    assert checks["serving_default"]["status"] == "not run"
    assert "DT_STRING" in checks["serving_default"]["reason"]
    assert doc["adopted"]["checks"] == checks
    golden = load_manifest(result.manifest_path).golden()
    assert golden.signature == "predict_images"
    want = mum.expected_outputs("mnist_tf1", "predict_images", golden.inputs)
    np.testing.assert_allclose(golden.expected["scores"], want["scores"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_adopt_mnist_tf1_keeps_the_users_warmup(
    users: dict[str, dict[str, Path]], tmp_path: Path, capsys: Any
) -> None:
    source = users["warm"]["mnist_tf1"]
    rc = export_main(
        ["--saved-model", str(source), "--export-base", str(tmp_path), "--warmup-records", "9"]
    )
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "the model has its own warmup records (2), kept" in err
    version = tmp_path / "mnist_tf1" / "1"
    warmup = (version / ex.WARMUP_FILE).read_bytes()
    assert warmup == (source / ex.WARMUP_FILE).read_bytes()
    doc = load_manifest(version / MANIFEST_NAME).doc
    assert doc["warmup_records"] == 2 and doc["adopted"]["warmup_from"] == "the source model"
    checks = doc["adopted"]["checks"]
    assert checks["serving_default"]["status"] == "ran"  # its examples came from the warmup
    assert "warmup record" in checks["serving_default"]["inputs_from"]
    assert checks["serving_default"]["output_shapes"] == {"classes": [1, 10], "scores": [1, 10]}


@pytest.mark.slow
def test_adopt_with_examples_sample_and_golden_classification(
    users: dict[str, dict[str, Path]], tmp_path: Path
) -> None:
    sample = examples_tfrecord(tmp_path / "examples.tfrecord")
    result = adopt(
        users["plain"]["mnist_tf1"],
        tmp_path / "out",
        sample_path=sample,
        golden_signature="serving_default",
        warmup_records=3,
    )
    assert result.checks["serving_default"]["inputs_from"] == f"from --sample {sample}"
    assert result.checks["serving_default"]["input_shapes"] == {"inputs": [3]}
    golden = load_manifest(result.manifest_path).golden()
    assert golden.signature == "serving_default"
    want = mum.expected_outputs("mnist_tf1", "serving_default", golden.inputs)
    np.testing.assert_array_equal(golden.expected["classes"], want["classes"])
    np.testing.assert_allclose(golden.expected["scores"], want["scores"], rtol=1e-5, atol=1e-6)

    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    records = list(tf.data.TFRecordDataset(str(result.path / ex.WARMUP_FILE)))
    kinds = [
        prediction_log_pb2.PredictionLog.FromString(r.numpy()).WhichOneof("log_type")
        for r in records
    ]
    assert kinds == ["predict_log", "classify_log", "predict_log"]


# ---- refusals --------------------------------------------------------------------------------


def test_a_directory_that_is_no_saved_model_is_a_usage_error(tmp_path: Path, capsys: Any) -> None:
    empty = tmp_path / "exports" / "empty"
    empty.mkdir(parents=True)
    (empty / "variables").mkdir()
    rc = export_main(["--saved-model", str(empty), "--export-base", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"--saved-model {empty}: not a SavedModel directory" in err
    assert "saved_model.pb" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    # a model base instead of a version directory: the hint names a version
    (tmp_path / "exports" / "base" / "12").mkdir(parents=True)
    (tmp_path / "exports" / "base" / "12" / "saved_model.pb").write_bytes(b"")
    rc = export_main(
        ["--saved-model", str(tmp_path / "exports" / "base"), "--export-base", str(tmp_path)]
    )
    assert rc == 2 and "give one of them, e.g. --saved-model" in capsys.readouterr().err
    rc = export_main(["--saved-model", str(tmp_path / "nope"), "--export-base", str(tmp_path)])
    assert rc == 2 and "no such directory" in capsys.readouterr().err


def test_export_only_flags_are_refused_with_saved_model(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "saved_model.pb").write_bytes(b"")
    args = ["--saved-model", str(tmp_path / "m" / "1"), "--export-base", str(tmp_path / "o")]
    assert export_main([*args, "--example-signature", "tf_example"]) == 2
    assert "--example-signature does not apply to --saved-model" in capsys.readouterr().err
    assert (
        export_main(["--demo", "half_plus_two", "--export-base", "x", "--golden-signature", "a"])
        == 2
    )
    assert "--golden-signature is only used with --saved-model" in capsys.readouterr().err


def published(model_dir: Path) -> list[str]:
    return sorted(
        p.name
        for p in model_dir.iterdir()
        if p.name.isdigit() or p.name.startswith(ex.STAGING_PREFIX)
    )


@pytest.mark.slow
def test_a_model_answering_nan_is_refused(
    users: dict[str, dict[str, Path]], tmp_path: Path, capsys: Any
) -> None:
    source = users["nan"]["keras3"]
    before = snapshot(source)
    rc = export_main(["--saved-model", str(source), "--export-base", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 3, err
    assert "output 'output_0'" in err and "non-finite value(s)" in err
    assert "nothing was published" in err
    assert published(tmp_path / "keras3") == []
    assert snapshot(source) == before


@pytest.mark.slow
def test_a_declared_shape_the_model_does_not_answer_is_refused(
    users: dict[str, dict[str, Path]], tmp_path: Path, capsys: Any
) -> None:
    """tf.saved_model.load refuses this TF1 graph (it prunes with the declared shape); the
    session loader, as TF Serving's, loads it, and the answer shows the lie."""
    rc = export_main(
        ["--saved-model", str(users["bad_shape"]["seed_tf1"]), "--export-base", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert rc == 3, err
    assert "loading with TF1's session loader" in err
    assert "output 'pred'" in err and "has shape [1], the signature declares [-1, 3]" in err
    assert published(tmp_path / "seed_tf1") == []


@pytest.mark.slow
def test_a_warmup_record_for_a_lost_signature_is_refused(
    users: dict[str, dict[str, Path]], tmp_path: Path
) -> None:
    with pytest.raises(ex.ValidationError, match=r"asks for signature 'predict_images'.*no such"):
        adopt(users["no_signature"]["mnist_tf1"], tmp_path)
    assert published(tmp_path / "mnist_tf1") == []


@pytest.mark.slow
def test_numeric_samples_go_where_they_fit(
    users: dict[str, dict[str, Path]], tmp_path: Path
) -> None:
    rows = mum.sample_rows("mnist_tf1", rows=2)
    np.save(tmp_path / "rows.npy", rows)
    result = adopt(users["plain"]["mnist_tf1"], tmp_path / "a", sample_path=tmp_path / "rows.npy")
    assert result.checks["predict_images"]["input_shapes"] == {"images": [2, 16]}
    assert result.checks["serving_default"]["status"] == "not run"
    golden = load_manifest(result.manifest_path).golden()
    np.testing.assert_array_equal(golden.inputs["images"], rows)
    # a sample of another shape is not forced on a signature: built inputs instead
    np.save(tmp_path / "wide.npy", np.zeros((2, 5), np.float32))
    result = adopt(users["plain"]["keras3"], tmp_path / "b", sample_path=tmp_path / "wide.npy")
    assert result.checks["serve"]["inputs_from"].startswith("built from the signature")
    np.savez(tmp_path / "named.npz", features=mum.sample_rows("keras3", rows=4))
    result = adopt(users["plain"]["keras3"], tmp_path / "c", sample_path=tmp_path / "named.npz")
    for name in ("serve", "serving_default"):
        assert result.checks[name]["input_shapes"] == {"features": [4, 4]}
        assert result.checks[name]["inputs_from"] == f"from --sample {tmp_path / 'named.npz'}"


@pytest.mark.slow
def test_nothing_runnable_and_unknown_golden_signature_are_usage_errors(
    users: dict[str, dict[str, Path]], tmp_path: Path
) -> None:
    only_classify = tmp_path / "src" / "mnist_tf1" / "4"
    shutil.copytree(users["no_signature"]["mnist_tf1"], only_classify)
    shutil.rmtree(only_classify / "assets.extra")
    with pytest.raises(ex.UsageError, match=r"no signature could be run \(serving_default: "):
        adopt(only_classify, tmp_path)
    with pytest.raises(ex.UsageError, match="--golden-signature 'serving_default': not usable"):
        adopt(users["plain"]["mnist_tf1"], tmp_path, golden_signature="serving_default")
    with pytest.raises(ex.UsageError, match=r"--sample .*: neither \.npy/\.npz nor a TFRecord"):
        bogus = tmp_path / "sample.bin"
        bogus.write_bytes(b"not a tfrecord at all")
        adopt(users["plain"]["mnist_tf1"], tmp_path, sample_path=bogus)
    assert published(tmp_path / "mnist_tf1") == []


@pytest.mark.slow
def test_version_rules_are_the_exports(users: dict[str, dict[str, Path]], tmp_path: Path) -> None:
    source = users["plain"]["seed_tf1"]
    assert adopt(source, tmp_path).version == 1
    assert adopt(source, tmp_path).version == 2
    with pytest.raises(ex.VersionExistsError, match="--version 2"):
        adopt(source, tmp_path, version=2)
    assert (
        export_main(
            ["--saved-model", str(source), "--export-base", str(tmp_path), "--version", "1"]
        )
        == 4
    )


def make_read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)


@pytest.mark.slow
def test_subprocess_cli_adopts_a_read_only_source(users: dict[str, dict[str, Path]]) -> None:
    """As a user runs it, progress on stderr, the result on stdout; the source read-only for
    the exporting user: as root (whom modes do not stop) the command runs as nobody."""
    as_root = os.getuid() == 0
    work = Path(tempfile.mkdtemp(prefix="tfsf-adopt-ro-"))  # outside root's 0700 pytest dir
    try:
        work.chmod(0o755)
        source = work / "exports" / "keras3" / "3"
        shutil.copytree(users["warm"]["keras3"], source)
        make_read_only(work / "exports")
        out, home = work / "out", work / "home"
        out.mkdir()
        home.mkdir()
        command = [
            VENV_PYTHON,
            str(REPO / "scripts" / "export_model.py"),
            "--saved-model",
            str(source),
            "--export-base",
            str(out),
            "--json",
        ]
        if as_root:
            for path in (out, home):
                os.chown(path, 65534, 65534)
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        before = snapshot(source)
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "HOME": str(home)},
        )
        assert proc.returncode == 0, proc.stderr
        assert snapshot(source) == before
        doc = json.loads(proc.stdout)
        assert doc["model_name"] == "keras3" and doc["path"] == str(out / "keras3" / "1")
        assert set(doc["signature_checks"]) == {"serve", "serving_default"}
        for line in ("adopt: copy ...", "adopt: load done in", "adopt: run signatures done in"):
            assert line in proc.stderr
        assert "adopt: replay the model's warmup records done in" in proc.stderr
        assert f"adopt: published {out / 'keras3' / '1'}" in proc.stderr
        manifest = load_manifest(out / "keras3" / "1" / MANIFEST_NAME)
        assert manifest.doc["warmup_records"] == 2
    finally:
        for path in [work, *work.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(work, ignore_errors=True)
