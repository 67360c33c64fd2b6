"""tfs_fleet.common.model_version_publish run as a module file against temp directories."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from helpers import REPO, run_collection_module

MODULE = (
    REPO
    / "collections/ansible_collections/tfs_fleet/common/plugins/modules/model_version_publish.py"
)
MANIFEST = "tfs_fleet_manifest.json"


def run(args: dict[str, Any], tmp_path: Path) -> tuple[int, dict[str, Any]]:
    return run_collection_module("model_version_publish", args, tmp_path)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stage(models: Path, name: str = ".tfs-fleet-incoming-1") -> tuple[Path, str]:
    """A staged version with one file and its manifest; returns (staging, manifest sha256)."""
    staging = models / name
    (staging / "variables").mkdir(parents=True)
    (staging / "saved_model.pb").write_bytes(b"graph")
    (staging / "variables" / "v.data").write_bytes(b"weights")
    files = {
        "saved_model.pb": {"sha256": sha(b"graph"), "size": 5},
        "variables/v.data": {"sha256": sha(b"weights"), "size": 7},
    }
    text = json.dumps({"format": 1, "files": files})
    (staging / MANIFEST).write_text(text)
    return staging, sha(text.encode())


def test_publishes_a_verified_version(tmp_path: Path) -> None:
    models = tmp_path / "m"
    staging, digest = stage(models)
    rc, out = run(
        {"staging": str(staging), "dest": str(models / "1"), "manifest_sha256": digest}, tmp_path
    )
    assert rc == 0 and out["changed"] is True and out["verified_files"] == 2
    assert (models / "1" / "saved_model.pb").read_bytes() == b"graph" and not staging.exists()


def test_malformed_manifests_fail_with_a_message(tmp_path: Path) -> None:
    cases = {
        "list": "[1, 2]",
        "no-sha": json.dumps({"files": {"saved_model.pb": {"size": 5}}}),
        "bad-json": "{not json",
        "entry-not-object": json.dumps({"files": {"saved_model.pb": "abc"}}),
        "files-a-list": json.dumps({"files": ["saved_model.pb"]}),
    }
    for n, (label, text) in enumerate(cases.items()):
        models = tmp_path / label
        staging, _ = stage(models)
        (staging / MANIFEST).write_text(text)
        rc, out = run({"staging": str(staging), "dest": str(models / "1")}, tmp_path)
        assert rc != 0, label
        assert MANIFEST in out["msg"], (label, out["msg"])
        assert not (models / "1").exists() and staging.exists(), label
        del n


def test_an_empty_existing_dest_is_not_taken_as_published(tmp_path: Path) -> None:
    models = tmp_path / "m"
    staging, digest = stage(models)
    (models / "1").mkdir()
    rc, out = run(
        {"staging": str(staging), "dest": str(models / "1"), "manifest_sha256": digest}, tmp_path
    )
    assert rc != 0 and str(models / "1") in out["msg"] and "move it aside" in out["msg"]
    assert list((models / "1").iterdir()) == []


def test_a_published_dest_removes_the_leftover_staging_dir(tmp_path: Path) -> None:
    models = tmp_path / "m"
    staging, digest = stage(models)
    published, _ = stage(models, "1")
    rc, out = run(
        {"staging": str(staging), "dest": str(published), "manifest_sha256": digest}, tmp_path
    )
    assert rc == 0 and out["changed"] is True, out
    assert not staging.exists() and (published / "saved_model.pb").exists()
    rc, out = run(
        {"staging": str(staging), "dest": str(published), "manifest_sha256": digest}, tmp_path
    )
    assert rc == 0 and out["changed"] is False


def test_a_linked_directory_inside_staging_is_refused(tmp_path: Path) -> None:
    models = tmp_path / "m"
    staging, digest = stage(models)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil").write_text("x")
    (staging / "assets").symlink_to(outside)
    rc, out = run(
        {"staging": str(staging), "dest": str(models / "1"), "manifest_sha256": digest}, tmp_path
    )
    assert rc != 0 and "symbolic link" in out["msg"] and "assets" in out["msg"]
    assert not (models / "1").exists()


def test_a_linked_file_inside_staging_is_refused(tmp_path: Path) -> None:
    models = tmp_path / "m"
    staging, digest = stage(models)
    (staging / "saved_model.pb").unlink()
    (tmp_path / "graph").write_bytes(b"graph")
    (staging / "saved_model.pb").symlink_to(tmp_path / "graph")
    rc, out = run(
        {"staging": str(staging), "dest": str(models / "1"), "manifest_sha256": digest}, tmp_path
    )
    assert rc != 0 and "symbolic link" in out["msg"]
    assert not (models / "1").exists()


def test_a_staging_dir_that_is_a_link_is_refused(tmp_path: Path) -> None:
    real, digest = stage(tmp_path / "elsewhere")
    models = tmp_path / "m"
    models.mkdir()
    (models / ".tfs-fleet-incoming-1").symlink_to(real)
    rc, out = run(
        {
            "staging": str(models / ".tfs-fleet-incoming-1"),
            "dest": str(models / "1"),
            "manifest_sha256": digest,
        },
        tmp_path,
    )
    assert rc != 0 and "symbolic link" in out["msg"]
    assert not (models / "1").is_symlink() and not (models / "1").exists()


def test_an_empty_manifest_sha256_is_refused(tmp_path: Path) -> None:
    models = tmp_path / "m"
    staging, _ = stage(models)
    # A stale manifest in staging: only the controller's sha256 would catch it, and "" skipped it.
    for value in ("", "abc"):
        rc, out = run(
            {"staging": str(staging), "dest": str(models / "1"), "manifest_sha256": value}, tmp_path
        )
        assert rc != 0 and out["msg"].startswith(f"manifest_sha256 {value!r} is not a sha256"), (
            value
        )
        assert not (models / "1").exists() and staging.exists()


def test_a_foreign_manifest_is_refused(tmp_path: Path) -> None:
    models = tmp_path / "m"
    staging, _ = stage(models)
    rc, out = run(
        {"staging": str(staging), "dest": str(models / "1"), "manifest_sha256": "0" * 64}, tmp_path
    )
    assert rc != 0 and "differs from the controller's manifest" in out["msg"]


def test_check_mode_verifies_but_publishes_nothing(tmp_path: Path) -> None:
    models = tmp_path / "m"
    staging, digest = stage(models)
    args = {"staging": str(staging), "dest": str(models / "1"), "manifest_sha256": digest}
    rc, out = run({**args, "_ansible_check_mode": True}, tmp_path)
    assert rc == 0 and out["changed"] is True and out["verified_files"] == 2
    assert staging.is_dir() and not (models / "1").exists()
    (staging / "saved_model.pb").write_bytes(b"graph!")
    rc, out = run({**args, "_ansible_check_mode": True}, tmp_path)
    assert rc == 1 and "size differs: saved_model.pb" in out["msg"]


def test_a_numeric_staging_name_is_refused(tmp_path: Path) -> None:
    models = tmp_path / "m"
    staging, _digest = stage(models, name="7")
    rc, out = run({"staging": str(staging), "dest": str(models / "8")}, tmp_path)
    assert rc == 1 and "numeric name: TF Serving would load it" in out["msg"]


# ---- files: the controller's table (tfs_fleet.common.model_sources), no manifest needed --------
def user_version(models: Path, name: str = ".tfs-fleet-incoming-1") -> tuple[Path, dict]:
    """A SavedModel as a user's own code writes it (no tfs_fleet_manifest.json) and its table."""
    staging = models / name
    (staging / "variables").mkdir(parents=True)
    (staging / "assets").mkdir()
    data = {
        "saved_model.pbtxt": b"meta_graphs {}",
        "variables/variables.index": b"index",
        "variables/variables.data-00000-of-00001": b"weights" * 10,
        "fingerprint.pb": b"fp",
    }
    for rel, content in data.items():
        (staging / rel).write_bytes(content)
    files = {rel: {"sha256": sha(content), "size": len(content)} for rel, content in data.items()}
    return staging, files


