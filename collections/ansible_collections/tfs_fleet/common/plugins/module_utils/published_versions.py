# Copyright: tfs-fleet developers
# Apache License 2.0
"""Published model versions on a host: their publish records, their check against the
controller's files table, the repair of a version that no longer matches, and the staging
directories no run will use again.

A publish record (``<models dir>/<model>/.tfs-fleet-published-<v>.json``, beside the staging
directories, outside the version and outside the user's export) holds, for every file of the
version as it was published, the controller's sha256 and size and the file's size, mtime, ctime
and inode. A check ``stat``s every file of a published version (no file is opened) and hashes only
the files whose stat differs from the record (or every file, ``full``). A version that no longer
matches the controller's table (a changed byte, an extra or a missing file) is copied into its
staging directory with hard links (no data is copied; the served version stays as it is), the
transfer repairs that copy by content and the publish module swaps it in atomically.

Pure Python, standard library only, Python 3.8 and later (it runs on the managed hosts).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import stat
from typing import Any

from ansible_collections.tfs_fleet.common.plugins.module_utils.json_file import (
    render,
    write_atomically,
)
from ansible_collections.tfs_fleet.common.plugins.module_utils.model_manifest import (
    files_sha256,
    sha256_file,
    walk,
)

RECORD_PREFIX = ".tfs-fleet-published-"
RECORD_SUFFIX = ".json"
STAGING_PREFIX = ".tfs-fleet-incoming-"
# Where the publish module puts the damaged copy when the filesystem cannot swap two names.
REPLACED_PREFIX = ".tfs-fleet-replaced-"
RECORD_FORMAT = 1
# What a stat check compares. ctime moves on every write, chmod, chown and utime, even when the
# mtime is set back; the inode moves when a file is replaced.
STAT_FIELDS = ("size", "mtime_ns", "ctime_ns", "ino")
SHOWN_PROBLEMS = 10


def record_path(model_dir: str, version: int | str, prefix: str = RECORD_PREFIX) -> str:
    return os.path.join(model_dir, f"{prefix}{int(version)}{RECORD_SUFFIX}")


def file_stat(info: os.stat_result) -> dict[str, int]:
    return {
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "ctime_ns": info.st_ctime_ns,
        "ino": info.st_ino,
    }


def summary(problems: list[str]) -> str:
    shown = "; ".join(problems[:SHOWN_PROBLEMS])
    more = len(problems) - SHOWN_PROBLEMS
    return shown + (f" (+{more} more)" if more > 0 else "")


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover (the loop returns)


def read_record(path: str) -> dict[str, Any] | None:
    """The record at path, or None when there is none or it cannot be used (then every file of
    the version is hashed and the record written again): never a reason to fail."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        with os.fdopen(fd, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        return None
    files = record.get("files")
    if not isinstance(files, dict):
        return None
    for entry in files.values():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            return None
        if not all(isinstance(entry.get(k), int) for k in STAT_FIELDS):
            return None
    return record


def repairs_of(record: dict[str, Any] | None) -> int:
    count = (record or {}).get("repairs")
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0


def last_repair_of(record: dict[str, Any] | None) -> int | None:
    when = (record or {}).get("last_repair_unix")
    return when if isinstance(when, int) and not isinstance(when, bool) else None


def make_record(
    root: str,
    files: dict[str, dict[str, Any]],
    repairs: int = 0,
    last_repair_unix: int | None = None,
) -> dict[str, Any]:
    """The record of root (already checked against files): each file's sha256 from the table and
    its stat now. Only lstat: nothing is opened."""
    found, _ = walk(root)
    entries: dict[str, Any] = {}
    for rel in sorted(files):
        info = found.get(rel)
        if info is None:
            continue
        entries[rel] = {"sha256": files[rel]["sha256"], **file_stat(info)}
    record: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "files_sha256": files_sha256(files),
        "files": entries,
        "repairs": repairs,
    }
    if last_repair_unix is not None:
        record["last_repair_unix"] = last_repair_unix
    return record


def write_record(path: str, record: dict[str, Any]) -> None:
    write_atomically(path, render(record), 0o644)


