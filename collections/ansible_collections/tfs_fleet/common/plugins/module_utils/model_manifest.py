"""The check of a model version against its export manifest: the one implementation.

Used on the host by the model_version_publish module before it publishes a version, and on the
controller by the export tests (tfs_fleet.manifest writes the manifest, this reads it back).
Standard library only (module_utils travel to the host with the module).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from typing import Any

MANIFEST_NAME = "tfs_fleet_manifest.json"
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


def verify(
    staging: str, manifest_name: str = MANIFEST_NAME, manifest_sha256: str | None = None
) -> tuple[int, list[str]]:
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
