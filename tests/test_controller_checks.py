"""The controller side of the SSH path: the executables check behind the controller preflight,
and scripts/ensure_controller_tools.sh."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ansible_collections.tfs_fleet.common.plugins.filter.paths import missing_executables

from helpers import BIN, REPO, ansible_playbook


def test_missing_executables_looks_on_the_given_path(tmp_path: Path) -> None:
    tool = tmp_path / "rsync"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (tmp_path / "ssh").write_text("not executable\n")
    assert missing_executables(["rsync", "ssh", "rsync"], path=str(tmp_path)) == ["ssh"]
    assert missing_executables("rsync", path=str(tmp_path)) == []


def run_tools_script(
    tmp_path: Path, keep: list[str], *args: str
) -> subprocess.CompletedProcess[str]:
    """scripts/ensure_controller_tools.sh with a PATH holding only `keep` (links to the real)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in keep:
        if name == "python3":  # the interpreter itself (a pyenv shim needs its own PATH)
            target = os.path.realpath(sys.executable)
        else:
            real = subprocess.run(
                ["sh", "-c", f"command -v {name}"], capture_output=True, text=True
            )
            assert real.returncode == 0, f"{name} is not on this machine's PATH"
            target = real.stdout.strip()
        link = bin_dir / name
        if not link.exists():
            link.symlink_to(target)
    return subprocess.run(
        ["/bin/bash", str(REPO / "scripts/ensure_controller_tools.sh"), *args],
        capture_output=True, text=True, env={**os.environ, "PATH": str(bin_dir)}, timeout=60,
    )  # fmt: skip


BASICS = ["python3", "make", "git", "awk", "id", "sed", "cut", "cat", "bash"]


def test_tools_script_names_everything_missing_in_one_message(tmp_path: Path) -> None:
    proc = run_tools_script(tmp_path, BASICS, "--check")
    assert proc.returncode == 1
    message = proc.stderr
    for package in ("rsync", "openssh-client", "debootstrap", "prometheus", "docker-registry",
                    "apache2-utils", "skopeo"):  # fmt: skip
        assert package in message, message
    assert message.count("missing on this machine") == 1
    assert "apt-get install -y" in message


def test_tools_script_passes_when_everything_is_there(tmp_path: Path) -> None:
    proc = run_tools_script(
        tmp_path,
        [*BASICS, "rsync", "ssh", "ssh-keygen", "debootstrap", "promtool", "docker-registry",
         "htpasswd", "skopeo"],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_tools_script_usage() -> None:
    help_ = subprocess.run(
        ["bash", str(REPO / "scripts/ensure_controller_tools.sh"), "--help"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert help_.returncode == 0 and "--check" in help_.stdout
    bad = subprocess.run(
        ["bash", str(REPO / "scripts/ensure_controller_tools.sh"), "--bogus"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert bad.returncode == 2 and "unknown argument" in bad.stderr


def preflight_run(
    tmp_path: Path, host_vars: str, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    """site.yml against one host that is never contacted (nothing listens on 127.0.0.1:9)."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  children:\n    gpu_servers:\n      hosts:\n        gpu-x:\n"
        "          ansible_host: 127.0.0.1\n          ansible_port: 9\n"
        "          ansible_user: ops\n" + host_vars
    )
    return ansible_playbook(
        REPO / "site.yml", inventory, timeout=180, env={"PATH": path} if path is not None else {}
    )


def test_controller_preflight_names_missing_programs_before_any_host(tmp_path: Path) -> None:
    proc = preflight_run(tmp_path, "", path=str(BIN))  # the venv only: no rsync, no ssh
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "lacks rsync, ssh" in out and "apt-get install rsync openssh-client" in out, out[-3000:]
    assert "Gathering Facts" not in out  # no host was contacted


def test_controller_preflight_refuses_a_missing_image_archive(tmp_path: Path) -> None:
    archive = tmp_path / "no-such-image.tar"
    proc = preflight_run(
        tmp_path,
        "          tfserving_image_source: archive\n"
        f"          tfserving_image_archive_path: {archive}\n",
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert f"tfserving_image_archive_path ({archive})" in out and "docker save" in out
    assert "Gathering Facts" not in out


def test_unknown_variable_check_knows_the_sandbox_inventory_plugin() -> None:
    # community.docker.docker_containers sets docker_name and docker_short_id on every sandbox
    # host: they carry the docker role's prefix, and must not stop every sandbox run.
    from ansible_collections.tfs_fleet.common.plugins.module_utils.preflight import (
        unknown_variables,
    )

    defined = ["docker_name", "docker_short_id", "docker_users", "docker_userz", "ansible_host"]
    problems = unknown_variables(defined, ["docker_users"], ["docker"])
    assert len(problems) == 1 and problems[0].startswith("docker_userz:"), problems
    assert "did you mean docker_users?" in problems[0]
