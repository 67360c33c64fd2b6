#!/usr/bin/python
# Copyright: tfs-fleet developers
# Apache License 2.0
"""Verify a staged SavedModel version against its manifest, then publish it atomically."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_version_publish
short_description: Verify a staged model version against its manifest and publish it atomically
version_added: "0.1.0"
description:
  - A model version is transferred into a staging directory whose name is not a number, so
    TensorFlow Serving (which loads only numeric directories) never sees it half-written.
  - This module checks every file of the staging directory against the version's manifest
    (C(tfs_fleet_manifest.json), written by scripts/export_model.py) - same set of files, same
    sizes, same sha256. Only then it renames the staging directory to its numeric name on the
    same filesystem, which is atomic.
  - An existing published version is never replaced. When O(dest) exists and matches the
    manifest, the version counts as published and a leftover staging directory is removed;
    when it does not match (an empty or foreign directory), the module fails and names it.
  - Refused before anything moves - a staging directory that is a symbolic link, any symbolic
    link or special file inside it (a linked directory would be published unverified), a
    manifest that is not JSON or whose entries lack a sha256, and an empty or malformed
    O(manifest_sha256).
options:
  staging:
    description: The staging directory holding the transferred version.
    type: path
    required: true
  dest:
    description: The published directory, C(<models dir>/<model>/<version>).
    type: path
    required: true
  manifest_sha256:
    description:
      - sha256 of the manifest on the controller. When given, the staged manifest must match it,
        so a stale or foreign manifest in the staging directory is refused.
      - Given, it must be 64 hex digits; an empty string is refused (it would skip the check).
    type: str
  manifest_name:
    description: File name of the manifest inside the version directory.
    type: str
    default: tfs_fleet_manifest.json
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
author:
  - tfs-fleet developers
"""

EXAMPLES = r"""
- name: Publish version 3 of half_plus_two
  tfs_fleet.common.model_version_publish:
    staging: /srv/tfserving/models/half_plus_two/.tfs-fleet-incoming-3
    dest: /srv/tfserving/models/half_plus_two/3
"""

RETURN = r"""
verified_files:
  description: Number of files checked against the manifest.
  returned: when the version was published (or would be, in check mode)
  type: int
"""

import hashlib
import json
import os
import re
import shutil
import stat
from typing import Any

from ansible.module_utils.basic import AnsibleModule

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(Exception):
    """The manifest cannot be used; the message names the file and what is wrong."""


def sha256_file(path: str) -> str:
    """sha256 of a regular file, opened without following a link."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scan(root: str, manifest_name: str) -> tuple[dict[str, int], list[str]]:
    """Regular files under root (relative path -> size) and the entries that are refused."""
    found: dict[str, int] = {}
    refused: list[str] = []
    for directory, dirs, files in os.walk(root):
        for name in list(dirs):
            full = os.path.join(directory, name)
            if os.path.islink(full):
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                refused.append(f"symbolic link (not allowed in a model version): {rel}")
                dirs.remove(name)
        for name in files:
            full = os.path.join(directory, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                refused.append(f"symbolic link (not allowed in a model version): {rel}")
            elif not stat.S_ISREG(info.st_mode):
                refused.append(f"not a regular file: {rel}")
            elif rel != manifest_name:
                found[rel] = info.st_size
    return found, sorted(refused)


def load_manifest(path: str) -> dict[str, dict[str, Any]]:
    """The manifest's files table, checked: path -> {sha256, size?}."""
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as err:
        raise ManifestError(f"{path} is not a readable JSON manifest ({err})") from err
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path} holds a JSON {type(manifest).__name__}, not an object")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ManifestError(f"{path} lists no files (a 'files' object of path -> sha256 and size)")
    for rel, entry in files.items():
        if not isinstance(entry, dict):
            raise ManifestError(f"{path}: entry {rel!r} is not an object")
        digest = entry.get("sha256")
        if not isinstance(digest, str) or not SHA256_RE.match(digest):
            raise ManifestError(f"{path}: entry {rel!r} has no sha256 of 64 hex digits")
        size = entry.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise ManifestError(f"{path}: entry {rel!r} has a size that is not a count of bytes")
        if rel.startswith("/") or ".." in rel.split("/"):
            raise ManifestError(f"{path}: entry {rel!r} is not a path inside the version")
    return files


