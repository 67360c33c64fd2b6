"""Unit tests of module_utils/model_sources.py (the tfs_fleet.common.model_sources action): which
children of a model directory are versions (as TF Serving reads them), what is refused, the files
tables, the hash cache (an unchanged re-run opens nothing) and the read-only export tree; then
the role's plan step through ansible-playbook."""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.tfs_fleet.common.plugins.action.model_sources import ARGUMENT_SPEC
from ansible_collections.tfs_fleet.common.plugins.module_utils import model_manifest
from ansible_collections.tfs_fleet.common.plugins.module_utils.model_sources import (
    INT64_MAX,
    SourceError,
    default_cache_dir,
    parse_version,
    scan_models,
)

from tfs_fleet import manifest as controller_manifest

from helpers import ansible_playbook

MANIFEST = "tfs_fleet_manifest.json"
# The models role's publish record of each version, beside it in the model directory.
RECORD = ".tfs-fleet-published-"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def saved_model(root: Path, files: dict[str, bytes] | None = None, kind: str = "pb") -> Path:
    """A SavedModel directory as a user's own code writes it."""
    files = files or {
        f"saved_model.{kind}": b"graph " + root.name.encode(),
        "variables/variables.index": b"index",
        "variables/variables.data-00000-of-00001": b"weights " + root.name.encode(),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def our_export(root: Path) -> Path:
    """A version as scripts/export_model.py writes it: files plus tfs_fleet_manifest.json."""
    saved_model(root)
    text = json.dumps({"format": 1, "files": controller_manifest.file_checksums(root)})
    (root / MANIFEST).write_text(text)
    return root


def scan(base: Path, names: list[Any], cache: Path, **kwargs: Any) -> tuple[dict, dict]:
    models, stats, warnings = scan_models(str(base), names, str(cache), racy_window_ns=0, **kwargs)
    assert warnings == []
    return models, stats


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "export").mkdir()
    return tmp_path / "export"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


# ---- what is a version ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "number", "reason"),
    [
        ("1", 1, None),
        ("007", 7, None),
        ("0", 0, None),
        ("1733480000", 1733480000, None),  # a TFX Pusher timestamp is just a number
        (str(INT64_MAX), INT64_MAX, None),
        (str(INT64_MAX + 1), None, "beyond int64"),
        ("-3", None, "a negative version"),
        ("-0", None, "a sign ('-')"),
        ("+7", None, "a sign ('+')"),
        (" 7", None, "whitespace"),
        ("7\n", None, "whitespace"),
        ("\t-7 ", None, "whitespace"),
        ("tmp", None, None),
        ("7a", None, None),
        ("1_000", None, None),  # Python's int() reads it, TF Serving does not
        ("٣", None, None),  # a digit, but not an ASCII one
        ("²", None, None),
        (".tfs-fleet-export-3", None, None),
        ("+", None, None),
        ("   ", None, None),
        ("0x10", None, None),
    ],
)
def test_names_are_read_as_tf_serving_reads_them(name: str, number: Any, reason: Any) -> None:
    got_number, got_reason = parse_version(name)
    assert got_number == number
    if reason is None:
        assert got_reason is None
    else:
        assert got_reason is not None and reason in got_reason


def test_versions_are_numbered_savedmodel_dirs_of_any_format(base: Path, cache: Path) -> None:
    saved_model(base / "m" / "1", kind="pb")
    saved_model(base / "m" / "0002", kind="pbtxt")
    saved_model(base / "m" / "1733480000", kind="cpb")
    (base / "m" / "tmp").mkdir()  # ignored, as TF Serving ignores it
    (base / "m" / "README").write_text("notes")
    (base / "m" / ".tfs-fleet-export-9").mkdir()
    models, stats = scan(base, ["m"], cache)
    versions = models["m"]["versions"]
    assert models["m"]["model_dir"] == str(base / "m")
    assert list(versions) == ["1", "2", "1733480000"]
    assert {v: e["format"] for v, e in versions.items()} == {
        "1": "pb",
        "2": "pbtxt",
        "1733480000": "cpb",
    }
    assert versions["2"]["dir_name"] == "0002" and versions["2"]["path"] == str(base / "m/0002")
    assert not any(e["export_manifest"] for e in versions.values())
    assert stats["versions"] == 3 and stats["files"] == 9 and stats["hashed_files"] == 9


