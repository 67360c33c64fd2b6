"""The check of a model version against a files table: the one implementation.

A files table maps every file of a version (relative POSIX path) to its sha256 and size. It comes
from the export manifest (tfs_fleet_manifest.json, written by scripts/export_model.py) or from the
controller's scan of any SavedModel (module_utils/model_sources.py, which walks and hashes with
the functions here). Used on the host by the model_version_publish module before it publishes a
version, on the controller by the model_sources action and by the export tests
(tfs_fleet.manifest writes the manifest, this reads it back). Standard library only
(module_utils travel to the host with the module).
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


def walk(root: str) -> tuple[dict[str, os.stat_result], list[str]]:
    """Regular files under root (relative POSIX path -> lstat) and the entries that are refused.

    Only directory listings and lstat: nothing under root is opened. root itself may be a
    symbolic link to a directory (followed); links and special files inside it are refused, and
    so is a directory that cannot be listed (its files would be missing from the table).
    """
    found: dict[str, os.stat_result] = {}
    refused: list[str] = []

    def unreadable(err: OSError) -> None:
        rel = os.path.relpath(err.filename or root, root).replace(os.sep, "/")
        refused.append(f"cannot list directory: {rel} ({err.strerror})")

    for directory, dirs, files in os.walk(root, onerror=unreadable):
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
            else:
                found[rel] = info
    return found, sorted(refused)


def scan(root: str, manifest_name: str | None = None) -> tuple[dict[str, int], list[str]]:
    """Regular files under root (relative path -> size) and the entries that are refused; the
    manifest (manifest_name, when given) is left out of the files."""
    found, refused = walk(root)
    sizes = {rel: info.st_size for rel, info in found.items() if rel != manifest_name}
    return sizes, refused


def files_sha256(files: dict[str, dict[str, Any]]) -> str:
    """sha256 of a files table's canonical JSON (sorted keys, no spaces): the table's identity."""
    text = json.dumps(files, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_files_table(files: Any, where: str, require_size: bool = False) -> dict[str, Any]:
    """A files table (relative path -> {sha256, size}) checked; ManifestError names where."""
    if not isinstance(files, dict) or not files:
        raise ManifestError(f"{where} lists no files (a 'files' object of path -> sha256 and size)")
    for rel, entry in files.items():
        if not isinstance(entry, dict):
            raise ManifestError(f"{where}: entry {rel!r} is not an object")
        digest = entry.get("sha256")
        if not isinstance(digest, str) or not SHA256_RE.match(digest):
            raise ManifestError(f"{where}: entry {rel!r} has no sha256 of 64 hex digits")
        size = entry.get("size")
        if size is None and require_size:
            raise ManifestError(f"{where}: entry {rel!r} has no size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise ManifestError(f"{where}: entry {rel!r} has a size that is not a count of bytes")
        if (
            not isinstance(rel, str)
            or not rel
            or rel.startswith("/")
            or any(part in {"", ".", ".."} for part in rel.split("/"))
        ):
            raise ManifestError(f"{where}: entry {rel!r} is not a path inside the version")
    return files


def load_manifest(path: str) -> dict[str, dict[str, Any]]:
    """The manifest's files table, checked: path -> {sha256, size?}."""
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as err:
        raise ManifestError(f"{path} is not a readable JSON manifest ({err})") from err
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path} holds a JSON {type(manifest).__name__}, not an object")
    return check_files_table(manifest.get("files"), path)


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
    return len(expected), problems + compare(staging, expected, present, "the manifest")


def verify_files(root: str, expected: dict[str, dict[str, Any]]) -> tuple[int, list[str]]:
    """Check root against a files table (every file, a manifest in it is an ordinary file):
    (files verified, problems); no problems means root holds exactly those files."""
    if os.path.islink(root):
        return 0, [f"{root} is a symbolic link, not a directory"]
    if not os.path.isdir(root):
        return 0, [f"{root} is not a directory"]
    try:
        check_files_table(expected, "files", require_size=True)
    except ManifestError as err:
        return 0, [str(err)]
    present, problems = scan(root)
    return len(expected), problems + compare(root, expected, present, "the controller's table")


def compare(
    root: str, expected: dict[str, dict[str, Any]], present: dict[str, int], table: str
) -> list[str]:
    """What differs between root's files (path -> size) and a table: missing, extra, size, sha256
    (a file is read only when its size matches)."""
    problems = [f"missing: {rel}" for rel in sorted(set(expected) - set(present))]
    problems += [f"not in {table}: {rel}" for rel in sorted(set(present) - set(expected))]
    for rel in sorted(set(expected) & set(present)):
        entry = expected[rel]
        if "size" in entry and present[rel] != entry["size"]:
            problems.append(f"size differs: {rel}")
        elif sha256_file(os.path.join(root, rel)) != entry["sha256"]:
            problems.append(f"sha256 differs: {rel}")
    return problems
