"""Toolkit against the stand-in server in its container: the exported model as the serving role
mounts it, and the smoke test's verdicts (pass, missing version, wrong model)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import REPO, docker, free_ports, require_docker_image

pytestmark = pytest.mark.docker
IMAGE = "tfs-fleet/serving-standin:latest"
REFERENCE = REPO.parent / "shared" / "reference-models" / "saved_model_half_plus_two_cpu"


@pytest.fixture(scope="module")
def export_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("exports")
    subprocess.run(
        [sys.executable, str(REPO / "scripts/export_model.py"), "--demo", "half_plus_two",
         "--export-base", str(base)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return base


def serve(model_dir: Path) -> Iterator[tuple[str, str]]:
    """Run the stand-in container as the tfserving role does; yield (grpc, rest) on loopback."""
    require_docker_image(IMAGE)
    grpc, rest = free_ports(2)
    name = f"tfsf-test-integration-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{grpc}:8500",
           "-p", f"127.0.0.1:{rest}:8501", "-v", f"{model_dir}:/models/half_plus_two:ro",
           "-e", "MODEL_NAME=half_plus_two", IMAGE,
           "--file_system_poll_wait_seconds=1")  # fmt: skip
    try:
        yield f"127.0.0.1:{grpc}", f"127.0.0.1:{rest}"
    finally:
        docker("rm", "-f", name, check=False)


@pytest.fixture(scope="module")
def good_server(export_base: Path) -> Iterator[tuple[str, str]]:
    yield from serve(export_base / "half_plus_two")


def smoke(manifest: Path, grpc: str, rest: str, *extra: str) -> subprocess.CompletedProcess[str]:
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts/smoke_test.py"), "--manifest", str(manifest),
         "--grpc", grpc, "--rest", rest, "--wait", "60", *extra],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert time.monotonic() - start < 120
    return result


def test_smoke_test_passes_against_the_exported_model(
    export_base: Path, good_server: tuple[str, str]
) -> None:
    grpc, rest = good_server
    result = smoke(export_base / "half_plus_two/1/tfs_fleet_manifest.json", grpc, rest, "--json")
    assert result.returncode == 0, result.stderr
    host = json.loads(result.stdout)["hosts"][0]
    assert host["ok"] is True and host["version"] == 1
    assert {name: c["status"] for name, c in host["checks"].items()} == {
        "status": "PASS",
        "signatures": "PASS",
        "predict serving_default": "PASS",
        "warmup": "NOT RUN",  # the demo export writes no warmup records by default
        "golden": "PASS",  # the manifest's sample
    }


def test_smoke_test_fails_on_a_missing_version(
    export_base: Path, good_server: tuple[str, str]
) -> None:
    grpc, rest = good_server
    manifest = export_base / "half_plus_two/1/tfs_fleet_manifest.json"
    result = smoke(manifest, grpc, rest, "--version", "7", "--wait", "3")
    assert result.returncode == 1
    assert grpc in result.stderr and "status" in result.stderr and "7" in result.stderr


def test_smoke_test_fails_on_a_wrong_model(export_base: Path, tmp_path: Path) -> None:
    # TF Serving's reference model under our model's name: same math, other signature keys.
    wrong = tmp_path / "wrong"
    shutil.copytree(REFERENCE / "00000123", wrong / "1")
    for server in serve(wrong):
        grpc, rest = server
        manifest = export_base / "half_plus_two/1/tfs_fleet_manifest.json"
        result = smoke(manifest, grpc, rest, "--version", "1")
        assert result.returncode == 1
        assert grpc in result.stderr and "signatures" in result.stderr