def test_files_publish_a_user_savedmodel_without_a_manifest(tmp_path: Path) -> None:
    models = tmp_path / "m"
    staging, files = user_version(models)
    rc, out = run({"staging": str(staging), "dest": str(models / "7"), "files": files}, tmp_path)
    assert rc == 0 and out["changed"] is True and out["verified_files"] == 4, out
    assert not staging.exists()
    published = sorted(p.relative_to(models / "7").as_posix() for p in (models / "7").rglob("*"))
    assert published == ["assets", "fingerprint.pb", "saved_model.pbtxt", "variables",
                         "variables/variables.data-00000-of-00001",
                         "variables/variables.index"]  # fmt: skip
    assert not (models / "7" / MANIFEST).exists()  # nothing added to the served version
    rc, out = run({"staging": str(staging), "dest": str(models / "7"), "files": files}, tmp_path)
    assert rc == 0 and out["changed"] is False and "already published" in out["msg"]


def test_files_take_our_own_manifest_as_an_ordinary_file(tmp_path: Path) -> None:
    models = tmp_path / "m"
    staging, _digest = stage(models)
    files = {
        rel: {"sha256": sha(p.read_bytes()), "size": p.stat().st_size}
        for p in staging.rglob("*")
        if p.is_file() and (rel := p.relative_to(staging).as_posix())
    }
    assert MANIFEST in files
    rc, out = run({"staging": str(staging), "dest": str(models / "1"), "files": files}, tmp_path)
    assert rc == 0 and out["verified_files"] == 3 and (models / "1" / MANIFEST).is_file()


