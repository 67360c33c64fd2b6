"""scripts/smoke_test.py against the in-process TF Serving stand-in (real SavedModels)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from toolkit_helpers import REPO, VENV_PYTHON
from toolkit_serving_server import Serving

from tfs_fleet.manifest import MANIFEST_FORMAT
from tfs_fleet.smoke_cli import main as smoke_main

SCRIPT = REPO / "scripts" / "smoke_test.py"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VENV_PYTHON, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False
    )


def hosts(*servers: Serving) -> list[str]:
    out: list[str] = []
    for s in servers:
        out += ["--grpc", s.grpc_target, "--rest", s.rest_target]
    return out


def cli_args(export: Any, *options: str, on: tuple[Serving, ...]) -> list[str]:
    """``--manifest`` of the export, the options, then the --grpc/--rest pair of each server."""
    return ["--manifest", str(export.manifest_path), *options, *hosts(*on)]


def test_passes_against_the_exported_model(serving: Serving, good_export: Any) -> None:
    proc = run_cli(*cli_args(good_export, "--version", "1", "--json", "--wait", "5", on=(serving,)))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and doc["model"] == "half_plus_two"
    [host] = doc["hosts"]
    assert host["grpc"] == serving.grpc_target and host["version"] == 1
    checks = host["checks"]
    assert {name: c["status"] for name, c in checks.items()} == {
        "status": "PASS",
        "signatures": "PASS",
        "predict serving_default": "PASS",
        # The tf.Example signature takes strings and the export's warmup records call only
        # serving_default: nothing checks its answers, and the report says so.
        "predict tf_example": "NOT RUN",
        "warmup": "PASS",
        "golden": "PASS",
    }
    assert all(checks[c]["ok"] for c in ("status", "signatures", "warmup", "golden"))
    assert checks["predict tf_example"]["ok"] is None
    assert checks["warmup"]["detail"].startswith("5 records replayed (5 Predict)")
    assert host["not_run"] == ["predict tf_example"]
    assert doc["saved_model"] == str(good_export.path) and doc["saved_model_format"] == "pb"
    assert 0 < host["latency_ms"]["median"] < 5000


def test_table_output_and_default_version(serving: Serving, good_export: Any, capsys: Any) -> None:
    rc = smoke_main(["--manifest", str(good_export.manifest_path), "--wait", "5", *hosts(serving)])
    out = capsys.readouterr().out
    assert rc == 0
    header, *rows = out.strip().splitlines()
    assert header.split() == ["GRPC", "REST", "VERSION", "CHECK", "RESULT", "DETAIL"]
    checks = [" ".join(row.split()[3:5]) for row in rows]
    assert checks == [
        "status PASS",
        "signatures PASS",
        "predict serving_default",
        "predict tf_example",
        "warmup PASS",
        "golden PASS",
        "=> host",
    ]
    assert all(row.split()[:3] == [serving.grpc_target, serving.rest_target, "1"] for row in rows)
    assert rows[2].split()[5] == "PASS" and rows[3].split()[5:7] == ["NOT", "RUN"]
    assert rows[-1].split()[5] == "PASS" and "not verified for predict tf_example" in rows[-1]


def test_fails_against_a_wrong_model(wrong_serving: Serving, good_export: Any) -> None:
    proc = run_cli(
        "--manifest", str(good_export.manifest_path), "--wait", "5", *hosts(wrong_serving)
    )
    assert proc.returncode == 1
    assert f"FAIL host {wrong_serving.grpc_target}" in proc.stderr
    assert (
        f"golden: manifest {good_export.manifest_path} sample (predict serving_default): "
        "answer 1 of 5: output 'pred' differs from the expected output"
    ) in proc.stderr
    assert "max abs diff 1" in proc.stderr  # 0.5x+3 vs 0.5x+2


def test_fails_against_a_missing_version(serving: Serving, good_export: Any, capsys: Any) -> None:
    rc = smoke_main(
        cli_args(good_export, "--version", "9", "--wait", "1", "--poll", "0.2", on=(serving,))
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert f"FAIL host {serving.grpc_target}" in err
    assert "status: model 'half_plus_two' version 9 not AVAILABLE after 1 s" in err
    assert "NOT_FOUND" in err


def test_fails_on_a_wrong_signature_key(serving: Serving, good_export: Any, capsys: Any) -> None:
    rc = smoke_main(cli_args(good_export, "--signature", "nope", "--wait", "5", on=(serving,)))
    err = capsys.readouterr().err
    assert rc == 1
    assert "signatures: signature 'nope' not served; the model has" in err
    assert "'serving_default'" in err and "'tf_example'" in err


def test_one_bad_host_fails_the_fleet(
    serving: Serving, wrong_serving: Serving, good_export: Any, capsys: Any
) -> None:
    rc = smoke_main(cli_args(good_export, "--json", "--wait", "5", on=(serving, wrong_serving)))
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert rc == 1 and doc["ok"] is False
    assert [h["ok"] for h in doc["hosts"]] == [True, False]
    # The wrong model lacks the tf_example signature (first failure) and answers wrongly.
    bad = doc["hosts"][1]
    assert bad["failed_check"] == "signatures"
    assert bad["checks"]["golden"]["status"] == "FAIL"
    assert wrong_serving.grpc_target in captured.err
    assert serving.grpc_target not in captured.err


def test_waits_until_the_version_is_available(
    serving: Serving, good_export: Any, capsys: Any
) -> None:
    serving.set_state("half_plus_two", 1, "LOADING")
    timer = threading.Timer(1.0, serving.set_state, ("half_plus_two", 1, "AVAILABLE"))
    timer.start()
    try:
        rc = smoke_main(
            cli_args(
                good_export,
                "--version",
                "1",
                "--wait",
                "10",
                "--poll",
                "0.2",
                "--json",
                on=(serving,),
            )
        )
    finally:
        timer.join()
        serving.set_state("half_plus_two", 1, "AVAILABLE")
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert doc["hosts"][0]["checks"]["status"]["seconds"] >= 0.8


def test_metadata_mismatch_is_reported(
    serving: Serving, good_export: Any, tmp_path: Path, capsys: Any
) -> None:
    manifest = json.loads(good_export.manifest_path.read_text())
    manifest["signatures"]["serving_default"]["inputs"]["x"]["dtype"] = "DT_INT64"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    rc = smoke_main(["--manifest", str(path), "--wait", "5", *hosts(serving)])
    assert rc == 1
    # No SavedModel beside this manifest: the signatures it records are the reference.
    assert (
        "signatures: signature 'serving_default' input 'x' dtype DT_FLOAT, the manifest says "
        "DT_INT64"
    ) in capsys.readouterr().err


def reference_manifest(path: Path) -> Path:
    """A hand-written manifest for TF Serving's own half_plus_two (x -> y, y = 0.5x + 2)."""
    info = {"dtype": "DT_FLOAT", "shape": [-1, 1]}
    doc = {
        "format": MANIFEST_FORMAT,
        "model_name": "reference",
        "version": 123,
        "signatures": {
            "serving_default": {
                "method_name": "tensorflow/serving/predict",
                "inputs": {"x": info},
                "outputs": {"y": info},
            }
        },
        "sample": {
            "signature": "serving_default",
            "inputs": {"x": {"dtype": "float32", "shape": [3, 1], "values": [1.0, 2.0, 5.0]}},
            "expected_outputs": {
                "y": {"dtype": "float32", "shape": [3, 1], "values": [2.5, 3.0, 4.5]}
            },
        },
    }
    path.write_text(json.dumps(doc))
    return path


