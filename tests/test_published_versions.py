"""Published model versions on the host (issue 23 items 1 and 8): each run notices a published
file that changed (stat against the publish record, a hash only where the stat moved; every file
with verify=full), re-syncs a version that no longer matches through a hard-linked staging copy
and an atomic swap, counts it in the drift metrics, and removes the staging directories of
versions no longer wanted. The modules run as module files (as Ansible ships them) against temp
directories; the comparison also runs in-process to count the files opened."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.tfs_fleet.common.plugins.module_utils import (
    model_manifest,
    published_versions,
)

from helpers import REPO, run_collection_module

MODULES = REPO / "collections/ansible_collections/tfs_fleet/common/plugins/modules"
STAGING = ".tfs-fleet-incoming-"
RECORD = ".tfs-fleet-published-"

DATA = {
    "saved_model.pb": b"graph",
    "fingerprint.pb": b"fp",
    "variables/variables.index": b"index",
    "variables/variables.data-00000-of-00001": b"weights" * 100,
}


def run(module: str, args: dict[str, Any], tmp_path: Path) -> tuple[int, dict[str, Any]]:
    return run_collection_module(module, args, tmp_path)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


TABLE = {rel: {"sha256": sha(content), "size": len(content)} for rel, content in DATA.items()}


def publish(model_dir: Path, version: int, tmp_path: Path) -> Path:
    """Stage a version and publish it with its record, as the role does."""
    staging = model_dir / f"{STAGING}{version}"
    for rel, content in DATA.items():
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_bytes(content)
    rc, out = run(
        "model_version_publish",
        {
            "staging": str(staging),
            "dest": str(model_dir / str(version)),
            "files": TABLE,
            "record": str(model_dir / f"{RECORD}{version}.json"),
        },
        tmp_path,
    )
    assert rc == 0 and out["changed"] is True, out
    return model_dir / str(version)


def check(model_dir: Path, tmp_path: Path, **extra: Any) -> tuple[int, dict[str, Any]]:
    args = {"model_dir": str(model_dir), "sources": {"1": {"files": TABLE, "source": "/x"}}}
    return run("published_versions", {**args, **extra}, tmp_path)


@pytest.fixture
def version(tmp_path: Path) -> Path:
    return publish(tmp_path / "models" / "m", 1, tmp_path)


def test_publish_writes_a_record_beside_the_version(version: Path) -> None:
    record = json.loads((version.parent / f"{RECORD}1.json").read_text())
    assert set(record["files"]) == set(DATA) and record["repairs"] == 0
    index = version / "variables" / "variables.index"
    entry = record["files"]["variables/variables.index"]
    assert entry["sha256"] == TABLE["variables/variables.index"]["sha256"]
    assert (entry["size"], entry["mtime_ns"], entry["ino"]) == (
        5,
        index.stat().st_mtime_ns,
        index.stat().st_ino,
    )
    assert sorted(p.name for p in version.iterdir()) == [
        "fingerprint.pb",
        "saved_model.pb",
        "variables",
    ]  # nothing added inside the served version


def test_an_unchanged_version_is_checked_without_reading_a_file(
    version: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc, out = check(version.parent, tmp_path)
    assert rc == 0 and out["changed"] is False and out["hashed_files"] == 0, out
    assert out["repair"] == [] and out["recorded"] == []
    # In-process, with every open of a file under the version counted: none.
    opened: list[str] = []
    real_open = os.open

    def counting_open(path: Any, *args: Any, **kwargs: Any) -> int:
        if str(path).startswith(str(version)):
            opened.append(str(path))
        return real_open(path, *args, **kwargs)

    real_builtin_open = open

    def counting_builtin_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).startswith(str(version)):
            opened.append(str(path))
        return real_builtin_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting_open)
    monkeypatch.setattr("builtins.open", counting_builtin_open)
    record = published_versions.read_record(str(version.parent / f"{RECORD}1.json"))
    result = published_versions.check_version(str(version), TABLE, record)
    assert result.problems == [] and result.hashed_files == 0 and not result.record_stale
    assert opened == []


def damage_keeping_size_and_mtime(path: Path) -> None:
    info = path.stat()
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert path.stat().st_size == info.st_size and path.stat().st_mtime_ns == info.st_mtime_ns


@pytest.mark.parametrize(
    ("label", "damage", "problem"),
    [
        (
            "changed size",
            lambda v: (v / "saved_model.pb").write_bytes(b"graph!"),
            "size differs: saved_model.pb",
        ),
        (
            "changed mtime",
            lambda v: (v / "fingerprint.pb").write_bytes(b"FP"),
            "sha256 differs: fingerprint.pb",
        ),
        (
            "flipped byte, size and mtime restored",
            lambda v: damage_keeping_size_and_mtime(v / "variables/variables.data-00000-of-00001"),
            "sha256 differs: variables/variables.data-00000-of-00001",
        ),
        (
            "extra file",
            lambda v: (v / "variables" / "stray").write_bytes(b"x"),
            "not in the controller's table: variables/stray",
        ),
        ("missing file", lambda v: (v / "fingerprint.pb").unlink(), "missing: fingerprint.pb"),
    ],
)
def test_a_changed_version_is_found_by_the_stat_check(
    version: Path, tmp_path: Path, label: str, damage: Any, problem: str
) -> None:
    damage(version)
    rc, out = check(version.parent, tmp_path)
    assert rc == 0 and out["changed"] is True and out["repair"] == [1], (label, out)
    assert out["problems"] == {"1": [problem]}, label
    assert "m 1" in out["msg"] and problem in out["msg"], out["msg"]
    warnings = json.dumps(out.get("warnings", []))  # ansible-core 2.19: structured warnings
    assert "model m version 1" in warnings and problem in warnings, out
    # Only the file whose stat moved was read (a changed size needs no read).
    assert out["hashed_files"] <= 1, out


def test_damage_under_unchanged_metadata_needs_the_full_check(
    version: Path, tmp_path: Path
) -> None:
    """Bit rot: the bytes change while size, mtime, ctime and inode stay (simulated by recording
    the stat after the damage). The stat check cannot see it; verify=full hashes every file."""
    damage_keeping_size_and_mtime(version / "variables/variables.data-00000-of-00001")
    record_file = version.parent / f"{RECORD}1.json"
    record = json.loads(record_file.read_text())
    for rel, entry in record["files"].items():
        info = (version / rel).stat()
        entry.update(mtime_ns=info.st_mtime_ns, ctime_ns=info.st_ctime_ns, ino=info.st_ino)
    record_file.write_text(json.dumps(record))
    rc, out = check(version.parent, tmp_path)
    assert rc == 0 and out["changed"] is False and out["hashed_files"] == 0, out
    rc, out = check(version.parent, tmp_path, verify="full")
    assert rc == 0 and out["changed"] is True and out["hashed_files"] == len(DATA), out
    assert out["problems"] == {"1": ["sha256 differs: variables/variables.data-00000-of-00001"]}


def test_a_touched_file_is_hashed_once_and_recorded_again(version: Path, tmp_path: Path) -> None:
    os.utime(version / "saved_model.pb", ns=(1, 1))
    rc, out = check(version.parent, tmp_path)
    assert rc == 0 and out["changed"] is False and out["hashed_files"] == 1, out
    assert out["recorded"] == [1]
    rc, out = check(version.parent, tmp_path)
    assert out["hashed_files"] == 0 and out["recorded"] == [], out


def test_a_version_without_a_record_is_hashed_once_and_recorded(
    version: Path, tmp_path: Path
) -> None:
    (version.parent / f"{RECORD}1.json").unlink()
    rc, out = check(version.parent, tmp_path, _ansible_check_mode=True)
    assert rc == 0 and out["changed"] is False and out["recorded"] == [1]
    assert not (version.parent / f"{RECORD}1.json").exists()  # check mode writes nothing
    rc, out = check(version.parent, tmp_path)
    assert (
        rc == 0
        and out["changed"] is False
        and out["hashed_files"] == len(DATA)
        and out["recorded"] == [1]
    )
    _rc, out = check(version.parent, tmp_path)
    assert out["hashed_files"] == 0 and out["recorded"] == []


def test_a_version_re_exported_on_the_controller_is_re_synced(
    version: Path, tmp_path: Path
) -> None:
    """The controller is the source of truth: a new table for the same number is a mismatch."""
    table = {**TABLE, "fingerprint.pb": {"sha256": sha(b"FP"), "size": 2}}
    _rc, out = run(
        "published_versions",
        {"model_dir": str(version.parent), "sources": {"1": {"files": table}}},
        tmp_path,
    )
    assert out["changed"] is True and out["problems"] == {"1": ["sha256 differs: fingerprint.pb"]}


def rsync_like(staging: Path) -> None:
    """What rsync --checksum --delete does to the staged copy: a differing file is written anew
    and renamed over the old name (never written into), an extra file is deleted, a missing one
    sent."""
    for rel, content in DATA.items():
        path = staging / rel
        if path.exists() and path.read_bytes() == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp"
        tmp.write_bytes(content)
        tmp.rename(path)
    for path in sorted(staging.rglob("*"), reverse=True):
        rel = path.relative_to(staging).as_posix()
        if path.is_file() and rel not in DATA:
            path.unlink()


def test_a_changed_version_is_re_synced_swapped_in_and_counted(
    version: Path, tmp_path: Path
) -> None:
    model_dir = version.parent
    served = version / "variables/variables.data-00000-of-00001"
    damage_keeping_size_and_mtime(served)
    (version / "stray").write_bytes(b"x")
    untouched = (version / "saved_model.pb").stat().st_ino

    rc, out = check(model_dir, tmp_path)
    assert out["changed"] is True and out["repair"] == [1], out
    staging = model_dir / f"{STAGING}1"
    # The staged copy is hard links (no data copied); the served version is left as it is.
    assert (staging / "saved_model.pb").stat().st_ino == untouched
    assert not (staging / "stray").exists() and (version / "stray").exists()

    rsync_like(staging)
    assert served.read_bytes() != DATA["variables/variables.data-00000-of-00001"]  # not written
    rc, out = run(
        "model_version_publish",
        {
            "staging": str(staging),
            "dest": str(version),
            "files": TABLE,
            "record": str(model_dir / f"{RECORD}1.json"),
            "replace": True,
        },
        tmp_path,
    )
    assert rc == 0 and out["changed"] is True and out["replaced"] is True, out
    assert "re-synced" in out["msg"]
    assert not staging.exists() and not (version / "stray").exists()
    for rel, content in DATA.items():
        assert (version / rel).read_bytes() == content, rel
    assert sorted(p.name for p in model_dir.iterdir()) == [f"{RECORD}1.json", "1"]

    rc, out = check(model_dir, tmp_path)
    assert out["changed"] is False and out["hashed_files"] == 0, out

    rc, out = run(
        "published_versions",
        {"step": "metrics", "models_dir": str(model_dir.parent), "models": {"m": [1]}},
        tmp_path,
    )
    assert out["changed"] is False
    assert 'tfs_fleet_model_version_repairs_total{model="m",version="1"} 1' in out["metrics"]
    assert (
        'tfs_fleet_model_version_last_repair_timestamp_seconds{model="m",version="1"} '
        in (out["metrics"])
    )
    again = run(
        "published_versions",
        {"step": "metrics", "models_dir": str(model_dir.parent), "models": {"m": [1]}},
        tmp_path,
    )[1]
    assert again["metrics"] == out["metrics"]  # unchanged text: the .prom file is not rewritten


def test_metrics_count_zero_for_a_version_never_re_synced(version: Path, tmp_path: Path) -> None:
    _rc, out = run(
        "published_versions",
        {"step": "metrics", "models_dir": str(version.parent.parent), "models": {"m": [1, 2]}},
        tmp_path,
    )
    lines = out["metrics"].splitlines()
    assert 'tfs_fleet_model_version_repairs_total{model="m",version="1"} 0' in lines
    assert 'tfs_fleet_model_version_repairs_total{model="m",version="2"} 0' in lines
    assert not [line for line in lines if line.startswith("tfs_fleet_model_version_last_repair")]


def test_check_mode_reports_a_changed_version_and_changes_nothing(
    version: Path, tmp_path: Path
) -> None:
    (version / "fingerprint.pb").write_bytes(b"FP")
    before = sorted(p.name for p in version.parent.iterdir())
    record = (version.parent / f"{RECORD}1.json").read_text()
    _rc, out = check(version.parent, tmp_path, _ansible_check_mode=True)
    assert out["changed"] is True and out["repair"] == [1], out
    assert sorted(p.name for p in version.parent.iterdir()) == before
    assert (version.parent / f"{RECORD}1.json").read_text() == record


def test_a_leftover_staging_dir_of_a_changed_version_is_replaced(
    version: Path, tmp_path: Path
) -> None:
    leftover = version.parent / f"{STAGING}1"
    leftover.mkdir()
    (leftover / "junk").write_bytes(b"junk")
    (version / "fingerprint.pb").write_bytes(b"FP")
    _rc, out = check(version.parent, tmp_path)
    assert out["repair"] == [1] and not (leftover / "junk").exists()
    assert (leftover / "saved_model.pb").stat().st_ino == (version / "saved_model.pb").stat().st_ino


def test_versions_not_published_are_left_to_the_transfer(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    rc, out = check(model_dir, tmp_path)
    assert rc == 0 and out["changed"] is False and out["repair"] == []
    rc, out = check(tmp_path / "missing", tmp_path)  # a new model, in check mode
    assert rc == 0 and out["changed"] is False


def test_tidy_removes_staging_dirs_no_run_will_use(version: Path, tmp_path: Path) -> None:
    model_dir = version.parent
    withdrawn = model_dir / f"{STAGING}5"  # failed, then withdrawn: a multi-GB leak before
    (withdrawn / "variables").mkdir(parents=True)
    (withdrawn / "variables" / "big").write_bytes(b"x" * 4096)
    in_flight = model_dir / f"{STAGING}2"  # wanted, not published yet: the next run resumes it
    in_flight.mkdir()
    (model_dir / f"{STAGING}1").mkdir()  # wanted and published: a leftover
    (model_dir / f"{RECORD}3.json").write_text("{}")  # a version moved aside
    (model_dir / ".tfs-fleet-replaced-1").mkdir()  # a fallback swap that was interrupted
    (model_dir / "models.config").write_text("")
    args = {"step": "tidy", "model_dir": str(model_dir), "wanted": [1, 2]}

    rc, out = run("published_versions", {**args, "_ansible_check_mode": True}, tmp_path)
    expected = [".tfs-fleet-incoming-1", ".tfs-fleet-incoming-5", ".tfs-fleet-published-3.json",
                ".tfs-fleet-replaced-1"]  # fmt: skip
    assert out["changed"] is True and out["removed"] == expected and out["freed_bytes"] == 4096
    assert withdrawn.exists()  # check mode removes nothing

    rc, out = run("published_versions", args, tmp_path)
    assert rc == 0 and out["changed"] is True and out["removed"] == expected, out
    assert ".tfs-fleet-incoming-5" in out["msg"] and "4.0 KiB" in out["msg"]
    assert sorted(p.name for p in model_dir.iterdir()) == [
        ".tfs-fleet-incoming-2",
        f"{RECORD}1.json",
        "1",
        "models.config",
    ]
    rc, out = run("published_versions", args, tmp_path)
    assert out["changed"] is False and out["removed"] == []


def test_tidy_removes_a_linked_staging_dir_without_following_it(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"keep")
    (model_dir / f"{STAGING}9").symlink_to(outside)
    _rc, out = run("published_versions", {"step": "tidy", "model_dir": str(model_dir)}, tmp_path)
    assert out["removed"] == [f"{STAGING}9"] and (outside / "keep").exists()


def test_bad_input_names_the_option(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    cases = [
        ({"model_dir": str(model_dir), "sources": {"x": {"files": TABLE}}}, "sources['x']"),
        ({"model_dir": str(model_dir), "sources": {"1": {}}}, "sources['1'].files"),
        ({"model_dir": str(model_dir), "verify": "some"}, "verify"),
        ({"model_dir": str(model_dir), "owner": "no-such-user-tfs"}, "owner"),
        ({"model_dir": str(model_dir), "staging_prefix": "x/"}, "staging_prefix"),
        ({"step": "metrics"}, "models_dir"),
    ]
    for args, words in cases:
        rc, out = run("published_versions", args, tmp_path)
        assert rc == 1 and words in out["msg"], (args, out["msg"])


def test_the_record_never_reads_a_linked_file(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"format": 1, "files": {}}))
    link = tmp_path / f"{RECORD}1.json"
    link.symlink_to(target)
    assert published_versions.read_record(str(link)) is None


def test_the_stat_check_reads_only_the_files_whose_stat_moved(
    version: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[str] = []
    real = model_manifest.sha256_file

    def counting(path: str) -> str:
        hashed.append(os.path.relpath(path, version))
        return real(path)

    monkeypatch.setattr(published_versions, "sha256_file", counting)
    record = published_versions.read_record(str(version.parent / f"{RECORD}1.json"))
    os.utime(version / "fingerprint.pb", ns=(5, 5))
    result = published_versions.check_version(str(version), TABLE, record)
    assert hashed == ["fingerprint.pb"] and result.problems == [] and result.record_stale
    hashed.clear()
    result = published_versions.check_version(str(version), TABLE, record, full=True)
    assert sorted(hashed) == sorted(DATA)


@pytest.mark.parametrize("can_swap", [True, False])
def test_replace_dir_with_and_without_an_atomic_swap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, can_swap: bool
) -> None:
    dest, staging = tmp_path / "1", tmp_path / f"{STAGING}1"
    (dest / "d").mkdir(parents=True)
    (dest / "d" / "f").write_bytes(b"old")
    staging.mkdir()
    (staging / "f").write_bytes(b"new")
    if not can_swap:
        monkeypatch.setattr(published_versions, "exchange", lambda a, b: False)
    published_versions.replace_dir(str(staging), str(dest))
    assert (dest / "f").read_bytes() == b"new" and not (dest / "d").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1"]


@pytest.mark.parametrize("base", ["models", "s+d", "a.b", "[x]", "(m)|n", "a*"])
def test_the_check_makes_the_directories_and_lists_the_versions_found(
    tmp_path: Path, base: str
) -> None:
    # The role's find step before (issue 14 item 3): a directory name is a name, never a
    # pattern. Published, moved-aside and staged versions are directories, never links or files.
    # /srv/tfserving/models/<model> on a new host: /srv/tfserving is not there either.
    model_dir, retired = tmp_path / "srv" / base / "m", tmp_path / "srv" / f"{base}-retired" / "m"
    rc, out = check(model_dir, tmp_path, retired_dir=str(retired))
    assert rc == 0 and out["changed"] is True, out
    assert out["found"] == {"served": [], "retired": [], "staged": []}
    for path in (tmp_path / "srv", model_dir.parent, model_dir, retired.parent, retired):
        assert path.is_dir() and (path.stat().st_mode & 0o777) == 0o755, path
    publish(model_dir, 1, tmp_path)
    (model_dir / "12").mkdir()
    (model_dir / f"{STAGING}3").mkdir()
    (model_dir / f"{STAGING}x").mkdir()
    (model_dir / "7").symlink_to(model_dir / "12")
    (model_dir / "8").write_text("a file")
    (retired / "2").mkdir()
    (tmp_path / "srv" / f"{base}x").mkdir()
    (tmp_path / "srv" / f"{base}x" / "5").mkdir()
    rc, out = check(model_dir, tmp_path, retired_dir=str(retired))
    assert rc == 0 and out["changed"] is False, out
    assert out["found"] == {"served": [1, 12], "retired": [2], "staged": [3]}


def test_the_check_repairs_a_directory_mode_and_reports_it_in_check_mode_only(
    tmp_path: Path,
) -> None:
    model_dir, retired = tmp_path / "models" / "m", tmp_path / "retired" / "m"
    rc, out = check(model_dir, tmp_path, retired_dir=str(retired), _ansible_check_mode=True)
    assert rc == 0 and out["changed"] is True and not model_dir.parent.exists(), out
    assert out["found"] == {"served": [], "retired": [], "staged": []}
    check(model_dir, tmp_path, retired_dir=str(retired))
    model_dir.chmod(0o700)
    rc, out = check(model_dir, tmp_path, retired_dir=str(retired))
    assert rc == 0 and out["changed"] is True and str(model_dir) in out["msg"], out
    assert (model_dir.stat().st_mode & 0o777) == 0o755


def test_the_check_refuses_a_file_where_a_directory_belongs(tmp_path: Path) -> None:
    model_dir, retired = tmp_path / "models" / "m", tmp_path / "retired"
    retired.write_text("not a directory")
    rc, out = check(model_dir, tmp_path, retired_dir=str(retired / "m"))
    assert rc != 0 and str(retired) in out["msg"], out