def test_the_files_table_and_its_sha256(base: Path, cache: Path) -> None:
    version = saved_model(base / "m" / "5")
    (version / "assets.extra").mkdir()
    (version / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"warm")
    (version / "assets").mkdir()  # an empty directory has no entry
    models, stats = scan(base, ["m"], cache)
    entry = models["m"]["versions"]["5"]
    assert entry["files"] == {
        "assets.extra/tf_serving_warmup_requests": {"sha256": sha(b"warm"), "size": 4},
        "saved_model.pb": {"sha256": sha(b"graph 5"), "size": 7},
        "variables/variables.data-00000-of-00001": {"sha256": sha(b"weights 5"), "size": 9},
        "variables/variables.index": {"sha256": sha(b"index"), "size": 5},
    }
    canonical = json.dumps(entry["files"], sort_keys=True, separators=(",", ":")).encode()
    assert entry["manifest_sha256"] == sha(canonical)
    assert stats["hashed_bytes"] == 4 + 7 + 9 + 5


def test_a_linked_version_directory_is_followed(base: Path, cache: Path, tmp_path: Path) -> None:
    real = saved_model(tmp_path / "training-output" / "run-42")
    (base / "m").mkdir()
    (base / "m" / "42").symlink_to(real)
    models, _ = scan(base, ["m"], cache)
    assert models["m"]["versions"]["42"]["path"] == str(base / "m" / "42")
    assert set(models["m"]["versions"]["42"]["files"]) == {
        "saved_model.pb",
        "variables/variables.index",
        "variables/variables.data-00000-of-00001",
    }


def refused(base: Path, cache: Path, names: list[str] | None = None, **kwargs: Any) -> str:
    with pytest.raises(SourceError) as err:
        scan_models(str(base), names or ["m"], str(cache), racy_window_ns=0, **kwargs)
    return str(err.value)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("-3", "a negative version"),
        ("+3", "a sign ('+')"),
        ("3 ", "leading or trailing whitespace"),
        (str(INT64_MAX + 1), "beyond int64"),
    ],
)
def test_names_tf_serving_reads_but_we_do_not_publish_are_refused(
    base: Path, cache: Path, name: str, words: str
) -> None:
    saved_model(base / "m" / "1")
    saved_model(base / "m" / name)
    message = refused(base, cache)
    assert repr(str(base / "m" / name)) in message and words in message
    assert "rename it to the plain number" in message
    assert "nothing was changed on any host" in message


def test_two_names_of_one_number_are_refused(base: Path, cache: Path) -> None:
    saved_model(base / "m" / "7")
    saved_model(base / "m" / "007")
    message = refused(base, cache)
    assert f"{base / 'm'}: '007' and '7' name the same version 7" in message
    assert "rename or remove all but one" in message


def test_a_version_that_is_not_a_savedmodel_is_refused(base: Path, cache: Path) -> None:
    saved_model(base / "m" / "1")
    (base / "m" / "2" / "variables").mkdir(parents=True)  # a half-written training output
    (base / "m" / "3").write_text("not a directory")
    (base / "m" / "4").mkdir()
    (base / "m" / "4" / "saved_model.pb").mkdir()  # a directory, not the proto
    (base / "m" / "5").symlink_to(base / "nowhere")
    message = refused(base, cache)
    assert message.startswith("4 problem(s) in the export base")
    assert f"{base / 'm' / '2'} holds no saved_model.pb, saved_model.pbtxt, saved_model.cpb" in (
        message
    )
    assert f"{base / 'm' / '3'} is a file, not a SavedModel directory" in message
    assert f"{base / 'm' / '4' / 'saved_model.pb'} is not a regular file" in message
    assert f"{base / 'm' / '5'} (No such file or directory)" in message
    assert "TF Serving would try to load it as version 2 and fail" in message
    assert f"finish it, or move it out of {base / 'm'}" in message


def test_links_and_special_files_inside_a_version_are_refused(
    base: Path, cache: Path, tmp_path: Path
) -> None:
    version = saved_model(base / "m" / "1")
    (tmp_path / "elsewhere").mkdir()
    (version / "assets").symlink_to(tmp_path / "elsewhere")
    os.mkfifo(version / "pipe")
    message = refused(base, cache)
    assert f"{version}: symbolic link (not allowed in a model version): assets" in message
    assert f"{version}: not a regular file: pipe" in message
    linked = saved_model(base / "n" / "1", {"variables/variables.index": b"i"})
    (tmp_path / "graph").write_bytes(b"g")
    (linked / "saved_model.pb").symlink_to(tmp_path / "graph")
    message = refused(base, cache, ["n"])
    assert f"{linked / 'saved_model.pb'} is a symbolic link" in message