def test_files_refuse_any_difference_and_publish_nothing(tmp_path: Path) -> None:
    cases = {
        "extra": lambda s: (s / "variables" / "extra").write_bytes(b"x"),
        "missing": lambda s: (s / "fingerprint.pb").unlink(),
        "resized": lambda s: (s / "saved_model.pbtxt").write_bytes(b"meta_graphs {} "),
        "changed": lambda s: (s / "variables" / "variables.index").write_bytes(b"INDEX"),
    }
    expected = {
        "extra": "not in the controller's table: variables/extra",
        "missing": "missing: fingerprint.pb",
        "resized": "size differs: saved_model.pbtxt",
        "changed": "sha256 differs: variables/variables.index",
    }
    for label, damage in cases.items():
        models = tmp_path / label
        staging, files = user_version(models)
        damage(staging)
        rc, out = run(
            {"staging": str(staging), "dest": str(models / "1"), "files": files}, tmp_path
        )
        assert rc == 1, label
        assert "does not match the controller's files table" in out["msg"], out["msg"]
        assert out["problems"] == [expected[label]], label
        assert not (models / "1").exists() and staging.is_dir(), label


def test_files_that_do_not_make_a_table_are_refused(tmp_path: Path) -> None:
    models = tmp_path / "m"
    staging, files = user_version(models)
    good = files["fingerprint.pb"]
    cases = {
        "empty": ({}, "files is empty"),
        "no-size": ({"a": {"sha256": good["sha256"]}}, "entry 'a' has no size"),
        "bad-sha": ({"a": {"sha256": "abc", "size": 1}}, "no sha256 of 64 hex digits"),
        "outside": ({"../a": good}, "is not a path inside the version"),
        "not-object": ({"a": "x"}, "entry 'a' is not an object"),
    }
    for label, (table, words) in cases.items():
        rc, out = run(
            {"staging": str(staging), "dest": str(models / "1"), "files": table}, tmp_path
        )
        assert rc == 1 and words in out["msg"], (label, out["msg"])
        assert not (models / "1").exists() and staging.is_dir(), label


def test_files_and_manifest_sha256_are_not_given_together(tmp_path: Path) -> None:
    models = tmp_path / "m"
    staging, files = user_version(models)
    args = {"staging": str(staging), "dest": str(models / "1"), "files": files,
            "manifest_sha256": "0" * 64}  # fmt: skip
    rc, out = run(args, tmp_path)
    assert rc == 1 and "mutually exclusive" in out["msg"] and not (models / "1").exists()


