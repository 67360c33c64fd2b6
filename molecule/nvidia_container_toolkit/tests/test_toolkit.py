"""Verifier for the nvidia_container_toolkit scenario: packages, repository, pin, daemon.json and
the handlers' effects, read from the converged host."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

VERSION = "1.20.0-1"
# Newer than the pin, offered by the fixture repository only (build_fixture_repo.sh).
NEWER = "1.21.0-1"
TOOLKIT = [
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
]
SOURCE = "/etc/apt/sources.list.d/tfs-fleet-nvidia-container-toolkit.sources"
KEYRING = "/etc/apt/keyrings/tfs-fleet-nvidia-container-toolkit.asc"
PREFERENCES = "/etc/apt/preferences.d/tfs-fleet-nvidia-container-toolkit"


@pytest.mark.parametrize("name", TOOLKIT)
def test_toolkit_packages_pinned_below_newer_release(host, name):
    package = host.package(name)
    assert package.is_installed
    assert package.version == VERSION  # the fixture repository also offers NEWER
    policy = host.check_output(f"apt-cache policy {name}")
    assert NEWER in policy
    assert f"Candidate: {VERSION}" in policy


def test_legacy_nvidia_docker2_installed(host):
    assert host.package("nvidia-docker2").version == "2.14.0-1"


def test_installed_from_the_fixture_repository(host):
    readme = host.file("/usr/share/doc/nvidia-container-toolkit/README.tfs-fleet-fixture")
    assert "TEST FIXTURE" in readme.content_string


def test_repository_source_uses_mirror_and_keyring(host):
    source = host.file(SOURCE).content_string
    assert "URIs: file:///srv/tfsf-fixture/nvidia-repo/deb/$(ARCH)" in source
    assert "Suites: /" in source
    assert f"Signed-By: {KEYRING}" in source
    keyring = host.file(KEYRING)
    assert keyring.mode == 0o644
    fixture_key = host.file("/srv/tfsf-fixture/nvidia-repo/gpgkey").content_string
    assert keyring.content_string == fixture_key
    assert not host.file("/etc/apt/trusted.gpg").exists  # no apt_key


def test_apt_preferences_pin_every_package(host):
    prefs = host.file(PREFERENCES).content_string
    for name in TOOLKIT:
        assert f"Package: {name}\nPin: version {VERSION}\nPin-Priority: 1001" in prefs
    assert "Package: nvidia-docker2\nPin: version 2.14.0-1" in prefs


def _daemon_json(host):
    return json.loads(host.file("/etc/docker/daemon.json").content_string)


def test_daemon_json_has_nvidia_runtime(host):
    config = _daemon_json(host)
    assert config["runtimes"]["nvidia"] == {"path": "nvidia-container-runtime", "runtimeArgs": []}


def test_daemon_json_keeps_foreign_keys(host):
    config = _daemon_json(host)
    assert config["log-level"] == "warn"
    assert config["labels"] == ["tfsf-fixture=foreign"]
    assert config["max-concurrent-downloads"] == 2
    assert config["runtimes"]["tfsf-fixture-runc"] == {"path": "runc"}


def test_nvidia_default_runtime_removed_when_off(host):
    assert "default-runtime" not in _daemon_json(host)


def test_dockerd_runs_with_the_new_runtime(host):
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert "nvidia" in info["Runtimes"]
    assert info["DefaultRuntime"] == "runc"


def _systemd_time(value: str) -> datetime:
    # "Wed 2026-11-25 22:40:01 UTC"
    return datetime.strptime(value.strip(), "%a %Y-%m-%d %H:%M:%S %Z").replace(tzinfo=UTC)


def _docker_time(value: str) -> datetime:
    # "2026-11-25T22:40:03.123456789Z": keep microseconds
    head, _, frac = value.strip().rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}").replace(tzinfo=UTC)


def test_handlers_restarted_docker_then_the_serving_container(host):
    prepared = datetime.fromtimestamp(
        int(host.file("/srv/tfsf-fixture/prepared-at").content_string), tz=UTC
    )
    docker_started = _systemd_time(
        host.check_output("systemctl show docker --property ActiveEnterTimestamp --value")
    )
    assert docker_started >= prepared  # the restart handler ran during converge
    state = json.loads(host.check_output("docker inspect tfserving"))[0]
    assert state["HostConfig"]["RestartPolicy"]["Name"] == "no"  # docker would not restart it
    assert state["State"]["Running"] is True
    assert _docker_time(state["State"]["StartedAt"]) >= docker_started


def test_cdi_spec_generated_by_nvidia_ctk(host):
    spec = host.file("/var/run/cdi/nvidia.yaml")
    assert spec.exists
    assert "kind: nvidia.com/gpu" in spec.content_string


def test_cdi_refresh_units_enabled(host):
    assert host.service("nvidia-cdi-refresh.path").is_enabled
    assert host.service("nvidia-cdi-refresh.path").is_running
    assert host.service("nvidia-cdi-refresh.service").is_enabled


def test_gpu_access_mode_recorded_for_the_serving_role(host):
    fact = host.file("/etc/ansible/facts.d/nvidia_container_toolkit.fact").content_string
    facts = json.loads(fact)
    engine = facts["docker_version"]
    assert engine  # Debian 12's docker.io answers
    # Debian 12 ships Docker 20.10, which has no CDI: the role keeps --gpus there and says so.
    # With toolkit 1.19+ (CDI spec 0.7.0) CDI needs Docker 26.1 (tfs_fleet.common.cdi_engine_mode).
    assert facts["cdi"] is (tuple(int(p) for p in engine.split(".")[:2]) >= (26, 1))
    assert facts["cdi_spec"] == "/var/run/cdi/nvidia.yaml"


def test_per_gpu_serving_containers_restarted_too(host):
    docker_started = _systemd_time(
        host.check_output("systemctl show docker --property ActiveEnterTimestamp --value")
    )
    state = json.loads(host.check_output("docker inspect tfserving-gpu1"))[0]
    assert state["HostConfig"]["RestartPolicy"]["Name"] == "no"
    assert state["State"]["Running"] is True
    assert _docker_time(state["State"]["StartedAt"]) >= docker_started


def test_daemon_json_cdi_feature_follows_the_engine(host):
    # features.cdi is Docker 25.0-28.1's opt-in; 28.2 enables CDI by default (moby/moby#49963)
    # and Docker before 25 has no CDI: the role writes the key only where it is needed.
    fact = host.file("/etc/ansible/facts.d/nvidia_container_toolkit.fact").content_string
    engine = tuple(int(p) for p in json.loads(fact)["docker_version"].split(".")[:2])
    features = _daemon_json(host).get("features", {})
    if (26, 1) <= engine < (28, 2):  # 25.0-26.0 cannot read toolkit 1.19+'s CDI 0.7.0 specs
        assert features.get("cdi") is True
    else:
        assert "cdi" not in features