class Check:
    """What check_version found: problems (empty: the version matches the table), the files
    read, and whether the record must be written again (missing, or stats that moved on files
    whose content still matches)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.hashed_files = 0
        self.hashed_bytes = 0
        self.record_stale = False


def check_version(
    root: str,
    files: dict[str, dict[str, Any]],
    record: dict[str, Any] | None,
    full: bool = False,
) -> Check:
    """Check a published version against the controller's files table (exactly those files,
    sizes, sha256). Every file is lstat'ed; a file is read only when ``full``, when the record
    lacks it, when the record's sha256 is not the table's, or when its size, mtime, ctime or
    inode differ from the record. A size that differs from the table is a problem without a read.
    """
    result = Check()
    if os.path.islink(root) or not os.path.isdir(root):
        result.problems.append(f"{os.path.basename(root)} is not a directory")
        return result
    found, refused = walk(root)
    recorded: dict[str, Any] = (record or {}).get("files") or {}
    result.record_stale = record is None or set(recorded) != set(files)
    result.problems += refused
    result.problems += [f"missing: {rel}" for rel in sorted(set(files) - set(found))]
    result.problems += [
        f"not in the controller's table: {rel}" for rel in sorted(set(found) - set(files))
    ]
    for rel in sorted(set(files) & set(found)):
        info, entry = found[rel], files[rel]
        if info.st_size != entry["size"]:
            result.problems.append(f"size differs: {rel}")
            continue
        known = recorded.get(rel)
        unchanged = (
            isinstance(known, dict)
            and known.get("sha256") == entry["sha256"]
            and all(known.get(k) == v for k, v in file_stat(info).items())
        )
        if unchanged and not full:
            continue
        result.hashed_files += 1
        result.hashed_bytes += info.st_size
        if sha256_file(os.path.join(root, rel)) != entry["sha256"]:
            result.problems.append(f"sha256 differs: {rel}")
        elif not unchanged:
            result.record_stale = True
    return result


def remove_tree(path: str) -> None:
    """Remove path, whatever it is; a link is removed, never followed."""
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
    else:
        shutil.rmtree(path)


def tree_size(path: str) -> int:
    """Bytes of the regular files under path (lstat only); 0 for a link."""
    if os.path.islink(path) or not os.path.isdir(path):
        return 0
    found, _ = walk(path)
    return sum(info.st_size for info in found.values())


def link_copy(
    source: str,
    staging: str,
    files: dict[str, dict[str, Any]],
    uid: int = -1,
) -> int:
    """Copy the files of the table that source holds into a new staging directory as hard links
    (no data is read or written; the served files stay as they are). Directories are created
    owned by uid (the user the transfer runs as), the linked files keep their owner (root) and
    are replaced, never written, by the transfer (rsync writes a new file and renames it). A
    file others cannot read is left out (the transfer sends it). Returns the files linked."""
    found, _ = walk(source)
    made: set[str] = set()

    def make_dir(path: str) -> None:
        if path in made:
            return
        parent = os.path.dirname(path)
        if path != staging:
            make_dir(parent)
        os.mkdir(path, 0o755)
        os.chmod(path, 0o755)
        if uid >= 0:
            os.chown(path, uid, -1)
        made.add(path)

    make_dir(staging)
    linked = 0
    for rel in sorted(set(files) & set(found)):
        if not found[rel].st_mode & stat.S_IROTH:
            continue
        target = os.path.join(staging, *rel.split("/"))
        make_dir(os.path.dirname(target))
        try:
            os.link(os.path.join(source, rel), target)
        except OSError:
            shutil.copy2(os.path.join(source, rel), target)
        linked += 1
    return linked


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(first: str, second: str) -> bool:
    """Swap two names atomically (renameat2 RENAME_EXCHANGE, Linux 3.15+); False when the
    system or the filesystem cannot (nothing was changed then)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    result = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), first)


def replace_dir(staging: str, dest: str) -> None:
    """Put staging in the place of dest, the old dest removed. Atomic where the filesystem
    swaps names (dest is never missing); otherwise two renames a moment apart."""
    if exchange(staging, dest):
        remove_tree(staging)
        return
    aside = os.path.join(os.path.dirname(dest), REPLACED_PREFIX + os.path.basename(dest))
    if os.path.lexists(aside):
        remove_tree(aside)
    os.rename(dest, aside)
    os.rename(staging, dest)
    remove_tree(aside)


