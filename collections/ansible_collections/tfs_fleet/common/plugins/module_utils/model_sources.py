"""The controller's scan of the export base: which directories are model versions, and the files
table (sha256 and size of every file) of each wanted one, with a hash cache.

A version is what TensorFlow Serving loads (tensorflow_serving/sources/storage_path/
file_system_storage_path_source.cc): every child of the model's directory whose name
absl::SimpleAtoi parses as an int64 is a version, whatever wrote it (scripts/export_model.py,
TF1's SavedModelBuilder, tf.saved_model.save, Keras 3's model.export(), TFX's Pusher with its
timestamp names); other children are ignored. A version directory holds saved_model.pb,
saved_model.pbtxt or saved_model.cpb (the chunked format).

Which versions a model entry of tfserving_models_list wants is wanted_versions(), the one rule of
both the role's plan (filter model_plan) and the hashing here: only wanted versions are opened, so
an export base that keeps a hundred old versions costs their listing, not their bytes.

Read-only on the export base: directory listings, lstat and reads of the files it hashes,
nothing written there. Hashes are cached in a directory of their own, one JSON file per version
directory, each file keyed by (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns): an unchanged
version is never opened again, a changed file (its ctime moves even when its mtime is set back)
is hashed again. Standard library only; the walk and the hashing are model_manifest's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.tfs_fleet.common.plugins.module_utils.model_manifest import (
    MANIFEST_NAME,
    SHA256_RE,
    ManifestError,
    files_sha256,
    load_manifest,
    sha256_file,
    walk,
)

INT64_MAX = (1 << 63) - 1
# absl::ascii_isspace: what SimpleAtoi strips from both ends.
ASCII_SPACE = " \t\n\v\f\r"
DIGITS_RE = re.compile(r"[0-9]+", re.ASCII)
# The SavedModel proto in the order TensorFlow's loader looks for it; the first present names the
# format.
SAVED_MODEL_FILES = (
    ("saved_model.pb", "pb"),
    ("saved_model.pbtxt", "pbtxt"),
    ("saved_model.cpb", "cpb"),
)
CACHE_FORMAT = "tfs-fleet model hashes 1"
# A file changed less than this before it was hashed is not cached: a later change within the
# same timestamp tick would leave its (mtime, ctime) as they were (git's "racy" entries). NFS and
# some filesystems keep one-second timestamps.
RACY_WINDOW_NS = 2_000_000_000
CACHE_DIR_DEFAULT_TAIL = ("tfs-fleet", "model-hashes")


class SourceError(Exception):
    """The export base cannot be deployed as it is; the message names the paths and the fix."""


class PlanError(ValueError):
    """A model entry asks for what its exported versions cannot give (or holds a value that is not
    a version number or count); the message names tfserving_models_list[<model>] and the fix."""


def _as_int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise PlanError(f"{what} must be an integer (got {value!r})") from err


def wanted_versions(
    model: Mapping[str, Any],
    exported: Iterable[int],
    default_keep: int | None,
    model_dir: str,
) -> tuple[list[int], int | None]:
    """(the versions a model entry serves, its keep): the entry's ``versions`` (every one must have
    been exported), else the newest ``keep`` exported ones (the entry's keep, else default_keep;
    at least 1). With default_keep None and no keep in the entry: every exported version, and keep
    None. PlanError names tfserving_models_list[<name>] (or the model and model_dir) and the fix.

    The one rule of the tfserving_models role's plan (filter model_plan) and of what the
    model_sources action hashes.
    """
    name = model.get("name")
    numbers = sorted(set(exported))
    raw_keep = model.get("keep") or default_keep
    keep = None if raw_keep is None else _as_int(raw_keep, f"tfserving_models_list[{name}].keep")
    if keep is not None and keep < 1:
        raise PlanError(f"tfserving_models_list[{name}].keep must be at least 1 (got {keep})")
    asked = model.get("versions") or []
    if isinstance(asked, (str, bytes, Mapping)) or not isinstance(asked, Iterable):
        raise PlanError(
            f"tfserving_models_list[{name}].versions must be a list of version numbers "
            f"(got {asked!r})"
        )
    what = f"tfserving_models_list[{name}].versions"
    requested = sorted({_as_int(v, what) for v in asked})
    if requested:
        have = set(numbers)
        missing = [v for v in requested if v not in have]
        if missing:
            raise PlanError(
                f"{what} asks for {missing}, but {model_dir} holds "
                f"{numbers or 'no version'}: export them first or fix the list"
            )
        return requested, keep
    if not numbers:
        raise PlanError(
            f"model {name}: no version under {model_dir} (a version is a numbered SavedModel "
            "directory, <tfserving_models_export_base>/<model>/<number>/ with "
            "saved_model.pb, .pbtxt or .cpb): export one there, e.g. with "
            "scripts/export_model.py --export-base <tfserving_models_export_base>"
        )
    return (numbers if keep is None else numbers[-keep:]), keep


def default_cache_dir(environ: dict[str, str] | None = None) -> str:
    """$XDG_CACHE_HOME/tfs-fleet/model-hashes, else ~/.cache/tfs-fleet/model-hashes."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, *CACHE_DIR_DEFAULT_TAIL)


