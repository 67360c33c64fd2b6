# Copyright: tfs-fleet developers
# Apache License 2.0
"""Filters on paths found on hosts: plain path comparison, never regular expressions."""

from __future__ import annotations

import posixpath
import shutil
from collections.abc import Iterable
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: versions_in
short_description: The numeric version directories found directly in one directory
description:
  - Takes the C(files) of an C(ansible.builtin.find) result (or a list of paths) and returns, as
    sorted integers, the names of the entries whose parent directory is exactly O(directory) and
    whose name is a version number (digits only).
  - Paths are compared as paths, never as patterns, so a directory name with C(+), C(.) or
    C([) in it matches only itself.
  - With O(prefix), the versions of the entries named O(prefix) then digits instead (the
    role's staging directories, C(.tfs-fleet-incoming-3)); entries without it are left out.
positional: directory, prefix
notes:
  - The same file holds C(missing_executables), which returns the names in a list that are not
    executables on the controller's PATH (filters run on the controller), for preflight checks.
options:
  _input:
    description: The C(files) list of a find result (dicts with C(path)) or a list of path strings.
    type: list
    required: true
  directory:
    description: The directory whose direct children are wanted (absolute path).
    type: str
    required: true
  prefix:
    description: A literal text the names start with before the digits (not a pattern).
    type: str
    default: ""
"""


def _path(entry: Any) -> str:
    if isinstance(entry, dict):
        if "path" not in entry:
            raise AnsibleFilterError("versions_in: a find result entry has no 'path'")
        return str(entry["path"])
    if isinstance(entry, str):
        return entry
    raise AnsibleFilterError(f"versions_in: expected paths or find results, got {type(entry)}")


def versions_in(found: Iterable[Any], directory: str, prefix: str = "") -> list[int]:
    if not isinstance(directory, str) or not directory.startswith("/"):
        raise AnsibleFilterError(
            f"versions_in: directory must be an absolute path (got {directory!r})"
        )
    if not isinstance(prefix, str) or "/" in prefix:
        raise AnsibleFilterError(f"versions_in: prefix must be a name without '/' (got {prefix!r})")
    parent = posixpath.normpath(directory)
    versions = set()
    for entry in found:
        path = posixpath.normpath(_path(entry))
        name = posixpath.basename(path)
        if posixpath.dirname(path) != parent or not name.startswith(prefix):
            continue
        digits = name[len(prefix) :]
        if digits.isdigit():
            versions.add(int(digits))
    return sorted(versions)


def missing_executables(names: Iterable[str], path: str | None = None) -> list[str]:
    """The names that are not executables on PATH (of the controller: filters run there)."""
    if isinstance(names, str):
        names = [names]
    return [name for name in dict.fromkeys(names) if shutil.which(name, path=path) is None]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"versions_in": versions_in, "missing_executables": missing_executables}