def test_missing_directories_name_the_variable_and_the_fix(base: Path, cache: Path) -> None:
    message = refused(base / "nothing", cache)
    assert f"export base {base / 'nothing'} is not a directory" in message
    assert "fix tfserving_models_export_base" in message
    message = refused(base, cache, ["m"])
    assert f"no {base / 'm'}: export a version there, or fix tfserving_models_export_base" in (
        message
    )
    with pytest.raises(SourceError, match="is not an absolute path"):
        scan_models("relative/dir", ["m"], str(cache))
    with pytest.raises(SourceError, match="cannot be a directory"):
        scan_models(str(base), ["../m"], str(cache))
    # No model at all: nothing to find, the export base need not exist.
    assert scan_models(str(base / "nothing"), [], str(cache))[0] == {}


def test_checksums_false_finds_and_checks_but_hashes_nothing(base: Path, cache: Path) -> None:
    saved_model(base / "m" / "1")
    our_export(base / "m" / "2")
    real_open, real_os_open = builtins.open, os.open
    try:
        builtins.open = _refuse_under(base, real_open)  # type: ignore[assignment]
        os.open = _refuse_under(base, real_os_open)  # type: ignore[assignment]
        models, stats, _ = scan_models(str(base), ["m"], str(cache), checksums=False)
    finally:
        builtins.open, os.open = real_open, real_os_open  # type: ignore[assignment]
    assert models["m"]["versions"] == {
        "1": {"path": str(base / "m/1"), "dir_name": "1", "format": "pb", "export_manifest": False},
        "2": {"path": str(base / "m/2"), "dir_name": "2", "format": "pb", "export_manifest": True},
    }
    assert stats["hashed_files"] == 0 and stats["versions"] == 2
    assert not cache.exists()  # nothing written either
    (base / "m" / "3").mkdir()
    assert "holds no saved_model.pb" in refused(base, cache, checksums=False)


# ---- our own export's manifest ----------------------------------------------------------------
def test_our_export_must_still_match_its_manifest(base: Path, cache: Path) -> None:
    version = our_export(base / "m" / "1")
    models, _ = scan(base, ["m"], cache)
    entry = models["m"]["versions"]["1"]
    assert entry["export_manifest"] is True
    assert MANIFEST in entry["files"]  # an ordinary file of the table, published with it
    assert model_manifest.verify(str(version)) == (3, [])
    # A byte flipped in the export since: same size, new sha256.
    data = bytearray((version / "variables/variables.index").read_bytes())
    data[0] ^= 0x01
    (version / "variables/variables.index").write_bytes(bytes(data))
    message = refused(base, cache)
    assert (
        f"{version / 'variables/variables.index'} does not match {version / MANIFEST} "
        "(sha256 differs)"
    ) in message
    assert "export the version again" in message
    (version / "variables/variables.index").write_bytes(b"index")  # put back
    (version / "extra").write_bytes(b"x")
    assert f"{version / 'extra'} does not match {version / MANIFEST} (not in the manifest)" in (
        refused(base, cache)
    )


def test_a_broken_manifest_of_ours_is_refused(base: Path, cache: Path) -> None:
    version = our_export(base / "m" / "1")
    (version / MANIFEST).write_text("{not json")
    message = refused(base, cache)
    assert f"{version / MANIFEST} is not a readable JSON manifest" in message