def test_files_check_an_existing_dest_too(tmp_path: Path) -> None:
    models = tmp_path / "m"
    staging, files = user_version(models)
    other, _ = user_version(models, "1")
    (other / "fingerprint.pb").write_bytes(b"FP")
    rc, out = run({"staging": str(staging), "dest": str(other), "files": files}, tmp_path)
    assert rc == 1 and "exists but is not this version" in out["msg"]
    assert "sha256 differs: fingerprint.pb" in out["msg"] and staging.is_dir()


def test_files_in_check_mode_verify_but_publish_nothing(tmp_path: Path) -> None:
    models = tmp_path / "m"
    staging, files = user_version(models)
    args = {"staging": str(staging), "dest": str(models / "1"), "files": files,
            "_ansible_check_mode": True}  # fmt: skip
    rc, out = run(args, tmp_path)
    assert rc == 0 and out["changed"] is True and out["verified_files"] == 4
    assert staging.is_dir() and not (models / "1").exists()


# ---- record and replace: the publish record and the re-sync of a published version ------------
def test_record_is_written_beside_the_version_and_needs_files(tmp_path: Path) -> None:
    models = tmp_path / "m"
    staging, files = user_version(models)
    record = models / ".tfs-fleet-published-7.json"
    args = {"staging": str(staging), "dest": str(models / "7"), "files": files}
    rc, out = run({**args, "record": str(models / "7" / "r.json")}, tmp_path)
    assert rc == 1 and "beside" in out["msg"] and staging.is_dir()
    rc, out = run({**args, "_ansible_check_mode": True, "record": str(record)}, tmp_path)
    assert rc == 0 and not record.exists()
    rc, out = run({**args, "record": str(record)}, tmp_path)
    assert rc == 0 and out["replaced"] is False
    written = json.loads(record.read_text())
    assert set(written["files"]) == set(files) and written["repairs"] == 0
    rc, out = run(
        {"staging": str(staging), "dest": str(models / "8"), "record": str(record)}, tmp_path
    )
    assert rc == 1 and "files" in out["msg"]


def test_replace_swaps_a_verified_copy_in_and_leaves_dest_alone_otherwise(tmp_path: Path) -> None:
    models = tmp_path / "m"
    published, files = user_version(models, "1")
    (published / "fingerprint.pb").write_bytes(b"FP")  # the published copy went bad
    staging, _ = user_version(models)
    (staging / "variables" / "variables.index").write_bytes(b"INDEX")  # the repair failed
    record = models / ".tfs-fleet-published-1.json"
    args = {"staging": str(staging), "dest": str(published), "files": files,
            "record": str(record), "replace": True}  # fmt: skip
    rc, out = run(args, tmp_path)
    assert rc == 1 and "sha256 differs: variables/variables.index" in out["msg"]
    assert (published / "fingerprint.pb").read_bytes() == b"FP" and staging.is_dir()

    (staging / "variables" / "variables.index").write_bytes(b"index")
    rc, out = run({**args, "_ansible_check_mode": True}, tmp_path)
    assert rc == 0 and out["changed"] is True and out["replaced"] is True
    assert (published / "fingerprint.pb").read_bytes() == b"FP" and not record.exists()

    rc, out = run(args, tmp_path)
    assert rc == 0 and out["changed"] is True and out["replaced"] is True, out
    assert (published / "fingerprint.pb").read_bytes() == b"fp" and not staging.exists()
    assert sorted(p.name for p in models.iterdir()) == [record.name, "1"]
    assert json.loads(record.read_text())["repairs"] == 1


def test_replace_without_a_published_dest_publishes_as_usual(tmp_path: Path) -> None:
    models = tmp_path / "m"
    staging, files = user_version(models)
    rc, out = run(
        {"staging": str(staging), "dest": str(models / "1"), "files": files, "replace": True},
        tmp_path,
    )
    assert rc == 0 and out["replaced"] is False and (models / "1" / "fingerprint.pb").is_file()