def verify(staging: str, manifest_name: str, manifest_sha256: str | None) -> tuple[int, list[str]]:
    """Return (files verified, problems); no problems means the directory is an exact copy."""
    if os.path.islink(staging):
        return 0, [f"{staging} is a symbolic link, not a directory"]
    if not os.path.isdir(staging):
        return 0, [f"{staging} is not a directory"]
    manifest_path = os.path.join(staging, manifest_name)
    if os.path.islink(manifest_path) or not os.path.isfile(manifest_path):
        return 0, [f"{manifest_path} is missing (or not a regular file)"]
    if manifest_sha256 is not None and sha256_file(manifest_path) != manifest_sha256:
        return 0, [f"{manifest_path} differs from the controller's manifest"]
    try:
        expected = load_manifest(manifest_path)
    except ManifestError as err:
        return 0, [str(err)]
    present, problems = scan(staging, manifest_name)
    for rel in sorted(set(expected) - set(present)):
        problems.append(f"missing: {rel}")
    for rel in sorted(set(present) - set(expected)):
        problems.append(f"not in the manifest: {rel}")
    for rel in sorted(set(expected) & set(present)):
        entry = expected[rel]
        if "size" in entry and present[rel] != entry["size"]:
            problems.append(f"size differs: {rel}")
        elif sha256_file(os.path.join(staging, rel)) != entry["sha256"]:
            problems.append(f"sha256 differs: {rel}")
    return len(expected), problems


def summary(problems: list[str]) -> str:
    shown = "; ".join(problems[:10])
    return shown + (f" (+{len(problems) - 10} more)" if len(problems) > 10 else "")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "staging": {"type": "path", "required": True},
            "dest": {"type": "path", "required": True},
            "manifest_sha256": {"type": "str"},
            "manifest_name": {"type": "str", "default": "tfs_fleet_manifest.json"},
        },
        supports_check_mode=True,
    )
    staging: str = module.params["staging"].rstrip("/")
    dest: str = module.params["dest"].rstrip("/")
    manifest_name: str = module.params["manifest_name"]
    manifest_sha256: str | None = module.params["manifest_sha256"]
    if manifest_sha256 is not None:
        manifest_sha256 = manifest_sha256.strip().lower()
        if not SHA256_RE.match(manifest_sha256):
            module.fail_json(
                msg=f"manifest_sha256 {module.params['manifest_sha256']!r} is not a sha256 "
                "(64 hex digits); give the controller manifest's sha256, or leave the option out"
            )
    if "/" in manifest_name or manifest_name in {"", ".", ".."}:
        module.fail_json(msg=f"manifest_name {manifest_name!r} must be a plain file name")
    if os.path.basename(staging).isdigit():
        module.fail_json(msg=f"staging {staging} has a numeric name: TF Serving would load it")
    if os.path.dirname(staging) != os.path.dirname(dest):
        module.fail_json(msg=f"staging {staging} and dest {dest} must share a parent directory")

    if os.path.lexists(dest):
        count, problems = verify(dest, manifest_name, manifest_sha256)
        if problems:
            module.fail_json(
                msg=f"{dest} exists but is not this version ({summary(problems)}); it was left "
                "alone: move it aside, then run again",
                problems=problems,
            )
        leftover = os.path.lexists(staging)
        if leftover and not module.check_mode:
            if os.path.islink(staging) or not os.path.isdir(staging):
                os.unlink(staging)
            else:
                shutil.rmtree(staging)
        module.exit_json(
            changed=leftover,
            verified_files=count,
            dest=dest,
            msg=f"{dest} is already published"
            + ("; the leftover staging directory was removed" if leftover else ""),
        )
    if os.path.islink(staging):
        module.fail_json(
            msg=f"staging {staging} is a symbolic link: refusing to publish a link out of the "
            "models directory"
        )
    if not os.path.isdir(staging):
        module.fail_json(msg=f"staging directory {staging} does not exist: transfer it first")

    count, problems = verify(staging, manifest_name, manifest_sha256)
    if problems:
        module.fail_json(
            msg=f"{staging} does not match its manifest, so {dest} was not published: "
            f"{summary(problems)}",
            problems=problems,
        )
    if not module.check_mode:
        os.rename(staging, dest)
    module.exit_json(changed=True, verified_files=count, dest=dest)


if __name__ == "__main__":
    main()