def parse_version(name: str) -> tuple[int | None, str | None]:
    """How a child of a model directory counts, the way TF Serving reads its name.

    (number, None): a version we publish as str(number) (leading zeros are fine: 007 is 7).
    (None, reason): TF Serving would read it as a version (or it looks like one), but it is not
    published: the reason says why. (None, None): not a version, TF Serving ignores it.
    """
    if DIGITS_RE.fullmatch(name):
        number = int(name)
        if number > INT64_MAX:
            return None, "a number beyond int64, which TF Serving ignores"
        return number, None
    body = name.strip(ASCII_SPACE)
    if not body:
        return None, None
    sign = body[0] if body[0] in "+-" else ""
    digits = body[len(sign) :]
    if not DIGITS_RE.fullmatch(digits):
        return None, None
    if body != name:
        return None, "leading or trailing whitespace, which TF Serving strips"
    if sign == "-" and int(digits) != 0:
        return None, "a negative version"
    return None, f"a sign ({sign!r})"


@dataclass
class Version:
    number: int
    dir_name: str
    path: str
    format: str
    export_manifest: bool
    files: dict[str, dict[str, Any]] | None = None

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "dir_name": self.dir_name,
            "format": self.format,
            "export_manifest": self.export_manifest,
        }
        if self.files is not None:
            out["files"] = self.files
            out["manifest_sha256"] = files_sha256(self.files)
        return out


@dataclass
class Stats:
    versions: int = 0
    hashed_versions: int = 0
    files: int = 0
    hashed_files: int = 0
    hashed_bytes: int = 0
    cached_files: int = 0
    seconds: float = 0.0

    def result(self) -> dict[str, Any]:
        return {
            "versions": self.versions,
            "hashed_versions": self.hashed_versions,
            "files": self.files,
            "hashed_files": self.hashed_files,
            "hashed_bytes": self.hashed_bytes,
            "cached_files": self.cached_files,
            "seconds": round(self.seconds, 3),
        }


def find_versions(model_dir: str) -> tuple[dict[int, Version], list[str]]:
    """The versions in model_dir (number -> Version) and a sentence per refused child."""
    try:
        names = sorted(os.listdir(model_dir))
    except OSError as err:
        raise SourceError(f"cannot list {model_dir} ({err.strerror})") from err
    problems: list[str] = []
    by_number: dict[int, list[str]] = {}
    for name in names:
        number, reason = parse_version(name)
        path = os.path.join(model_dir, name)
        if reason is not None:
            problems.append(
                f"{path!r}: TF Serving reads this name as a version number, but it has {reason}; "
                "rename it to the plain number (digits only, at most 9223372036854775807) or "
                f"move it out of {model_dir}"
            )
        elif number is not None:
            by_number.setdefault(number, []).append(name)
    versions: dict[int, Version] = {}
    for number, dir_names in sorted(by_number.items()):
        if len(dir_names) > 1:
            problems.append(
                f"{model_dir}: {' and '.join(repr(n) for n in dir_names)} name the same version "
                f"{number} (TF Serving loads one of them and warns); rename or remove all but one"
            )
            continue
        (name,) = dir_names
        version, problem = _version_dir(model_dir, name, number)
        if problem:
            problems.append(problem)
        elif version is not None:
            versions[number] = version
    return versions, problems


