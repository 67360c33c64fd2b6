"""Verifier for the docker role: facts about the converged host, nothing assumed."""

import json

import pytest


def test_engine_package_installed_at_the_pinned_version(host):
    pinned = json.loads(host.file("/etc/ansible/facts.d/molecule.fact").content_string)
    package = host.package("docker.io")
    assert package.is_installed
    assert package.version == pinned["docker_version"]
    preferences = host.file("/etc/apt/preferences.d/tfs-fleet-docker").content_string
    assert "Package: docker.io" in preferences
    assert f"Pin: version {pinned['docker_version']}" in preferences
    assert "Pin-Priority: 1001" in preferences


def test_dockerd_active_and_enabled(host):
    service = host.service("docker")
    assert service.is_running
    assert service.is_enabled


def test_daemon_json_merged_not_overwritten(host):
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    # The role's keys ...
    assert config["log-driver"] == "json-file"
    # ... and the key that was there before converge.
    assert config["labels"] == ["tfs-fleet-test=foreign-key-kept"]


def test_running_engine_uses_the_merged_config(host):
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    # No storage-driver key: the engine chose overlay2 on its volume-backed /var/lib/docker.
    assert "storage-driver" not in json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert info["Driver"] == "overlay2", info["Driver"]
    assert "tfs-fleet-test=foreign-key-kept" in info["Labels"]


def test_a_container_runs_inside(host):
    host.check_output("docker load -i /root/probe.tar")
    out = host.check_output(
        "docker run --rm tfs-fleet/probe:latest echo hello-from-inner-container"
    )
    assert out.strip() == "hello-from-inner-container"


@pytest.mark.parametrize("user", ["tfsops"])
def test_users_in_docker_group(host, user):
    assert "docker" in host.user(user).groups
