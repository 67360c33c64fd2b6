"""The docker role against throwaway systemd containers: what this machine can run for real
short of the full molecule scenario (bad input, the docker-ce path with a mirror, check mode)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import ansible_playbook, docker, recap_changed, systemd_container, write_inventory

pytestmark = pytest.mark.docker
MIRROR = "file:///srv/docker-mirror/debian"
HOST_SETUP = "playbooks/host_setup.yml"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with systemd_container("docker-role") as name:
        inventory = write_inventory(tmp_path_factory.mktemp("inv") / "hosts.yml", [name])
        # The mirror serves a real ASCII-armored key (Debian's archive key stands in for Docker's).
        docker("exec", name, "sh", "-c",
               "mkdir -p /srv/docker-mirror/debian && mkdir -m 700 /tmp/g && "
               "gpg --homedir /tmp/g --import "
               "/usr/share/keyrings/debian-archive-keyring.gpg 2>/dev/null; "
               "gpg --homedir /tmp/g --export --armor > /srv/docker-mirror/debian/gpg")  # fmt: skip
        yield name, inventory


@pytest.fixture(scope="module")
def mirror_key_fingerprint(host: tuple[str, Path]) -> str:
    """The first fingerprint of the key the test mirror serves (it stands in for Docker's)."""
    out = docker("exec", host[0], "gpg", "--with-colons", "--show-keys",
                 "/srv/docker-mirror/debian/gpg").stdout  # fmt: skip
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


def exists(name: str, path: str) -> bool:
    return docker("exec", name, "test", "-e", path, check=False).returncode == 0


def test_invalid_variable_fails_before_any_change(host: tuple[str, Path]) -> None:
    name, inventory = host
    result = ansible_playbook("site.yml", inventory, "-e", "docker_install_source=snap")
    assert result.returncode != 0
    assert "docker_install_source" in result.stdout
    assert "distribution, docker_ce" in result.stdout  # the valid choices are named
    assert not exists(name, "/etc/docker/daemon.json")
    assert docker("exec", name, "dpkg", "-s", "docker.io", check=False).returncode != 0


def test_wrong_type_fails_before_any_change(host: tuple[str, Path]) -> None:
    name, inventory = host
    result = ansible_playbook(
        "site.yml", inventory, "-e", '{"docker_daemon_options": ["storage-driver", "vfs"]}'
    )
    assert result.returncode != 0
    assert "docker_daemon_options" in result.stdout
    assert not exists(name, "/etc/docker/daemon.json")


def test_docker_ce_check_mode_changes_nothing(host: tuple[str, Path]) -> None:
    name, inventory = host
    result = ansible_playbook(
        HOST_SETUP, inventory, "--check", "--diff",
        "-e", "docker_install_source=docker_ce", "-e", f"docker_ce_repo_url={MIRROR}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    # The diff shows what would be written, and nothing was.
    assert f"URIs: {MIRROR}" in result.stdout
    assert not exists(name, "/etc/apt/sources.list.d/docker.sources")
    assert not exists(name, "/etc/apt/keyrings/docker.asc")


def test_docker_ce_key_with_another_fingerprint_is_not_trusted(host: tuple[str, Path]) -> None:
    name, inventory = host
    # The default fingerprint is Docker's; the mirror serves another key.
    result = ansible_playbook(
        HOST_SETUP, inventory, "--tags", "docker_repo",
        "-e", "docker_install_source=docker_ce", "-e", f"docker_ce_repo_url={MIRROR}",
    )  # fmt: skip
    assert result.returncode != 0
    assert (
        "not docker_ce_repo_key_fingerprint 9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
        in result.stdout
    )
    assert not exists(name, "/etc/apt/keyrings/docker.asc")
    assert not exists(name, "/etc/apt/sources.list.d/docker.sources")


def test_docker_ce_repository_rendered_for_a_mirror(
    host: tuple[str, Path], mirror_key_fingerprint: str
) -> None:
    name, inventory = host
    args = ["--tags", "docker_repo", "-e", "docker_install_source=docker_ce",
            "-e", f"docker_ce_repo_url={MIRROR}",
            "-e", f"docker_ce_repo_key_fingerprint={mirror_key_fingerprint}"]  # fmt: skip
    first = ansible_playbook(HOST_SETUP, inventory, *args)
    assert first.returncode == 0, first.stdout[-3000:]
    source = docker("exec", name, "cat", "/etc/apt/sources.list.d/docker.sources").stdout
    fields = dict(line.split(": ", 1) for line in source.splitlines() if ": " in line)
    assert fields["URIs"] == MIRROR
    assert fields["Suites"] == "bookworm"
    assert fields["Components"] == "stable"
    assert fields["Signed-By"] == "/etc/apt/keyrings/docker.asc"
    key = docker("exec", name, "cat", "/etc/apt/keyrings/docker.asc").stdout
    assert key.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert not exists(name, "/etc/apt/trusted.gpg.d/docker.gpg")  # signed-by, not a global key
    second = ansible_playbook(HOST_SETUP, inventory, *args)
    assert second.returncode == 0
    assert recap_changed(second.stdout) == {name: 0}
