# Copyright: tfs-fleet developers
# Apache License 2.0
"""Small JSON files that several runs or roles write on a host: strict parsing, a lock next to
the file, atomic replacement. Shared by the docker_daemon_json and host_record modules; the
atomic write and the diff also by host_files and textfile_metrics.

Pure Python (no Ansible import), for Python 3.8 and later (managed hosts)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import tempfile
from typing import Any


class JsonFileError(Exception):
    """A problem with the file; the message names it and the fix."""


def same(left: Any, right: Any) -> bool:
    """JSON equality that tells types apart: ``1`` is not ``true`` and ``1`` is not ``1.0``."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right))  # noqa: B905 (Python 3.8 hosts)
    return left == right


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_object(text: str, path: str) -> dict:
    """Parse a JSON object strictly (no NaN/Infinity); empty text is an empty object."""
    if not text.strip():
        return {}
    try:
        current = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as err:
        raise JsonFileError(
            f"{path} is not valid JSON ({err}); it was left unchanged. "
            "Fix or remove the file, then run again."
        ) from err
    if not isinstance(current, dict):
        raise JsonFileError(
            f"{path} holds a JSON {type(current).__name__}, not an object; "
            "it was left unchanged. Fix or remove the file, then run again."
        )
    return current


def render(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, allow_nan=False) + "\n"


def file_diff(path: str, before: str, after: str) -> dict[str, str]:
    """The ``diff`` of a module result (what --diff shows) for a file's text."""
    return {"before": before, "after": after, "before_header": path, "after_header": path}


def read(path: str) -> tuple[str, int | None]:
    """The file's text and mode; ("", None) when it does not exist."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "", None
    if not stat.S_ISREG(info.st_mode):
        raise JsonFileError(f"{path} is not a regular file; it was left unchanged")
    with open(path, encoding="utf-8") as handle:
        return handle.read(), stat.S_IMODE(info.st_mode)


def lock(path: str) -> int:
    """Take an exclusive lock next to ``path`` (held until the process ends or the fd closes)."""
    directory = os.path.dirname(path) or "."
    lock_path = os.path.join(directory, f".{os.path.basename(path)}.tfs-fleet.lock")
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(lock_path, flags, 0o600)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise JsonFileError(
                f"{lock_path} is a symbolic link; remove it, then run again"
            ) from err
        raise
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def write_atomically(path: str, text: str, mode: int, uid: int = -1, gid: int = -1) -> None:
    """Write a unique temp file (O_EXCL: never follows a link), chmod (and chown where uid or gid
    is not -1), fsync, rename over path: a reader sees the old file or the new one."""
    directory = os.path.dirname(path) or "."
    fd, tmp_path = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if uid != -1 or gid != -1:
                os.fchown(handle.fileno(), uid, gid)
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.lexists(tmp_path):
            os.unlink(tmp_path)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
