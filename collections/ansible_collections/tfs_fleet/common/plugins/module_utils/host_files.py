# Copyright: tfs-fleet developers
# Apache License 2.0
"""Several small files and directories of one role brought to their state in one module run
(the host_files module): a directory made, a file's content, mode and owner set (written through
json_file.write_atomically: a temporary file in the same directory renamed over it), a file no
longer used removed.

A module run costs a host about 0.2 s of CPU (Python importing Ansible's module_utils from the
module's zip), whatever it does; a role that writes five small files in five tasks pays it five
times. No Ansible import (module_utils only), for Python 3.8 and later (managed hosts)."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from typing import Any

from ansible_collections.tfs_fleet.common.plugins.module_utils.json_file import write_atomically

STATES = ("file", "directory", "absent")
DEFAULT_MODES = {"file": "0644", "directory": "0755"}


class HostFilesError(Exception):
    """Bad input or a path in the way; the message names the entry and the fix."""


def normalize(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries with their defaults, checked before anything changes."""
    out = []
    seen: set[str] = set()
    for index, raw in enumerate(entries):
        where = f"files[{index}]"
        path = str(raw.get("path") or "")
        if not path.startswith("/"):
            raise HostFilesError(f"{where}.path must be an absolute path, got {path!r}")
        if path in seen:
            raise HostFilesError(f"{where}.path {path} is listed twice: list each path once")
        seen.add(path)
        state = raw.get("state") or "file"
        if state not in STATES:
            raise HostFilesError(f"{where}.state must be one of {', '.join(STATES)}, got {state!r}")
        content = raw.get("content")
        if state == "file" and content is None:
            raise HostFilesError(f"{where} ({path}): state file needs content")
        if state != "file" and content is not None:
            raise HostFilesError(f"{where} ({path}): content is only for state file")
        mode_text = str(raw.get("mode") or DEFAULT_MODES.get(state, "0644"))
        try:
            mode = int(mode_text, 8)
        except ValueError:
            raise HostFilesError(
                f"{where}.mode {mode_text!r} is not an octal file mode (for example '0644')"
            ) from None
        if not 0 <= mode <= 0o7777:
            raise HostFilesError(f"{where}.mode {mode_text!r} is not a file mode")
        out.append(
            {
                "path": os.path.normpath(path),
                "state": state,
                "content": content,
                "mode": mode,
                "owner": raw.get("owner") or None,
                "group": raw.get("group") or None,
            }
        )
    return out


def _id(kind: str, name: str | None) -> int:
    """The uid of an owner or the gid of a group named `name`; -1 (left as it is) for None."""
    if name is None:
        return -1
    try:
        return pwd.getpwnam(name).pw_uid if kind == "owner" else grp.getgrnam(name).gr_gid
    except KeyError:
        raise HostFilesError(f"{kind} {name!r} does not exist on this host") from None


def _ids(entry: dict[str, Any]) -> tuple[int, int]:
    return _id("owner", entry["owner"]), _id("group", entry["group"])


def _attrs_differ(st: os.stat_result, mode: int, uid: int, gid: int) -> bool:
    return (
        stat.S_IMODE(st.st_mode) != mode
        or (uid != -1 and st.st_uid != uid)
        or (gid != -1 and st.st_gid != gid)
    )


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def plan(entry: dict[str, Any]) -> dict[str, Any]:
    """What bringing one entry to its state changes: {path, action, before, after} with action
    none, create, update (content), attributes (mode or owner only) or remove."""
    path, state = entry["path"], entry["state"]
    uid, gid = _ids(entry)
    exists = os.path.lexists(path)
    result: dict[str, Any] = {"path": path, "state": state, "action": "none"}
    if state == "absent":
        if exists and os.path.isdir(path) and not os.path.islink(path):
            raise HostFilesError(
                f"{path} is a directory; host_files removes files only: remove it by hand"
            )
        if exists:
            result.update(
                action="remove", before=_text(_read(path)) if os.path.isfile(path) else ""
            )
        return result
    if state == "directory":
        if exists and not os.path.isdir(path):
            raise HostFilesError(
                f"{path} exists and is not a directory: move it away, then run again"
            )
        if not exists:
            result["action"] = "create"
        elif _attrs_differ(os.stat(path), entry["mode"], uid, gid):
            result["action"] = "attributes"
        return result
    data = entry["content"].encode("utf-8")
    if exists and (os.path.islink(path) or not os.path.isfile(path)):
        raise HostFilesError(
            f"{path} exists and is not a regular file: move it away, then run again"
        )
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise HostFilesError(
            f"the directory of {path} does not exist: list {parent} (state directory) before it"
        )
    if not exists:
        result.update(action="create", before="", after=entry["content"])
        return result
    old = _read(path)
    if old != data:
        result.update(action="update", before=_text(old), after=entry["content"])
    elif _attrs_differ(os.stat(path), entry["mode"], uid, gid):
        result["action"] = "attributes"
    return result


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _chown(path: str, uid: int, gid: int) -> None:
    if uid != -1 or gid != -1:
        os.chown(path, uid, gid, follow_symlinks=False)


def apply(entry: dict[str, Any], planned: dict[str, Any]) -> None:
    """Carry out one planned change (planned by plan() for the same entry)."""
    path, action = entry["path"], planned["action"]
    uid, gid = _ids(entry)
    if action == "none":
        return
    if action == "remove":
        os.unlink(path)
    elif entry["state"] == "directory":
        if action == "create":
            os.makedirs(path, mode=0o755, exist_ok=True)
        os.chmod(path, entry["mode"])
        _chown(path, uid, gid)
    elif action in ("create", "update"):
        write_atomically(path, entry["content"], entry["mode"], uid, gid)
    else:  # attributes
        os.chmod(path, entry["mode"])
        _chown(path, uid, gid)


def converge(entries: list[dict[str, Any]], check_mode: bool) -> list[dict[str, Any]]:
    """Plan every entry first (so that a bad one fails before anything changes), then, outside
    check mode, apply them in order; the plans. A path whose directory an earlier entry makes is
    planned as a create."""
    normalized = normalize(entries)
    plans: list[dict[str, Any]] = []
    for entry in normalized:
        parent = os.path.dirname(entry["path"])
        made_before = any(
            p["action"] == "create" and p["state"] == "directory" and p["path"] == parent
            for p in plans
        )
        if made_before:
            _ids(entry)  # a missing user or group fails now, not half-way
            planned: dict[str, Any] = {"path": entry["path"], "state": entry["state"]}
            if entry["state"] == "file":
                planned.update(action="create", before="", after=entry["content"])
            else:
                planned["action"] = "create" if entry["state"] == "directory" else "none"
        else:
            planned = plan(entry)
        plans.append(planned)
    if not check_mode:
        for entry, planned in zip(normalized, plans):  # noqa: B905 (Python 3.8 hosts)
            apply(entry, planned)
    return plans