# ---- the hash cache ----------------------------------------------------------------------------
def _refuse_under(root: Path, real: Any) -> Any:
    prefix = str(root.resolve()) + os.sep

    def guarded(path: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(path, (str, os.PathLike)) and os.path.realpath(path).startswith(prefix):
            raise AssertionError(f"opened {path}")
        return real(path, *args, **kwargs)

    return guarded


@pytest.fixture
def nothing_opened_under(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Call with a directory: from then on, opening any file below it fails the test."""

    def guard(root: Path) -> None:
        monkeypatch.setattr(builtins, "open", _refuse_under(root, builtins.open))
        monkeypatch.setattr(os, "open", _refuse_under(root, os.open))

    yield guard


def test_an_unchanged_rerun_opens_no_file_of_the_export(
    base: Path, cache: Path, nothing_opened_under: Any
) -> None:
    for v in ("1", "2", "003"):
        saved_model(base / "m" / v)
    our_export(base / "n" / "1")
    first, stats = scan(base, ["m", "n"], cache)
    assert stats["hashed_files"] == 13 and stats["cached_files"] == 0
    assert len(list(cache.glob("*.json"))) == 4  # one per version directory
    nothing_opened_under(base)
    again, stats = scan(base, ["m", "n"], cache)
    assert again == first
    assert stats["hashed_files"] == 0 and stats["hashed_bytes"] == 0
    assert stats["cached_files"] == stats["files"] == 13
    # The manifest check of our export was not repeated either (it would have opened it).


# ---- only the versions to deploy are hashed ----------------------------------------------------
FOUND_ONLY = {"path", "dir_name", "format", "export_manifest"}
WITH_TABLE = FOUND_ONLY | {"files", "manifest_sha256"}


def five_versions(base: Path) -> None:
    for v in ("1", "2", "3", "4", "5"):
        saved_model(base / "m" / v)


def test_only_the_newest_keep_versions_are_hashed(
    base: Path, cache: Path, nothing_opened_under: Any
) -> None:
    """A TFX-style export base that keeps old versions: with keep 2 only the newest 2 are read;
    the others are found and listed but no file of theirs is opened."""
    five_versions(base)
    for v in ("1", "2", "3"):
        nothing_opened_under(base / "m" / v)
    models, stats = scan(base, [{"name": "m", "keep": 2}], cache, default_keep=3)
    versions = models["m"]["versions"]
    assert list(versions) == ["1", "2", "3", "4", "5"]  # every version is still listed
    for v in ("1", "2", "3"):
        assert set(versions[v]) == FOUND_ONLY, v
        assert versions[v]["path"] == str(base / "m" / v) and versions[v]["format"] == "pb"
    for v in ("4", "5"):
        assert set(versions[v]) == WITH_TABLE, v
        assert versions[v]["files"]["saved_model.pb"]["sha256"] == sha(b"graph " + v.encode())
    assert stats["versions"] == 5 and stats["hashed_versions"] == 2
    assert stats["hashed_files"] == stats["files"] == 6
    assert len(list(cache.glob("*.json"))) == 2  # no cache file for the others either


def test_the_default_keep_applies_to_a_model_without_keep(
    base: Path, cache: Path, nothing_opened_under: Any
) -> None:
    five_versions(base)
    for v in ("1", "2", "3", "4"):
        nothing_opened_under(base / "m" / v)
    models, stats = scan(base, [{"name": "m", "keep": None}], cache, default_keep=1)
    assert [v for v, e in models["m"]["versions"].items() if "files" in e] == ["5"]
    assert stats["hashed_versions"] == 1 and stats["hashed_files"] == 3


def test_without_default_keep_a_model_without_keep_wants_every_version(
    base: Path, cache: Path
) -> None:
    five_versions(base)
    models, stats = scan(base, [{"name": "m"}], cache)
    assert all("files" in e for e in models["m"]["versions"].values())
    assert stats["hashed_versions"] == 5 and stats["hashed_files"] == 15


def test_requested_versions_hash_exactly_those(
    base: Path, cache: Path, nothing_opened_under: Any
) -> None:
    five_versions(base)
    for v in ("1", "3", "5"):
        nothing_opened_under(base / "m" / v)
    entry = {"name": "m", "versions": [4, "2"], "keep": 1}  # versions win over keep
    models, stats = scan(base, [entry], cache, default_keep=3)
    assert [v for v, e in models["m"]["versions"].items() if "files" in e] == ["2", "4"]
    assert stats["hashed_versions"] == 2 and stats["hashed_files"] == 6


def test_several_entries_of_one_model_hash_the_union(base: Path, cache: Path) -> None:
    """The lists of several hosts (a canary's host_vars, a rollback's pinned versions)."""
    five_versions(base)
    saved_model(base / "n" / "1")
    entries = [
        {"name": "m", "keep": 1},
        {"name": "n"},
        {"name": "m", "versions": [2]},
        {"name": "m"},  # the default keep, 2
    ]
    models, stats = scan(base, entries, cache, default_keep=2)
    assert list(models) == ["m", "n"]
    assert [v for v, e in models["m"]["versions"].items() if "files" in e] == ["2", "4", "5"]
    assert "files" in models["n"]["versions"]["1"]
    assert stats["versions"] == 6 and stats["hashed_versions"] == 4


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "m", "versions": [9]},  # not exported
        {"name": "m", "keep": -1},
        {"name": "m", "keep": "many"},
        {"name": "m", "versions": "3"},
    ],
)
def test_an_entry_the_rule_refuses_hashes_nothing_and_fails_nothing(
    base: Path, cache: Path, nothing_opened_under: Any, entry: dict[str, Any]
) -> None:
    """model_plan reports the entry (naming tfserving_models_list[m]) for the host that asked."""
    five_versions(base)
    nothing_opened_under(base)
    models, stats = scan(base, [entry], cache, default_keep=2)
    assert set(models["m"]["versions"]) == {"1", "2", "3", "4", "5"}
    assert stats["hashed_versions"] == 0 and stats["hashed_files"] == 0


def test_checksums_false_ignores_versions_and_keep(
    base: Path, cache: Path, nothing_opened_under: Any
) -> None:
    five_versions(base)
    nothing_opened_under(base)
    entries = [{"name": "m", "versions": [9], "keep": 0}, {"name": "m", "keep": 1}]
    models, stats, _ = scan_models(str(base), entries, str(cache), checksums=False, default_keep=1)
    assert all(set(e) == FOUND_ONLY for e in models["m"]["versions"].values())
    assert stats["versions"] == 5 and stats["hashed_versions"] == 0
    assert not cache.exists()


def test_the_action_options_are_the_documented_ones() -> None:
    """ARGUMENT_SPEC (what the action validates) against DOCUMENTATION (what ansible-doc says)."""
    path = Path(model_manifest.__file__).parents[1] / "modules" / "model_sources.py"
    namespace: dict[str, Any] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    options = yaml.safe_load(namespace["DOCUMENTATION"])["options"]
    assert set(options) == set(ARGUMENT_SPEC)
    for name, spec in ARGUMENT_SPEC.items():
        assert options[name]["type"] == spec["type"], name
        assert bool(options[name].get("required")) == bool(spec.get("required")), name
        assert options[name].get("default") == spec.get("default"), name


def test_a_changed_file_is_hashed_again(base: Path, cache: Path) -> None:
    version = saved_model(base / "m" / "1")
    first, _ = scan(base, ["m"], cache)
    (version / "variables/variables.index").write_bytes(b"index, longer")
    again, stats = scan(base, ["m"], cache)
    assert stats["hashed_files"] == 1 and stats["cached_files"] == 2
    files = again["m"]["versions"]["1"]["files"]
    assert files["variables/variables.index"] == {"sha256": sha(b"index, longer"), "size": 13}
    assert (
        again["m"]["versions"]["1"]["manifest_sha256"]
        != (first["m"]["versions"]["1"]["manifest_sha256"])
    )


def test_a_forged_mtime_is_still_caught_by_ctime(base: Path, cache: Path) -> None:
    version = saved_model(base / "m" / "1")
    target = version / "variables/variables.index"
    scan(base, ["m"], cache)
    before = target.stat()
    time.sleep(0.05)  # past the timestamp granularity of the filesystem
    target.write_bytes(b"INDEX")  # same size
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime set back
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    assert after.st_ctime_ns != before.st_ctime_ns
    again, stats = scan(base, ["m"], cache)
    assert stats["hashed_files"] == 1
    assert again["m"]["versions"]["1"]["files"]["variables/variables.index"]["sha256"] == sha(
        b"INDEX"
    )


def test_a_file_replaced_by_another_is_hashed_again(base: Path, cache: Path) -> None:
    version = saved_model(base / "m" / "1")
    scan(base, ["m"], cache)
    target = version / "saved_model.pb"
    before = target.stat()
    (version / "new.pb").write_bytes(b"graph 2")  # same size, then renamed over: a new inode
    os.utime(version / "new.pb", ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(version / "new.pb", target)
    again, stats = scan(base, ["m"], cache)
    assert stats["hashed_files"] == 1
    assert again["m"]["versions"]["1"]["files"]["saved_model.pb"]["sha256"] == sha(b"graph 2")


def test_a_file_changed_just_before_its_hashing_is_not_cached(base: Path, cache: Path) -> None:
    saved_model(base / "m" / "1")
    scan_models(str(base), ["m"], str(cache))  # the default window: every file is brand new
    _, stats, _ = scan_models(str(base), ["m"], str(cache))
    assert stats["hashed_files"] == 3 and stats["cached_files"] == 0


def test_a_corrupt_or_foreign_cache_file_is_ignored_and_rewritten(base: Path, cache: Path) -> None:
    saved_model(base / "m" / "1")
    first, _ = scan(base, ["m"], cache)
    (cache_file,) = cache.glob("*.json")
    good = json.loads(cache_file.read_text())
    assert good["path"] == str((base / "m" / "1").resolve())
    for bad in (
        "{not json",
        "[]",
        json.dumps({**good, "format": "someone else's"}),
        json.dumps({**good, "path": "/another/version"}),
    ):
        cache_file.write_text(bad)
        again, stats = scan(base, ["m"], cache)
        assert again == first and stats["hashed_files"] == 3, bad
        assert json.loads(cache_file.read_text()) == good, bad
    # A wrong hash under the right key is what the cache serves (it trusts stat, by design);
    # a malformed entry is dropped on its own and that file hashed again.
    broken = json.loads(json.dumps(good))
    broken["files"]["saved_model.pb"][5] = "not a sha256"
    cache_file.write_text(json.dumps(broken))
    _, stats = scan(base, ["m"], cache)
    assert stats["hashed_files"] == 1 and stats["cached_files"] == 2
    assert not list(cache.glob(".tmp-*"))  # written by rename, no temporary file left


def test_the_cache_dir_is_never_inside_the_exports(base: Path, tmp_path: Path) -> None:
    saved_model(base / "m" / "1")
    for inside in (base / ".cache", base / "m" / "cache", base / "m" / "1" / "cache"):
        message = refused(base, inside)
        assert "tfserving_models_hash_cache_dir" in message and "is inside" in message
        assert not inside.exists()
    elsewhere = tmp_path / "training"
    saved_model(elsewhere / "1")
    (base / "linked").symlink_to(elsewhere)
    assert "is inside" in refused(base, elsewhere / "cache", ["linked"])


def test_an_unwritable_cache_is_a_warning_not_a_failure(base: Path, tmp_path: Path) -> None:
    saved_model(base / "m" / "1")
    (tmp_path / "file").write_text("a file where the cache directory should be")
    models, stats, warnings = scan_models(str(base), ["m"], str(tmp_path / "file" / "cache"))
    assert set(models["m"]["versions"]) == {"1"} and stats["hashed_files"] == 3
    assert len(warnings) == 1 and "tfserving_models_hash_cache_dir" in warnings[0]


def snapshot(root: Path) -> dict[str, tuple[int, int, int, str]]:
    out = {}
    for path in sorted([root, *root.rglob("*")]):
        info = path.lstat()
        data = sha(path.read_bytes()) if path.is_file() and not path.is_symlink() else ""
        out[str(path)] = (info.st_mode, info.st_size, info.st_mtime_ns, data)
    return out


def test_a_read_only_export_tree_is_left_exactly_as_it_was(base: Path, cache: Path) -> None:
    saved_model(base / "m" / "1")
    our_export(base / "m" / "2")
    (base / "m" / "tmp").mkdir()
    for path in [base, *base.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        before = snapshot(base)
        models, stats = scan(base, ["m"], cache)
        assert set(models["m"]["versions"]) == {"1", "2"} and stats["hashed_files"] == 7
        scan(base, ["m"], cache)
        assert snapshot(base) == before  # nothing added, changed or touched (mtimes included)
    finally:
        for path in [base, *base.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_the_default_cache_dir_follows_xdg() -> None:
    assert default_cache_dir({"XDG_CACHE_HOME": "/x/cache"}) == "/x/cache/tfs-fleet/model-hashes"
    home = os.path.expanduser("~")
    assert default_cache_dir({}) == f"{home}/.cache/tfs-fleet/model-hashes"
    assert default_cache_dir({"XDG_CACHE_HOME": ""}) == f"{home}/.cache/tfs-fleet/model-hashes"


# ---- the role's plan step, through ansible-playbook --------------------------------------------
PLAN_PLAY = """
- name: The plan step alone, against a host that cannot be reached
  hosts: all
  gather_facts: false
  tasks:
    - name: Plan
      ansible.builtin.include_role:
        name: tfserving_models
        tasks_from: plan.yml
    - name: Show the plan
      ansible.builtin.copy:
        content: "{{ {'plan': _tfserving_models_plan, 'stats': _stats} | to_json }}"
        dest: "{{ out }}.{{ inventory_hostname }}"
        mode: "0644"
      delegate_to: localhost
      check_mode: false
      vars:
        _stats: "{{ _tfserving_models_sources.stats }}"
"""


def test_the_role_plans_a_user_savedmodel_on_the_controller(base: Path, tmp_path: Path) -> None:
    """plan.yml with the action plugin: no connection to the hosts (port 9), check mode, the
    role's cache variable; a Keras-style export with a leading-zero name is planned as it is. Two
    hosts ask for different versions (host_vars): the one scan hashes what either wants, and
    nothing else (version 2 of 5: never opened)."""
    saved_model(base / "m" / "0001", kind="pb")
    saved_model(base / "m" / "2", kind="pbtxt")
    our_export(base / "m" / "3")
    saved_model(base / "m" / "4")
    saved_model(base / "m" / "5")
    unreachable = {"ansible_host": "127.0.0.1", "ansible_port": 9}
    hosts = {
        "h1": {**unreachable, "tfserving_models_list": [{"name": "m", "keep": 2}]},
        "h2": {**unreachable, "tfserving_models_list": [{"name": "m", "versions": [1, 3]}]},
        "h3": {**unreachable, "tfserving_models_list": [{"name": "m"}]},  # the default keep
    }
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    play = tmp_path / "plan.yml"
    play.write_text(PLAN_PLAY)
    out = tmp_path / "plan.json"
    extra = json.dumps(
        {
            "tfserving_models_export_base": str(base),
            "tfserving_models_keep": 1,
            "tfserving_models_hash_cache_dir": str(tmp_path / "cache"),
            "out": str(out),
        }
    )
    proc = ansible_playbook(play, inventory, "-e", extra, "--check", timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    result = {h: json.loads(Path(f"{out}.{h}").read_text()) for h in hosts}
    (plan,) = result["h1"]["plan"]
    assert plan["wanted"] == [4, 5]
    assert plan["sources"]["4"]["source"] == str(base / "m" / "4")
    (plan,) = result["h2"]["plan"]
    assert plan["wanted"] == [1, 3]
    assert plan["sources"]["1"]["source"] == str(base / "m" / "0001")
    assert set(plan["sources"]["3"]["files"]) == {
        MANIFEST,
        "saved_model.pb",
        "variables/variables.index",
        "variables/variables.data-00000-of-00001",
    }
    (plan,) = result["h3"]["plan"]
    assert plan["wanted"] == [5] and plan["keep"] == 1
    stats = result["h1"]["stats"]
    assert stats["versions"] == 5 and stats["hashed_versions"] == 4  # 1, 3, 4, 5: not 2
    assert len(list((tmp_path / "cache").glob("*.json"))) == 4


# ---- the whole role on this machine (connection local): restore through the verified path ------
ROLE_PLAY = """
- name: tfserving_models on this machine, into temporary directories
  hosts: all
  gather_facts: false
  roles:
    - role: tfserving_models
"""


def tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file below root (directories as "dir")."""
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): ("dir" if p.is_dir() else sha(p.read_bytes()))
        for p in sorted(root.rglob("*"))
    }


