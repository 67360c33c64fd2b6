"""CLI errors: missing paths, bad MODULE:FUNCTION, wrong signature keys, bad arguments."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import toolkit_models
from toolkit_helpers import REPO, VENV_PYTHON

from tfs_fleet.export_cli import main as export_main
from tfs_fleet.smoke_cli import main as smoke_main


def script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VENV_PYTHON, str(REPO / "scripts" / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_is_complete_and_needs_no_tensorflow() -> None:
    export_help = script("export_model.py", "--help")
    assert export_help.returncode == 0 and "loading TensorFlow" not in export_help.stderr
    for flag in (
        "--demo",
        "--keras-model",
        "--checkpoint",
        "--model-fn",
        "--export-base",
        "--model-name",
        "--version",
        "--signature-name",
        "--input-key",
        "--output-key",
        "--example-signature",
        "--warmup",
        "--sample",
        "--rtol",
        "exit status",
    ):
        assert flag in export_help.stdout, flag
    smoke_help = script("smoke_test.py", "--help")
    assert smoke_help.returncode == 0
    for flag in (
        "--grpc",
        "--rest",
        "--manifest",
        "--saved-model",
        "--saved-model-tags",
        "--previous-saved-model",
        "--golden",
        "--model",
        "--version",
        "--wait",
        "--json",
        "--rtol",
        "--atol",
        "NOT RUN",
        '"requests"',
        '"examples"',
        '"results"',
        "exit status",
    ):
        assert flag in smoke_help.stdout, flag


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--keras-model", "/nonexistent/net.keras"],
            "--keras-model /nonexistent/net.keras: no such file",
        ),
        (
            ["--checkpoint", "/nonexistent/ckpt", "--model-fn", "m:f"],
            "--checkpoint /nonexistent/ckpt: no such directory or checkpoint prefix",
        ),
        (["--checkpoint", "/tmp"], "--checkpoint needs --model-fn MODULE:FUNCTION"),
        (
            ["--demo", "half_plus_two", "--model-fn", "m:f"],
            "--model-fn is only used with --checkpoint",
        ),
        (
            ["--checkpoint", "/tmp", "--model-fn", "no_colon"],
            "--model-fn 'no_colon': expected MODULE:FUNCTION",
        ),
        (
            ["--demo", "half_plus_two", "--version", "0"],
            "--version 0: versions are positive integers",
        ),
        (
            ["--demo", "half_plus_two", "--sample", "/nonexistent.npy"],
            "--sample /nonexistent.npy: no such file",
        ),
    ],
)
def test_export_argument_errors_come_before_tensorflow(
    tmp_path: Path, args: list[str], message: str
) -> None:
    proc = script("export_model.py", *args, "--export-base", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "loading TensorFlow" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_export_base_that_is_a_file(tmp_path: Path, capsys: Any) -> None:
    base = tmp_path / "file"
    base.write_text("x")
    assert export_main(["--demo", "half_plus_two", "--export-base", str(base)]) == 2
    assert f"--export-base {base}: exists and is not a directory" in capsys.readouterr().err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tfsf-toolkit-cli-ckpt")
    toolkit_models.save_checkpoint(str(directory), 0.5, 2.0)
    return directory


@pytest.mark.parametrize(
    ("model_fn", "extra", "message"),
    [
        ("no_such_module_xyz:build", [], "cannot import module 'no_such_module_xyz'"),
        ("toolkit_models:missing", [], "module 'toolkit_models' has no function 'missing'"),
        ("toolkit_models:linear", ["--checkpoint-attr", "net"], "does not match the model"),
        ("toolkit_models:not_a_model", [], "returned str; it must return a Keras model"),
        ("toolkit_models:broken", [], "raised RuntimeError: builder failed on purpose"),
    ],
)
def test_bad_model_function(
    tmp_path: Path, checkpoint: Path, capsys: Any, model_fn: str, extra: list[str], message: str
) -> None:
    rc = export_main(
        [
            "--checkpoint",
            str(checkpoint),
            "--model-fn",
            model_fn,
            *extra,
            "--export-base",
            str(tmp_path),
        ]
    )
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not any(p.name.isdigit() for p in tmp_path.rglob("*"))


def test_checkpoint_directory_without_checkpoint(tmp_path: Path, capsys: Any) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = export_main(
        [
            "--checkpoint",
            str(empty),
            "--model-fn",
            "toolkit_models:linear",
            "--export-base",
            str(tmp_path / "out"),
        ]
    )
    assert rc == 2
    assert "holds no checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--example-signature", "serving_default"],
            "--example-signature 'serving_default': same key as --signature-name",
        ),
        (["--signature-name", "bad key!"], "--signature-name 'bad key!': use letters"),
        (["--input-key", ""], "--input-key '': use letters"),
    ],
)
def test_wrong_signature_keys_are_refused(
    tmp_path: Path, capsys: Any, args: list[str], message: str
) -> None:
    rc = export_main(["--demo", "half_plus_two", "--export-base", str(tmp_path), *args])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not any(p.name.isdigit() for p in tmp_path.rglob("*"))


def test_smoke_argument_errors(tmp_path: Path) -> None:
    proc = script(
        "smoke_test.py", "--manifest", "/nonexistent.json", "--grpc", "h:1", "--rest", "h:2"
    )
    assert proc.returncode == 2 and "--manifest /nonexistent.json: no such file" in proc.stderr
    proc = script(
        "smoke_test.py", "--manifest", "/x", "--grpc", "h:1", "--grpc", "g:1", "--rest", "h:2"
    )
    assert proc.returncode == 2 and "2 --grpc and 1 --rest given" in proc.stderr
    proc = script("smoke_test.py", "--manifest", "/x", "--grpc", "nohost", "--rest", "h:2")
    assert proc.returncode == 2 and "--grpc 'nohost': expected HOST:PORT" in proc.stderr
    proc = script(
        "smoke_test.py", "--manifest", "/x", "--grpc", "h:1", "--rest", "h:2", "--wait", "-1"
    )
    assert proc.returncode == 2 and "-1: must be > 0" in proc.stderr
    proc = script("smoke_test.py", "--grpc", "h:1", "--rest", "h:2")
    assert proc.returncode == 2 and "one of the arguments --saved-model --manifest" in proc.stderr
    proc = script(
        "smoke_test.py", "--manifest", "/x", "--saved-model", "/y", "--grpc", "h:1", "--rest", "h:2"
    )
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr
    proc = script("smoke_test.py", "--saved-model", str(tmp_path), "--grpc", "h:1", "--rest", "h:2")
    assert proc.returncode == 2
    assert f"--saved-model {tmp_path}: no saved_model.pb or saved_model.pbtxt" in proc.stderr


def test_smoke_bad_manifest(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"format": 1, "model_name": "m"}))
    assert smoke_main(["--manifest", str(path), "--grpc", "h:1", "--rest", "h:2"]) == 2
    assert "missing keys ['version', 'signatures', 'sample']" in capsys.readouterr().err
    path.write_text("{not json")
    assert smoke_main(["--manifest", str(path), "--grpc", "h:1", "--rest", "h:2"]) == 2
    assert "not readable JSON" in capsys.readouterr().err
