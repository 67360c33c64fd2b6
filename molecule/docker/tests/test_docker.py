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
    # The role's keys (live-restore by default; side_effect's corrected run added log-level and
    # its reload max-concurrent-downloads; its rejected values, steps 1 and 2, left nothing) and
    # the key that was there before converge: nothing else.
    assert config == {
        "labels": ["tfs-fleet-test=foreign-key-kept"],
        "log-driver": "json-file",
        "live-restore": True,
        "log-level": "info",
        "max-concurrent-downloads": 4,
    }
    # The engine runs on this file: no previous copy is left to restore.
    assert not host.file("/etc/docker/daemon.json.tfs-fleet-previous").exists


# side_effect.yml's messages for values dockerd rejects (see there).
@pytest.fixture(scope="module")
def side_effect(host):
    return json.loads(host.file("/root/tfsf-side-effect.json").content_string)


@pytest.fixture(scope="module")
def release(host):
    """The host's Debian release: "12" (dockerd 20.10, no --validate) or "13" (dockerd 26.1)."""
    return host.system_info.release.split(".")[0]


def test_each_release_gets_its_own_engine(host, release):
    assert release in ("12", "13")
    want = {"12": "20.10.", "13": "26.1."}[release]
    assert host.check_output("docker version -f '{{.Server.Version}}'").startswith(want)


def test_a_value_the_schema_rejects_fails_naming_the_variable(side_effect, release):
    msg = side_effect["step1"]
    assert "was left unchanged" in msg and "ix docker_daemon_options" in msg, msg
    if release == "12":
        # Debian 12's dockerd 20.10 has no --validate: the schema decided, and says so.
        assert msg.startswith("docker_daemon_options.max-concurrent-downloads: '3' is not accepted")
        assert "has no --validate" in msg and "Docker 20.10" in msg, msg
    else:
        # Debian 13's dockerd 26.1 judges the file itself before it is written.
        assert msg.startswith(
            "docker_daemon_options.max-concurrent-downloads: dockerd --validate"
            " (/usr/sbin/dockerd (Docker 26.1)) rejects"
        ), msg
        assert "cannot unmarshal string" in msg, msg


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


def test_a_key_that_needs_a_restart_restarts_and_live_restore_keeps_the_container(side_effect):
    engine = side_effect["engine"]
    assert side_effect["step3_action"] == "restart"
    before, after = engine["before_restart"], engine["after_restart"]
    assert before["pid"] != after["pid"] and after["pid"] != "0", engine
    # live-restore: the probe container ran through the restart (and through step 2's).
    assert engine["start"]["container"].endswith(" true"), engine
    assert after["container"] == engine["start"]["container"], engine


def test_a_key_dockerd_reloads_is_reloaded_without_a_restart(side_effect):
    """Issue 24: max-concurrent-downloads changed by a reload (SIGHUP): dockerd's PID and the
    container's start stay, and dockerd's reload event carries the new value."""
    engine = side_effect["engine"]
    assert side_effect["step4_action"] == "reload"
    assert side_effect["step4"] == ""
    assert engine["after_reload"]["pid"] == engine["after_restart"]["pid"], engine
    assert engine["after_reload"]["container"] == engine["start"]["container"], engine
    events = side_effect["reload_events"]
    assert events and events[-1]["max-concurrent-downloads"] == "4", events
    assert events[-1]["live-restore"] == "true", events


def test_a_reload_dockerd_refuses_is_undone_without_a_restart(side_effect, release):
    engine = side_effect["engine"]
    msg = side_effect["step5"]
    # dockerd's own words (Debian 12: from the journal after the reload; 13: from --validate).
    assert "conflict labels for tfs-fleet-test=" in msg, msg
    if release == "12":
        assert side_effect["step5_action"] == "reload"
        assert "did not apply /etc/docker/daemon.json on reload" in msg, msg
        assert "docker_daemon_options (docker_daemon_options.labels)" in msg, msg
        assert "previous daemon.json was restored and reloaded" in msg, msg
    else:
        # dockerd 26.1's --validate refuses the file before it is written: no reload at all.
        assert side_effect["step5_action"] == "", side_effect
        assert msg.startswith("docker_daemon_options.labels: dockerd --validate"), msg
        assert "/etc/docker/daemon.json was left unchanged" in msg, msg
    assert engine["after_refused_reload"]["pid"] == engine["after_restart"]["pid"], engine
    assert engine["after_refused_reload"]["container"] == engine["start"]["container"], engine


def test_live_restore_is_on(host):
    assert host.check_output("docker info --format '{{.LiveRestoreEnabled}}'") == "true"


@pytest.mark.parametrize("user", ["tfsops"])
def test_users_in_docker_group(host, user):
    assert "docker" in host.user(user).groups