def version_of(name: str, prefix: str, suffix: str = "") -> int | None:
    """The version in a name such as <prefix><digits><suffix>, else None."""
    if not name.startswith(prefix) or not name.endswith(suffix):
        return None
    digits = name[len(prefix) : len(name) - len(suffix)]
    if digits and digits.isascii() and digits.isdigit():
        return int(digits)
    return None


def version_dirs(directory: str, prefix: str = "") -> list[int]:
    """The versions named <prefix><digits> that are directories (not links) in directory,
    sorted; none when it does not exist."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    found = set()
    for entry in entries:
        version = version_of(entry.name, prefix)
        if version is not None and entry.is_dir(follow_symlinks=False):
            found.add(version)
    return sorted(found)


def ensure_dirs(paths: list[str], mode: int = 0o755, dry_run: bool = False) -> list[str]:
    """Make each path a directory with mode, owned by the running user, with its missing
    parents (as `mkdir -p`, each with mode). Returns the paths created or changed (or that would
    be, with dry_run). A path that exists and is not a directory raises NotADirectoryError."""
    uid, gid = os.geteuid(), os.getegid()
    changed: list[str] = []
    for path in paths:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            missing = [path]
            parent = os.path.dirname(path)
            while parent not in ("", "/") and not os.path.lexists(parent):
                missing.insert(0, parent)
                parent = os.path.dirname(parent)
            for new in missing:
                if new not in changed:
                    changed.append(new)
                if not dry_run:
                    os.mkdir(new, mode)
                    os.chmod(new, mode)  # not narrowed by the umask
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise NotADirectoryError(f"{path} exists and is not a directory")
        if stat.S_IMODE(info.st_mode) != mode or (info.st_uid, info.st_gid) != (uid, gid):
            changed.append(path)
            if not dry_run:
                os.chown(path, uid, gid)
                os.chmod(path, mode)
    return changed


def leftovers(
    model_dir: str,
    wanted: list[int],
    staging_prefix: str = STAGING_PREFIX,
    record_prefix: str = RECORD_PREFIX,
) -> list[str]:
    """Names in model_dir no run will use again, at the end of a model's sync: the staging
    directory of a version that is not wanted (withdrawn, or failed and withdrawn) or that is
    already published; a copy a swap left; the record of a version that is not published; a
    record's temporary file."""
    try:
        names = sorted(os.listdir(model_dir))
    except FileNotFoundError:
        return []

    def published(version: int) -> bool:
        path = os.path.join(model_dir, str(version))
        return os.path.isdir(path) and not os.path.islink(path)

    found = []
    for name in names:
        staged = version_of(name, staging_prefix)
        recorded = version_of(name, record_prefix, RECORD_SUFFIX)
        if (
            (staged is not None and (staged not in wanted or published(staged)))
            or version_of(name, REPLACED_PREFIX) is not None
            or (recorded is not None and not published(recorded))
            or (name.startswith("." + record_prefix) and name.endswith(".tmp"))
        ):
            found.append(name)
    return found


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(models_dir: str, models: dict[str, list[int]], prefix: str = RECORD_PREFIX) -> str:
    """Prometheus text of the repairs of each wanted version (from its record; 0 without one):
    the counter and, for a version repaired at least once, the time of the last repair. The text
    changes only when a repair happens, so an unchanged run rewrites nothing."""
    counts, times = [], []
    for name in sorted(models):
        for version in sorted({int(v) for v in models[name]}):
            record = read_record(record_path(os.path.join(models_dir, name), version, prefix))
            labels = f'model="{_label(name)}",version="{version}"'
            count = repairs_of(record)
            counts.append(f"tfs_fleet_model_version_repairs_total{{{labels}}} {count}")
            when = last_repair_of(record)
            if count and when is not None:
                times.append(
                    f"tfs_fleet_model_version_last_repair_timestamp_seconds{{{labels}}} {when}"
                )
    lines = [
        "# HELP tfs_fleet_model_version_repairs_total Times a published model version was found "
        "not matching the controller's files (a changed, extra or missing file) and re-synced.",
        "# TYPE tfs_fleet_model_version_repairs_total counter",
        *counts,
        "# HELP tfs_fleet_model_version_last_repair_timestamp_seconds Unix time of the last "
        "re-sync of a published model version that no longer matched.",
        "# TYPE tfs_fleet_model_version_last_repair_timestamp_seconds gauge",
        *times,
    ]
    return "\n".join(lines) + "\n"