def _version_dir(model_dir: str, name: str, number: int) -> tuple[Version | None, str | None]:
    path = os.path.join(model_dir, name)
    not_loadable = (
        "TF Serving would try to load it as version "
        f"{number} and fail (a half-written training output?): finish it, or move it out of "
        f"{model_dir}"
    )
    try:
        info = os.stat(path)  # the version directory itself may be a link: followed
    except OSError as err:
        return None, f"{path} ({err.strerror}): {not_loadable}"
    if not stat.S_ISDIR(info.st_mode):
        return None, f"{path} is a file, not a SavedModel directory: {not_loadable}"
    for file_name, kind in SAVED_MODEL_FILES:
        marker = os.path.join(path, file_name)
        try:
            marker_info = os.lstat(marker)
        except FileNotFoundError:
            continue
        except OSError as err:
            return None, f"{marker} cannot be read ({err.strerror})"
        if stat.S_ISLNK(marker_info.st_mode):
            return None, (
                f"{marker} is a symbolic link (not allowed in a model version): copy the file in"
            )
        if not stat.S_ISREG(marker_info.st_mode):
            return None, f"{marker} is not a regular file: {not_loadable}"
        has_manifest = os.path.lexists(os.path.join(path, MANIFEST_NAME))
        return Version(number, name, path, kind, has_manifest), None
    names = ", ".join(f for f, _ in SAVED_MODEL_FILES)
    return None, f"{path} holds no {names}: {not_loadable}"


# ---- the hash cache ------------------------------------------------------------------------------
def stat_key(info: os.stat_result) -> list[int]:
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


@dataclass
class VersionCache:
    """The cached hashes of one version directory (by its real path)."""

    path: str
    real_path: str
    entries: dict[str, list[Any]] = field(default_factory=dict)
    verified: str = ""
    loaded: dict[str, Any] | None = None

    def lookup(self, rel: str, key: list[int]) -> str | None:
        entry = self.entries.get(rel)
        if entry is not None and entry[:5] == key:
            return str(entry[5])
        return None

    def document(self, entries: dict[str, list[Any]], verified: str) -> dict[str, Any]:
        return {
            "format": CACHE_FORMAT,
            "path": self.real_path,
            "verified_export_manifest": verified,
            "files": dict(sorted(entries.items())),
        }


class HashCache:
    """One JSON file per version directory under cache_dir, named by the sha256 of its real path.

    A file that cannot be read, is not this format or names another path is ignored (and
    rewritten); one bad entry is dropped on its own. Writes go to a temporary file in cache_dir,
    renamed over the old one.
    """

    def __init__(self, cache_dir: str) -> None:
        self.cache_dir = cache_dir
        self.warnings: list[str] = []
        self._writable: bool | None = None

    def file_for(self, real_path: str) -> str:
        name = hashlib.sha256(real_path.encode("utf-8", "surrogateescape")).hexdigest()
        return os.path.join(self.cache_dir, name + ".json")

    def load(self, path: str) -> VersionCache:
        real = os.path.realpath(path)
        cache = VersionCache(path, real)
        try:
            with open(self.file_for(real), encoding="utf-8") as handle:
                doc = json.load(handle)
        except (OSError, ValueError):
            return cache
        if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT:
            return cache
        if doc.get("path") != real or not isinstance(doc.get("files"), dict):
            return cache
        cache.loaded = doc
        for rel, entry in doc["files"].items():
            if (
                isinstance(entry, list)
                and len(entry) == 6
                and all(isinstance(n, int) and not isinstance(n, bool) for n in entry[:5])
                and isinstance(entry[5], str)
                and SHA256_RE.match(entry[5])
            ):
                cache.entries[rel] = entry
        verified = doc.get("verified_export_manifest")
        cache.verified = verified if isinstance(verified, str) else ""
        return cache

    def save(self, cache: VersionCache, entries: dict[str, list[Any]], verified: str) -> None:
        doc = cache.document(entries, verified)
        if doc == cache.loaded or not self._ensure_dir():
            return
        target = self.file_for(cache.real_path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.cache_dir)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(doc, handle, separators=(",", ":"))
                os.replace(tmp, target)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as err:
            self.warnings.append(
                f"hash cache {target} not written ({err.strerror}): the next run hashes "
                f"{cache.path} again (tfserving_models_hash_cache_dir)"
            )

    def _ensure_dir(self) -> bool:
        if self._writable is None:
            try:
                os.makedirs(self.cache_dir, mode=0o700, exist_ok=True)
                self._writable = True
            except OSError as err:
                self._writable = False
                self.warnings.append(
                    f"hash cache directory {self.cache_dir} cannot be created ({err.strerror}): "
                    "every run hashes every version; fix tfserving_models_hash_cache_dir"
                )
        return self._writable