def missing_for_the_role() -> str:
    """What this machine lacks to run the role on itself (make test runs as root, and
    scripts/ensure_controller_tools.sh installs rsync); the apt module installs python3-apt
    itself when it is missing. A lack fails the test: it is never counted as a pass."""
    if os.geteuid() != 0:
        return "the role hands staged versions to root: run as root"
    if not shutil.which("rsync"):
        return "rsync is missing: run scripts/ensure_controller_tools.sh"
    return ""


@pytest.mark.slow
def test_the_role_deploys_user_savedmodels_and_restores_through_the_check(
    base: Path, tmp_path: Path
) -> None:
    """The role with connection local (this machine as the host, every directory temporary):
    user SavedModels deployed as they are (0001 published as 1), idempotent, a version moved
    aside and wanted again goes through staging, the rsync repairs a damaged copy, check mode
    changes nothing, and a byte flipped in our own export stops the plan before any change."""
    assert not missing_for_the_role(), missing_for_the_role()
    saved_model(base / "m" / "0001", kind="pbtxt")
    saved_model(base / "m" / "2", {"saved_model.pb": b"g2", "assets.extra/warmup": b"w"})
    our_export(base / "m" / "3")
    host = tmp_path / "host"
    models, retired = host / "models" / "m", host / "retired" / "m"
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    local:\n      ansible_connection: local\n"
        "      ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
    )
    play = tmp_path / "role.yml"
    play.write_text(ROLE_PLAY)

    def role(versions: list[int], *args: str) -> tuple[int, dict[str, Any], str]:
        extra = {
            "tfserving_models_export_base": str(base),
            "tfserving_models_list": [{"name": "m", "versions": versions}],
            "tfserving_models_base_dir": str(host / "models"),
            "tfserving_models_retired_dir": str(host / "retired"),
            "tfserving_models_hash_cache_dir": str(tmp_path / "cache"),
            "tfserving_config_dir": str(host / "etc"),
            "tfserving_textfile_dir": "",
        }
        proc = ansible_playbook(play, inventory, "-e", json.dumps(extra), *args, timeout=300,
                                json_report=True)  # fmt: skip
        report = json.loads(proc.stdout) if proc.stdout.startswith("{") else {}
        return proc.returncode, report.get("stats", {}).get("local", {}), proc.stdout[-4000:]

    def served() -> list[str]:
        """The model directory without the publish records beside the versions."""
        return sorted(p.name for p in models.iterdir() if not p.name.startswith(RECORD))

    rc, stats, out = role([1, 2])
    assert rc == 0, out
    assert served() == ["1", "2"]
    assert sorted(p.name for p in models.iterdir() if p.name.startswith(RECORD)) == [
        f"{RECORD}1.json",
        f"{RECORD}2.json",
    ]
    assert tree(models / "1") == tree(base / "m" / "0001")  # as it is: nothing added
    assert tree(models / "2") == tree(base / "m" / "2")
    rc, stats, out = role([1, 2])
    assert rc == 0 and stats["changed"] == 0, out

    rc, stats, out = role([2, 3])
    assert rc == 0, out
    assert served() == ["2", "3"]
    assert tree(models / "3") == tree(base / "m" / "3")  # our manifest travels with it
    assert sorted(p.name for p in retired.iterdir()) == ["1"]

    # The moved-aside copy is damaged on the host: a changed file and a foreign one.
    (retired / "1" / "variables" / "variables.index").write_bytes(b"INDEX")
    (retired / "1" / "foreign").write_bytes(b"x")
    before = tree(host)
    rc, stats, out = role([1, 2], "--check")
    assert rc == 0, out
    assert tree(host) == before  # check mode: nothing moved, nothing written

    rc, stats, out = role([1, 2])
    assert rc == 0, out
    assert served() == ["1", "2"]  # no staging directory left
    assert tree(models / "1") == tree(base / "m" / "0001")  # repaired from the controller
    assert sorted(p.name for p in retired.iterdir()) == ["3"]
    rc, stats, out = role([1, 2])
    assert rc == 0 and stats["changed"] == 0, out

    # A byte flipped in our own export on the controller: refused before anything changes.
    data = base / "m" / "3" / "variables" / "variables.index"
    data.write_bytes(bytes([data.read_bytes()[0] ^ 1]) + data.read_bytes()[1:])
    before = tree(host)
    rc, stats, out = role([2, 3])
    assert rc != 0
    assert f"{data} does not match" in out and "export the version again" in out, out
    assert tree(host) == before


