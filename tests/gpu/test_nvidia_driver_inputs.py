"""nvidia_driver rejects bad variables before any change (check mode on localhost)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, ansible_playbook

PLAY = "- hosts: localhost\n  gather_facts: false\n  roles: [nvidia_driver]\n"


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    return ansible_playbook(
        playbook, "localhost,", "-c", "local", "--check",
        "-e", f"ansible_python_interpreter={sys.executable}", *extra, timeout=180,
    )  # fmt: skip


# A setting and what the failure says: each fails before any detection task runs.
BAD_INPUT = [
    ("nvidia_driver_flavor=gaming", "nvidia_driver_flavor must be one of: full, headless, got"),
    ("nvidia_driver_branch=latest", "nvidia_driver_branch must be a driver major version such as"),
    ("nvidia_driver_ubuntu_source=cuda_repo", "nvidia_driver_cuda_keyring_sha256 must be the sha"),
    ("nvidia_driver_debian_source=cuda_repo", "nvidia_driver_cuda_keyring_sha256 must be the sha"),
    ("nvidia_driver_debian_source=nvidia", "nvidia_driver_debian_source must be one of"),
]


@pytest.mark.parametrize(("setting", "message"), BAD_INPUT)
def test_bad_input_fails_before_detection_naming_the_variable(
    tmp_path: Path, setting: str, message: str
) -> None:
    proc = _run(tmp_path, "-e", setting)
    assert proc.returncode == 2
    assert message in proc.stdout
    assert "List PCI devices" not in proc.stdout


@pytest.mark.slow
def test_host_without_gpu_is_skipped_with_a_message(tmp_path: Path) -> None:
    empty_bus = tmp_path / "pci"
    empty_bus.mkdir()
    proc = _run(tmp_path, "-e", f"nvidia_driver_pci_devices_path={empty_bus}")
    assert proc.returncode == 0, proc.stdout
    assert "no NVIDIA GPU on the PCI bus" in proc.stdout
    assert "nvidia_driver_force: true" in proc.stdout


@pytest.mark.slow
def test_cuda_repo_source_with_a_checksum_passes_the_check(tmp_path: Path) -> None:
    empty_bus = tmp_path / "pci"
    empty_bus.mkdir()
    proc = _run(
        tmp_path, "-e", "nvidia_driver_ubuntu_source=cuda_repo",
        "-e", "nvidia_driver_cuda_keyring_sha256=" + "0" * 64,
        "-e", f"nvidia_driver_pci_devices_path={empty_bus}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout
    assert "no NVIDIA GPU on the PCI bus" in proc.stdout


def test_keyring_download_is_checked() -> None:
    # The task that fetches the cuda-keyring .deb carries its pinned checksum.
    import yaml

    ubuntu = yaml.safe_load((REPO / "roles/nvidia_driver/tasks/install_ubuntu.yml").read_text())
    block = next(t for t in ubuntu if "block" in t)["block"]
    download = next(t for t in block if "ansible.builtin.get_url" in t)["ansible.builtin.get_url"]
    assert download["checksum"] == "sha256:{{ nvidia_driver_cuda_keyring_sha256 }}"
