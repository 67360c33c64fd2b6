# Copyright: tfs-fleet developers
# Apache License 2.0
"""What a daemon.json change needs from a running engine: nothing, a reload (SIGHUP,
``systemctl reload docker``: containers and dockerd's PID stay) or a restart.

dockerd re-reads daemon.json on SIGHUP and applies only some keys; any other changed key needs a
restart. The key lists below are written for this project from moby's sources at the engine
versions the roles support (not copied code):

- Docker 20.10 (Debian 12's docker.io 20.10.24): tag v20.10.24, daemon/reload.go (Reload and its
  reload* helpers), daemon/reload_unix.go (reloadPlatform), cmd/dockerd/daemon.go (reloadConfig).
- Docker 26.1 (Debian 13's docker.io): tag v26.1.5, the same three files.

A reload applies most keys only when the file sets them (``IsValueSet``; the string ones only
when not empty): a removed key keeps its old value in the running engine, so removing such a key
needs a restart. A few keys are reset to dockerd's default when the file lacks them: removing
those reloads too. Nested keys (``log-opts.max-size``) count as their top-level key.

Pure Python, for the managed hosts (the docker_daemon_json module) and the unit tests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from ansible_collections.tfs_fleet.common.plugins.module_utils.json_file import same

NONE = "none"
RELOAD = "reload"
RESTART = "restart"

# Read from moby v26.1.5 daemon/reload.go, daemon/reload_unix.go, cmd/dockerd/daemon.go.
# authorization-plugins is reloaded too (reloadConfig), but a plugin dockerd cannot find there
# ends dockerd (log.Fatalf) instead of failing the reload: left to the restart path, whose
# failure handling puts the previous file back.
_RELOADABLE_26_1: frozenset[str] = frozenset(
    {
        # reloadPlatform
        "runtimes",
        "default-runtime",
        "default-shm-size",
        "default-cgroupns-mode",
        "default-ipc-mode",
        # Reload's other helpers
        "debug",
        "max-concurrent-downloads",
        "max-concurrent-uploads",
        "max-download-attempts",
        "shutdown-timeout",
        "features",
        "labels",
        "allow-nondistributable-artifacts",
        "insecure-registries",
        "registry-mirrors",
        "live-restore",
        "network-diagnostic-port",
    }
)

# Read from moby v20.10.24 daemon/reload.go, daemon/reload_unix.go, cmd/dockerd/daemon.go: the
# 26.1 keys, and the cluster discovery keys (reloadClusterDiscovery; removed in Docker 23).
_RELOADABLE_20_10: frozenset[str] = _RELOADABLE_26_1 | {
    "cluster-store",
    "cluster-advertise",
    "cluster-store-opts",
}

# Keys a reload sets to dockerd's default when the file lacks them (20.10 and 26.1 alike:
# reloadMaxConcurrentDownloadsAndUploads, reloadMaxDownloadAttempts "always reset",
# reloadFeatures "allow features option to be entirely unset", reloadNetworkDiagnosticPort
# stops the diagnostic). Every other reloadable key keeps its running value when removed.
_RESET_WHEN_ABSENT: frozenset[str] = frozenset(
    {
        "max-concurrent-downloads",
        "max-concurrent-uploads",
        "max-download-attempts",
        "features",
        "network-diagnostic-port",
    }
)

# Keys reloadPlatform applies only when their value is not empty: "" counts as a removal.
_IGNORED_WHEN_EMPTY: frozenset[str] = frozenset(
    {"default-runtime", "default-cgroupns-mode", "default-ipc-mode"}
)

# Engine release (major, minor) -> the keys a reload applies there.
RELOADABLE: dict[tuple[int, int], frozenset[str]] = {
    (20, 10): _RELOADABLE_20_10,
    (26, 1): _RELOADABLE_26_1,
}
# An engine of another (or an unreadable) version: only what every supported version reloads.
RELOADABLE_UNKNOWN: frozenset[str] = frozenset.intersection(*RELOADABLE.values())

# "20.10.24+dfsg1", "26.1.5", "Docker version 26.1.5+dfsg1, build a72d7cd", "v20.10.24".
_VERSION_RE = re.compile(r"(?<![\w.])v?([0-9]+)\.([0-9]+)(?:\.[0-9]+)?")


class Decision(NamedTuple):
    """What the engine needs: ``action`` is NONE, RELOAD or RESTART; ``restart_keys`` are the
    changed keys that force a restart, ``reload_keys`` those a reload applies (both sorted)."""

    action: str
    restart_keys: list[str]
    reload_keys: list[str]
    basis: str


def engine_release(version: str) -> tuple[int, int] | None:
    """(major, minor) of an engine version string, None when there is none in it."""
    match = _VERSION_RE.search(version or "")
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))


def reloadable_keys(version: str) -> tuple[frozenset[str], str]:
    """The keys a reload applies on an engine of ``version``, and a note saying which list."""
    release = engine_release(version)
    if release is not None and release in RELOADABLE:
        return RELOADABLE[release], f"Docker {release[0]}.{release[1]}"
    if release:
        shown = f"Docker {release[0]}.{release[1]}"
    else:
        shown = f"engine version {version!r}" if version else "an engine of unknown version"
    supported = ", ".join(f"{major}.{minor}" for major, minor in sorted(RELOADABLE))
    return (
        RELOADABLE_UNKNOWN,
        f"{shown} is not one of {supported}: only keys every one of them reloads",
    )


def changed_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Top-level keys whose value differs (JSON types told apart), added or removed; sorted."""
    return sorted(
        key
        for key in set(before) | set(after)
        if key not in before or key not in after or not same(before[key], after[key])
    )


def _reload_applies(key: str, after: Mapping[str, Any], reloadable: frozenset[str]) -> bool:
    if key not in reloadable:
        return False
    removed = key not in after or (key in _IGNORED_WHEN_EMPTY and after[key] == "")
    return not removed or key in _RESET_WHEN_ABSENT


def decide(before: Any, after: Any, version: str) -> Decision:
    """What an engine of ``version`` running on daemon.json ``before`` needs to run on ``after``.

    ``before`` and ``after`` are daemon.json objects (dicts); anything else raises ValueError
    naming the argument."""
    for name, value in (("before", before), ("after", after)):
        if not isinstance(value, Mapping):
            raise ValueError(
                f"{name}: a daemon.json must be a JSON object, not {type(value).__name__}"
            )
    reloadable, basis = reloadable_keys(version)
    keys = changed_keys(before, after)
    restart = [key for key in keys if not _reload_applies(key, after, reloadable)]
    reload = [key for key in keys if key not in restart]
    action = RESTART if restart else (RELOAD if reload else NONE)
    return Decision(action, restart, reload, basis)