OVERRIDE_PLAY = PLAN_PLAY.replace(
    "        tasks_from: plan.yml\n",
    "        tasks_from: plan.yml\n"
    "      vars:\n"
    '        tfserving_models_list_override: "{{ override }}"\n',
)


@pytest.mark.parametrize(
    ("override", "wanted"), [(None, [5]), ([{"name": "m", "versions": [3]}], [3])]
)
def test_the_override_wins_over_an_extra_var_list(
    base: Path, tmp_path: Path, override: Any, wanted: list[int]
) -> None:
    """The rollback pins a host through tfserving_models_list_override: role vars cannot beat
    `-e tfserving_models_list=...` (extra vars win), so a rollback that set tfserving_models_list
    kept the failed version when the list came as an extra var (found by the fleet's user-model
    rollout). Without an override the extra var's list is planned."""
    for version in (3, 4, 5):
        saved_model(base / "m" / str(version))
    inventory = tmp_path / "hosts.yml"
    host = {"ansible_host": "127.0.0.1", "ansible_port": 9}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"h1": host}}}))
    play = tmp_path / "plan.yml"
    play.write_text(OVERRIDE_PLAY)
    out = tmp_path / "plan.json"
    extra = {
        "tfserving_models_list": [{"name": "m"}],
        "tfserving_models_export_base": str(base),
        "tfserving_models_keep": 1,
        "tfserving_models_hash_cache_dir": str(tmp_path / "cache"),
        "out": str(out),
        "override": override,
    }
    proc = ansible_playbook(play, inventory, "-e", json.dumps(extra), "--check", timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    (plan,) = json.loads(Path(f"{out}.h1").read_text())["plan"]
    assert plan["wanted"] == wanted