# ---- hashing -------------------------------------------------------------------------------------
def hash_version(
    version: Version,
    cache: HashCache | None,
    stats: Stats,
    racy_window_ns: int = RACY_WINDOW_NS,
) -> list[str]:
    """Fill version.files (every regular file: sha256, size); return the problems found.

    With the export manifest present, the table (less the manifest) must equal its files table.
    """
    found, refused = walk(version.path)
    if refused:
        return [f"{version.path}: {r}; a version holds regular files only" for r in refused]
    cached = cache.load(version.path) if cache else None
    table: dict[str, dict[str, Any]] = {}
    entries: dict[str, list[Any]] = {}
    problems: list[str] = []
    for rel, info in sorted(found.items()):
        key = stat_key(info)
        digest = cached.lookup(rel, key) if cached else None
        if digest is not None:
            stats.cached_files += 1
            entries[rel] = [*key, digest]
        else:
            full = os.path.join(version.path, rel)
            started = time.time_ns()
            try:
                digest = sha256_file(full)
                after = stat_key(os.lstat(full))
            except OSError as err:
                problems.append(f"{full} cannot be read ({err.strerror})")
                continue
            stats.hashed_files += 1
            stats.hashed_bytes += info.st_size
            if after != key:
                problems.append(
                    f"{full} changed while it was hashed: is something still writing "
                    f"{version.path}? Deploy it once it is complete"
                )
                continue
            if max(info.st_mtime_ns, info.st_ctime_ns) < started - racy_window_ns:
                entries[rel] = [*key, digest]
        table[rel] = {"sha256": digest, "size": info.st_size}
    stats.files += len(found)
    if problems:
        return problems
    version.files = table
    verified = ""
    if MANIFEST_NAME in table:
        digest = files_sha256(table)
        if cached is not None and cached.verified == digest:
            verified = digest  # this very table was checked against the manifest before
        else:
            problems = check_export_manifest(version.path, table)
            verified = "" if problems else digest
    if cache and cached is not None:
        cache.save(cached, entries, verified)
    return problems


def check_export_manifest(path: str, table: dict[str, dict[str, Any]]) -> list[str]:
    """Our export's own manifest against the computed table: a changed export is refused."""
    manifest_path = os.path.join(path, MANIFEST_NAME)
    try:
        expected = load_manifest(manifest_path)
    except ManifestError as err:
        return [f"{err}: it was written by scripts/export_model.py; export the version again"]
    present = {rel: entry for rel, entry in table.items() if rel != MANIFEST_NAME}
    differs = [(rel, "missing") for rel in sorted(set(expected) - set(present))]
    differs += [(rel, "not in the manifest") for rel in sorted(set(present) - set(expected))]
    for rel in sorted(set(expected) & set(present)):
        entry = expected[rel]
        if "size" in entry and entry["size"] != present[rel]["size"]:
            differs.append((rel, "size differs"))
        elif entry["sha256"] != present[rel]["sha256"]:
            differs.append((rel, "sha256 differs"))
    return [
        f"{os.path.join(path, rel)} does not match {manifest_path} ({what}): the export changed "
        "after scripts/export_model.py wrote it; export the version again"
        for rel, what in differs
    ]


