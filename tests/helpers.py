"""Shared helpers for tests that drive ansible-playbook against throwaway systemd containers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TEST_IMAGE = os.environ.get("TFS_FLEET_TEST_IMAGE", "tfs-fleet/debian12-systemd:latest")
SYSTEMD_FLAGS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
    "--security-opt", "seccomp=unconfined", "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
]  # fmt: skip


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def require_docker_image(image: str = TEST_IMAGE) -> None:
    """Fail (never skip) with the fix when the engine or the test image is missing."""
    if docker("info", check=False).returncode != 0:
        raise AssertionError("no Docker engine answers: run `make docker-engine` first")
    if docker("image", "inspect", image, check=False).returncode != 0:
        raise AssertionError(f"image {image} is missing: run `make images` first")


@contextmanager
def systemd_container(prefix: str) -> Iterator[str]:
    """Run a systemd test host from TEST_IMAGE; yield its name; remove it afterwards."""
    require_docker_image()
    name = f"tfsf-test-{prefix}-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--name", name, *SYSTEMD_FLAGS, TEST_IMAGE, "/lib/systemd/systemd")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = docker("exec", name, "systemctl", "is-system-running", check=False)
            if state.stdout.strip() in {"running", "degraded"}:
                break
            time.sleep(0.5)
        yield name
    finally:
        docker("rm", "-f", "-v", name, check=False)


def write_inventory(path: Path, hosts: Sequence[str], group: str = "gpu_servers") -> Path:
    lines = ["all:", "  children:", f"    {group}:", "      hosts:"]
    for host in hosts:
        lines += [f"        {host}:", "          ansible_connection: community.docker.docker"]
    path.write_text("\n".join(lines) + "\n")
    return path


def ansible_playbook(
    playbook: str | Path, inventory: Path, *args: str, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *args],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout,
    )  # fmt: skip


def recap_changed(output: str) -> dict[str, int]:
    """Parse 'changed=N' per host from a PLAY RECAP."""
    result: dict[str, int] = {}
    recap = output.split("PLAY RECAP", 1)[-1]
    for line in recap.splitlines():
        if ": ok=" in line:
            host, stats = line.split(":", 1)
            fields = dict(item.split("=") for item in stats.split())
            result[host.strip()] = int(fields["changed"])
    return result
