"""The build's downloads are pinned and its script quotes every value (issue 14, Downloads),
and the Dockerfiles follow TF Serving's own for 2.18+ (issue 17): rendered by the role into a
temporary directory on this machine (nothing is built or downloaded)."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_tfserving_image_role import PLAYBOOKS, parse, results, run_playbook, write_inventory

SOURCE = "a1" * 32
BAZELISK = "fd8fdff418a1758887520fa42da7e6ae39aefc788cf5e7f7bb8db6934d279fc4"


def _render(tmp_path: Path, hosts: dict[str, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    proc = run_playbook(PLAYBOOKS / "render.yml", write_inventory(tmp_path / "hosts.yml", hosts))
    return proc.returncode, parse(proc)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("downloads")
    odd = tmp / "it's a dir"  # a quote and spaces: the build script must still parse
    pin = {"tfserving_image_build_source_sha256": SOURCE}
    hosts = {
        "pinned-220": {"tfserving_image_version": "2.20.0", "tfserving_image_build_cuda": "12.5",
                       "tfserving_image_build_dir": str(odd), **pin},
        "pinned-217": {"tfserving_image_version": "2.17.0", "tfserving_image_build_cuda": "12.2",
                       "tfserving_image_build_dir": str(tmp / "217"), **pin},
        "unpinned": {"tfserving_image_build_cuda": "12.2",
                     "tfserving_image_build_dir": str(tmp / "none")},
    }  # fmt: skip
    rc, report = _render(tmp, hosts)
    return tmp, rc, report


def _files(base: Path, name: str) -> dict[str, str]:
    (context,) = base.glob("*-cuda*")
    return {p: (context / p).read_text() for p in ("devel/Dockerfile", "build.sh")}


@pytest.mark.slow
def test_downloads_are_checked_against_the_pinned_sha256(
    rendered: tuple[Path, int, dict[str, Any]],
) -> None:
    tmp = rendered[0]
    devel = _files(tmp / "it's a dir", "pinned-220")["devel/Dockerfile"]
    assert f"echo '{BAZELISK}  /usr/local/bin/bazel' | sha256sum -c -" in devel
    assert f"echo '{SOURCE}  /tmp/tensorflow-serving.tar.gz' | sha256sum -c -" in devel
    assert devel.index("sha256sum -c - \\\n && tar") > 0  # checked before it is unpacked
    assert "| tar" not in devel  # never piped from curl into tar unchecked


def test_build_script_quotes_every_value(rendered: tuple[Path, int, dict[str, Any]]) -> None:
    tmp = rendered[0]
    script = _files(tmp / "it's a dir", "pinned-220")["build.sh"]
    assert subprocess.run(["sh", "-n"], input=script, text=True, check=False).returncode == 0
    cd_line = next(line for line in script.splitlines() if line.startswith("cd "))
    assert shlex.split(cd_line)[1] == str(tmp / "it's a dir" / "2.20.0-cuda12.5")


def test_unpinned_source_fails_naming_the_variable(
    rendered: tuple[Path, int, dict[str, Any]],
) -> None:
    _, rc, report = rendered
    assert rc == 2
    failed = results(report, "Check the pinned checksums")["unpinned"]
    assert failed["failed"] is True
    assert "set tfserving_image_build_source_sha256" in failed["msg"]
    assert not (rendered[0] / "none").exists()


def test_2_18_and_later_build_like_upstream(rendered: tuple[Path, int, dict[str, Any]]) -> None:
    tmp = rendered[0]
    new = _files(tmp / "it's a dir", "pinned-220")["devel/Dockerfile"]
    old = _files(tmp / "217", "pinned-217")["devel/Dockerfile"]
    assert "--config=release --config=cuda_clang --copt=-fPIC" in new
    assert "clang-17 llvm-17 lld-17" in new
    assert "HERMETIC_CUDA_VERSION=12.5.1" in new
    assert "HERMETIC_CUDNN_VERSION=9.3.0" in new
    assert (
        "HERMETIC_CUDA_COMPUTE_CAPABILITIES=sm_70,sm_75,sm_80,sm_86,sm_89,sm_90,compute_90" in new
    )
    assert "TF_CUDA_COMPUTE_CAPABILITIES=7.0,7.5,8.0,8.6,8.9,9.0" in new  # Hopper included
    assert "--config=release --config=cuda " in old
    assert "clang-17" not in old