def test_reference_model_passes(serving: Serving, reference_model: Path, tmp_path: Path) -> None:
    """A manifest beside a copy of TF Serving's reference SavedModel: its five signatures are
    read from the SavedModel, the sample is the golden check."""
    version_dir = tmp_path / "reference" / "123"
    shutil.copytree(reference_model / "00000123", version_dir)
    manifest = reference_manifest(version_dir / "tfs_fleet_manifest.json")
    proc = run_cli("--manifest", str(manifest), "--version", "123", "--wait", "5", *hosts(serving))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].split()[2] == "123"
    assert "golden                    PASS" in proc.stdout


def test_reference_model_without_a_manifest(serving: Serving, reference_model: Path) -> None:
    """TF Serving's own half_plus_two, no manifest: the numeric signatures are built, the
    tf.Example ones (classify, regress) are NOT RUN with their reason."""
    proc = run_cli(
        "--saved-model", str(reference_model / "00000123"), "--model", "reference", "--json",
        "--wait", "5", *hosts(serving),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    host = json.loads(proc.stdout)["hosts"][0]
    assert host["version"] == 123  # the directory's 00000123
    assert {n: c["status"] for n, c in host["checks"].items()} == {
        "status": "PASS",
        "signatures": "PASS",
        "predict classify_x_to_y": "NOT RUN",
        "predict regress_x2_to_y3": "PASS",
        "predict regress_x_to_y": "NOT RUN",
        "predict regress_x_to_y2": "NOT RUN",
        "predict serving_default": "PASS",
        "warmup": "NOT RUN",
        "golden": "NOT RUN",
    }


def test_reference_model_is_not_our_export(serving: Serving, good_export: Any, capsys: Any) -> None:
    """Our manifest (output key 'pred') against the reference model (output 'y')."""
    rc = smoke_main(cli_args(good_export, "--model", "reference", "--wait", "5", on=(serving,)))
    assert rc == 1
    err = capsys.readouterr().err
    assert "signatures: signatures ['tf_example'] of the SavedModel are not served" in err
    assert "signature 'serving_default' output keys ['y'], the SavedModel declares ['pred']" in err


def test_unreachable_host_fails_status(good_export: Any, capsys: Any) -> None:
    rc = smoke_main(
        [
            "--manifest",
            str(good_export.manifest_path),
            "--wait",
            "0.5",
            "--poll",
            "0.2",
            "--timeout",
            "1",
            "--grpc",
            "127.0.0.1:9",
            "--rest",
            "127.0.0.1:9",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert "FAIL host 127.0.0.1:9" in err and "status:" in err and "UNAVAILABLE" in err


def test_second_signature_is_checked_in_metadata(serving: Serving, good_export: Any) -> None:
    """--signature tf_example: it must be served (every signature is compared with the
    SavedModel anyway)."""
    rc = smoke_main(
        ["--manifest", str(good_export.manifest_path), "--signature", "tf_example",
         "--wait", "5", *hosts(serving)]
    )  # fmt: skip
    assert rc == 0


def test_wait_is_bounded_against_a_silent_host(good_export: Any, capsys: Any) -> None:
    """A port that accepts TCP but never speaks HTTP/2: --wait bounds the whole status check
    even though each request's own deadline (--timeout 20) is longer."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        rc = smoke_main(
            ["--manifest", str(good_export.manifest_path), "--wait", "1.5", "--timeout", "20",
             "--grpc", target, "--rest", target]
        )  # fmt: skip
        elapsed = time.monotonic() - start
    assert rc == 1
    assert elapsed < 4.0
    assert "status: model 'half_plus_two' any version not AVAILABLE after 1.5 s" in (
        capsys.readouterr().err
    )
