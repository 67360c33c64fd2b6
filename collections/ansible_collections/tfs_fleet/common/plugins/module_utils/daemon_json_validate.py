# Copyright: tfs-fleet developers
# Apache License 2.0
"""Check a daemon.json before it is written, so that a value dockerd rejects never takes the
engine down: the engine's own ``dockerd --validate`` where the host's dockerd has it (Docker 23
and later), else the schema of dockerd's keys that the preflight uses (DAEMON_JSON_SCHEMA).

Whether a dockerd has ``--validate`` is detected, never assumed: ``dockerd --version`` first
(an older engine is never run with a flag it lacks), then the flag itself, where an "unknown
flag" answer also means the schema.

Pure Python (of Ansible, only what module_utils/preflight.py imports), for the managed hosts.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Mapping
from typing import Any

from ansible_collections.tfs_fleet.common.plugins.module_utils.preflight import (
    Problems,
    check_daemon_options,
)

# The first Docker release whose dockerd has --validate.
VALIDATE_SINCE = (23, 0)
# `dockerd --version`: "Docker version 26.1.5+dfsg1, build a72d7cd".
_VERSION_RE = re.compile(r"version\s+v?([0-9]+)\.([0-9]+)(?:\.([0-9]+))?", re.IGNORECASE)
_UNKNOWN_FLAG_RE = re.compile(r"unknown (flag|option)|flag provided but not defined", re.I)
# Seconds one dockerd call may take: --version and --validate only read files.
DOCKERD_TIMEOUT = 60


def schema_problems(settings: Mapping[str, Any], variable: str) -> list[str]:
    """The problems of ``settings`` (top-level daemon.json keys) against DAEMON_JSON_SCHEMA, one
    sentence each, naming ``variable.key``."""
    p = Problems()
    check_daemon_options(p, settings, variable)
    return p.items


def parse_version(text: str) -> tuple[int, int] | None:
    match = _VERSION_RE.search(text)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))


def _run(argv: list[str]) -> tuple[int, str]:
    """rc and stdout+stderr of argv; rc 124 when it ran past DOCKERD_TIMEOUT."""
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=DOCKERD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 124, f"{' '.join(argv)} did not answer within {DOCKERD_TIMEOUT} s"
    except OSError as err:
        return 127, str(err)
    return proc.returncode, proc.stdout.decode("utf-8", "replace").strip()


class Dockerd:
    """What one dockerd executable can check."""

    def __init__(self, path: str) -> None:
        self.path = path
        rc, out = _run([path, "--version"])
        self.version_text = out.splitlines()[0] if rc == 0 and out else ""
        self.version = parse_version(self.version_text)
        # An engine that says it is older than 23 is never asked for --validate; one that says
        # nothing readable is asked, and its answer decides (supported below).
        self._supported: bool | None = (
            False if self.version is not None and self.version < VALIDATE_SINCE else None
        )

    @property
    def label(self) -> str:
        if self.version is None:
            return self.path
        return f"{self.path} (Docker {self.version[0]}.{self.version[1]})"

    def validate_text(self, text: str, directory: str, real_path: str) -> str | None:
        """dockerd's complaint about ``text`` as a daemon.json, None when it accepts it.

        Raises Unsupported where this dockerd has no --validate. The candidate goes to a temp
        file in ``directory`` (beside the real file), removed afterwards."""
        if self._supported is False:
            raise Unsupported(self.label)
        if not os.path.isdir(directory):
            directory = tempfile.gettempdir()
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".daemon.json.", suffix=".validate")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            rc, out = _run([self.path, "--validate", "--config-file", tmp])
        finally:
            os.unlink(tmp)
        if rc != 0 and _UNKNOWN_FLAG_RE.search(out) and "validate" in out:
            self._supported = False
            raise Unsupported(self.label)
        self._supported = True
        if rc == 0:
            return None
        # dockerd names the file it read: show the real path, not the temp name.
        return out.replace(tmp, real_path) or f"exit status {rc}"


class Unsupported(Exception):
    """This dockerd has no --validate."""


def _word(text: str, message: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(text)}(?![\w-])", message) is not None


def keys_named(message: str, settings: Mapping[str, Any]) -> list[str]:
    """The keys of ``settings`` that dockerd's message names (as whole words), else those whose
    string value it quotes (``log level not valid: loud`` names the key set to "loud")."""
    by_key = [key for key in sorted(settings) if _word(str(key), message)]
    if by_key:
        return by_key
    return [
        key
        for key in sorted(settings)
        if isinstance(settings[key], str)
        and len(settings[key]) >= 3
        and _word(settings[key], message)
    ]