# ---- the whole scan ------------------------------------------------------------------------------
def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def scan_models(
    export_base: str,
    models: Sequence[str | Mapping[str, Any]],
    cache_dir: str | None,
    checksums: bool = True,
    racy_window_ns: int = RACY_WINDOW_NS,
    default_keep: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(models, stats, warnings) for the action's result; SourceError lists every problem.

    models: model entries (name, and the versions and keep of wanted_versions) or bare names.
    Every version of each model is found and checked; with checksums, only the versions wanted by
    some entry of that model (the union, when several name it: the lists of several hosts) are
    hashed and get a files table, by wanted_versions with default_keep (None: an entry without
    keep wants every version; a bare name is such an entry). An entry wanted_versions refuses
    adds nothing to hash: model_plan reports it for the host that asked.
    """
    started = time.monotonic()
    stats = Stats()
    entries = [{"name": m} if isinstance(m, str) else m for m in models]
    names: list[Any] = []
    for entry in entries:
        if entry.get("name") not in names:
            names.append(entry.get("name"))
    if not isinstance(export_base, str) or not os.path.isabs(export_base):
        raise SourceError(
            f"export base {export_base!r} is not an absolute path: fix tfserving_models_export_base"
        )
    export_base = os.path.normpath(export_base)
    if not names:  # no model: nothing to find (the export base need not exist)
        return {}, stats.result(), []
    if not os.path.isdir(export_base):
        raise SourceError(
            f"export base {export_base} is not a directory: export a version there "
            "(<base>/<model>/<version>/), or fix tfserving_models_export_base"
        )
    problems: list[str] = []
    found: dict[str, tuple[str, dict[int, Version]]] = {}
    for name in names:
        if (
            not isinstance(name, str)
            or not name
            or "/" in name
            or name in {".", ".."}
            or "\0" in name
        ):
            problems.append(f"model name {name!r} cannot be a directory under {export_base}")
            continue
        model_dir = os.path.join(export_base, name)
        if not os.path.isdir(model_dir):
            problems.append(
                f"no {model_dir}: export a version there, or fix tfserving_models_export_base"
            )
            continue
        try:
            versions, refused = find_versions(model_dir)
        except SourceError as err:
            problems.append(str(err))
            continue
        problems += refused
        found[name] = (model_dir, versions)
        stats.versions += len(versions)
    if problems:
        raise SourceError(_summary(problems))

    cache: HashCache | None = None
    if checksums:
        if not cache_dir:
            cache_dir = default_cache_dir()
        cache_dir = os.path.normpath(os.path.expanduser(cache_dir))
        if not os.path.isabs(cache_dir):
            raise SourceError(
                f"hash cache directory {cache_dir!r} is not an absolute path: fix "
                "tfserving_models_hash_cache_dir"
            )
        real_cache = os.path.realpath(cache_dir)
        roots = [export_base] + [
            v.path for _, versions in found.values() for v in versions.values()
        ]
        roots += [model_dir for model_dir, _ in found.values()]
        for root in roots:
            if _inside(real_cache, os.path.realpath(root)):
                raise SourceError(
                    f"hash cache directory {cache_dir} is inside {root}: the scan never writes "
                    "into the exports; point tfserving_models_hash_cache_dir elsewhere (default "
                    "$XDG_CACHE_HOME or ~/.cache, then tfs-fleet/model-hashes)"
                )
        cache = HashCache(cache_dir)
        wanted: dict[str, set[int]] = {name: set() for name in found}
        for entry in entries:
            name = entry.get("name")
            if not isinstance(name, str) or name not in found:
                continue
            model_dir, versions = found[name]
            try:
                chosen, _ = wanted_versions(entry, versions, default_keep, model_dir)
            except PlanError:
                continue  # model_plan refuses this entry, naming it: nothing to hash for it
            wanted[name].update(chosen)
        for name, (_, versions) in found.items():
            for number, version in versions.items():
                if number in wanted[name]:  # the others are listed, never opened
                    stats.hashed_versions += 1
                    problems += hash_version(version, cache, stats, racy_window_ns)
        if problems:
            raise SourceError(_summary(problems))
    result = {
        name: {
            "model_dir": model_dir,
            "versions": {str(n): v.result() for n, v in sorted(versions.items())},
        }
        for name, (model_dir, versions) in found.items()
    }
    stats.seconds = time.monotonic() - started
    return result, stats.result(), (cache.warnings if cache else [])


def _summary(problems: list[str]) -> str:
    shown = problems[:20]
    more = f"\n- (+{len(problems) - 20} more)" if len(problems) > 20 else ""
    return (
        f"{len(problems)} problem(s) in the export base, nothing was changed on any host:\n- "
        + "\n- ".join(shown)
        + more
    )
