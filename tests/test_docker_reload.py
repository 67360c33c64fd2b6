"""Issue 24 item 1: what a daemon.json change needs from the running engine (nothing, a reload or
a restart), module_utils/docker_reload.py, per engine version (20.10 and 26.1)."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.tfs_fleet.common.plugins.module_utils import docker_reload as dr
from ansible_collections.tfs_fleet.common.plugins.module_utils.docker_reload import decide

OLD = "Docker version 20.10.24+dfsg1, build 297e128"  # Debian 12's docker.io
NEW = "Docker version 26.1.5+dfsg1, build a72d7cd"  # Debian 13's docker.io
BOTH = pytest.mark.parametrize("version", [OLD, NEW, "20.10.24", "26.1.5", "v26.1.0"])
BASE: dict[str, Any] = {
    "labels": ["tfs-fleet-test=foreign"],
    "log-driver": "json-file",
    "log-opts": {"max-size": "10m", "max-file": "3"},
    "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}},
}


def changed(**keys: Any) -> dict[str, Any]:
    return {**BASE, **keys}


@BOTH
def test_no_change_needs_nothing(version: str) -> None:
    assert decide(BASE, dict(BASE), version) == dr.Decision(
        "none", [], [], dr.reloadable_keys(version)[1]
    )


@BOTH
def test_the_same_value_in_another_key_order_needs_nothing(version: str) -> None:
    reordered = dict(reversed(list(BASE.items())))
    reordered["log-opts"] = {"max-file": "3", "max-size": "10m"}
    assert decide(BASE, reordered, version).action == "none"


@BOTH
def test_adding_a_reloadable_key_reloads(version: str) -> None:
    decision = decide(BASE, changed(**{"max-concurrent-downloads": 4}), version)
    assert decision.action == "reload"
    assert decision.reload_keys == ["max-concurrent-downloads"] and decision.restart_keys == []


@BOTH
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("live-restore", True),
        ("debug", True),
        ("max-concurrent-uploads", 2),
        ("max-download-attempts", 3),
        ("shutdown-timeout", 30),
        ("insecure-registries", ["10.0.0.0/8"]),
        ("registry-mirrors", ["http://10.0.0.5:5000"]),
        ("allow-nondistributable-artifacts", ["10.0.0.0/8"]),
        ("default-runtime", "nvidia"),
        ("default-shm-size", "128M"),
        ("default-ipc-mode", "private"),
        ("default-cgroupns-mode", "private"),
        ("features", {"cdi": True}),
        ("network-diagnostic-port", 2000),
    ],
)
def test_every_key_both_versions_reload_reloads(version: str, key: str, value: Any) -> None:
    assert decide(BASE, changed(**{key: value}), version).action == "reload"


@BOTH
def test_a_changed_nested_key_counts_as_its_top_level_key(version: str) -> None:
    # log-opts is not reloadable: a change of one of its keys restarts.
    after = changed(**{"log-opts": {"max-size": "50m", "max-file": "3"}})
    decision = decide(BASE, after, version)
    assert decision == dr.Decision("restart", ["log-opts"], [], decision.basis)
    # runtimes is reloadable: a runtime added inside it reloads.
    runtimes = {**BASE["runtimes"], "crun": {"path": "crun"}}
    assert decide(BASE, changed(runtimes=runtimes), version).reload_keys == ["runtimes"]


@BOTH
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("log-driver", "local"),
        ("log-level", "warn"),
        ("storage-driver", "vfs"),
        ("data-root", "/srv/docker"),
        ("bip", "10.99.0.1/24"),
        ("hosts", ["unix:///var/run/docker.sock"]),
        ("iptables", False),
        ("userland-proxy", False),
        ("exec-opts", ["native.cgroupdriver=systemd"]),
        ("authorization-plugins", ["authz"]),  # reloadConfig ends dockerd on a missing plugin
    ],
)
def test_a_key_a_reload_does_not_apply_restarts(version: str, key: str, value: Any) -> None:
    decision = decide(BASE, changed(**{key: value}), version)
    assert decision.action == "restart" and decision.restart_keys == [key]


@BOTH
def test_reload_and_restart_keys_together_restart_and_list_both(version: str) -> None:
    after = changed(**{"max-concurrent-downloads": 4, "log-level": "warn", "debug": True})
    decision = decide(BASE, after, version)
    assert decision.action == "restart"
    assert decision.restart_keys == ["log-level"]
    assert decision.reload_keys == ["debug", "max-concurrent-downloads"]


@BOTH
@pytest.mark.parametrize("key", ["max-concurrent-downloads", "max-download-attempts", "features"])
def test_removing_a_key_a_reload_resets_to_its_default_reloads(version: str, key: str) -> None:
    before = changed(**{key: {"cdi": True} if key == "features" else 5})
    assert decide(before, BASE, version) == dr.Decision(
        "reload", [], [key], decide(before, BASE, version).basis
    )


@BOTH
@pytest.mark.parametrize("key", ["labels", "runtimes"])
def test_removing_a_key_a_reload_leaves_in_effect_restarts(version: str, key: str) -> None:
    # Reload applies these only when the file sets them: the running value would stay.
    after = {k: v for k, v in BASE.items() if k != key}
    decision = decide(BASE, after, version)
    assert decision.action == "restart" and decision.restart_keys == [key]


@BOTH
def test_removing_live_restore_or_debug_restarts(version: str) -> None:
    before = changed(**{"live-restore": True, "debug": True})
    decision = decide(before, BASE, version)
    assert decision.restart_keys == ["debug", "live-restore"] and decision.action == "restart"


@BOTH
def test_an_emptied_default_runtime_counts_as_removed(version: str) -> None:
    before = changed(**{"default-runtime": "nvidia"})
    assert decide(before, changed(**{"default-runtime": ""}), version).action == "restart"
    assert decide(before, changed(**{"default-runtime": "runc"}), version).action == "reload"


@BOTH
def test_removing_a_key_that_needs_a_restart_restarts(version: str) -> None:
    after = {k: v for k, v in BASE.items() if k != "log-opts"}
    assert decide(BASE, after, version).restart_keys == ["log-opts"]


def test_values_are_compared_with_their_json_types() -> None:
    before = changed(**{"max-concurrent-downloads": 1})
    assert decide(before, changed(**{"max-concurrent-downloads": 1}), NEW).action == "none"
    assert decide(before, changed(**{"max-concurrent-downloads": True}), NEW).action == "reload"
    before = changed(**{"live-restore": 1})
    assert decide(before, changed(**{"live-restore": True}), NEW).action == "reload"


@pytest.mark.parametrize("key", ["cluster-store", "cluster-advertise", "cluster-store-opts"])
def test_cluster_discovery_keys_reload_on_20_10_only(key: str) -> None:
    after = changed(**{key: "consul://10.0.0.1:8500"})
    assert decide(BASE, after, OLD).action == "reload"
    assert decide(BASE, after, NEW).action == "restart"
    assert decide(BASE, after, "").action == "restart"


@pytest.mark.parametrize(
    "version", ["", "dockerd, dev build", "Docker version 27.5.1, build 1", "24.0.7"]
)
def test_an_unknown_version_reloads_only_what_every_supported_version_reloads(version: str) -> None:
    assert dr.reloadable_keys(version)[0] == dr.RELOADABLE_UNKNOWN
    assert dr.RELOADABLE[(20, 10)] & dr.RELOADABLE[(26, 1)] == dr.RELOADABLE_UNKNOWN
    decision = decide(BASE, changed(**{"max-concurrent-downloads": 4}), version)
    assert decision.action == "reload"
    assert "not one of 20.10, 26.1" in decision.basis, decision.basis
    assert decide(BASE, changed(**{"cluster-store": "x"}), version).action == "restart"


def test_the_basis_names_the_version() -> None:
    assert dr.reloadable_keys(OLD) == (dr.RELOADABLE[(20, 10)], "Docker 20.10")
    assert dr.reloadable_keys(NEW) == (dr.RELOADABLE[(26, 1)], "Docker 26.1")
    assert dr.reloadable_keys("")[1].startswith("an engine of unknown version")
    assert dr.reloadable_keys("24.0.7")[1].startswith("Docker 24.0 is not one of")


@pytest.mark.parametrize(
    ("text", "release"),
    [
        (OLD, (20, 10)),
        (NEW, (26, 1)),
        ("20.10.24+dfsg1-1+deb12u1+b6", (20, 10)),
        ("v26.1.0", (26, 1)),
        ("", None),
        ("dockerd, dev build", None),
    ],
)
def test_engine_release(text: str, release: tuple[int, int] | None) -> None:
    assert dr.engine_release(text) == release


def test_the_first_daemon_json_restarts_for_keys_a_reload_does_not_apply() -> None:
    decision = decide({}, BASE, NEW)
    assert decision.action == "restart"
    assert decision.restart_keys == ["log-driver", "log-opts"]
    assert decision.reload_keys == ["labels", "runtimes"]


@pytest.mark.parametrize(("before", "after", "name"), [([], {}, "before"), ({}, "x", "after")])
def test_anything_but_an_object_is_refused_naming_the_argument(
    before: Any, after: Any, name: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{name}: a daemon.json must be a JSON object"):
        decide(before, after, NEW)
