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
    # The role's keys (side_effect's corrected run added debug; its rejected values, steps 1 and
    # 2, left nothing) and the key that was there before converge: nothing else.
    assert config == {
        "labels": ["tfs-fleet-test=foreign-key-kept"],
        "log-driver": "json-file",
        "debug": False,
    }
    # The engine runs on this file: no previous copy is left to restore.
    assert not host.file("/etc/docker/daemon.json.tfs-fleet-previous").exists


# side_effect.yml's messages for values dockerd rejects (see there).
@pytest.fixture(scope="module")
def side_effect(host):
    return json.loads(host.file("/root/tfsf-side-effect.json").content_string)


def test_a_value_the_schema_rejects_fails_naming_the_variable(side_effect):
    msg = side_effect["step1"]
    assert msg.startswith("docker_daemon_options.max-concurrent-downloads: '3' is not accepted")
    # Debian 12's dockerd 20.10 has no --validate: the schema decided, and says so.
    assert "has no --validate" in msg and "Docker 20.10" in msg, msg
    assert "was left unchanged" in msg and "Fix docker_daemon_options" in msg, msg


def test_a_value_dockerd_refuses_at_start_is_undone(side_effect):
    msg = side_effect["step2"]
    assert "docker did not come back" in msg, msg
    assert "docker_daemon_options (docker_daemon_options.hosts)" in msg, msg
    assert "restored and the engine runs on it again" in msg, msg
    # dockerd's own words, from the journal.
    assert "specified both as a flag and in the configuration file: hosts" in msg, msg


def test_a_corrected_rerun_restarts_at_once(side_effect, host):
    # No start limit in the way (systemctl reset-failed before the restart).
    assert side_effect["step3"] == ""
    assert host.service("docker").is_running


@pytest.mark.parametrize("user", ["tfsops"])
def test_users_in_docker_group(host, user):
    assert "docker" in host.user(user).groups
