"""Unit tests of module_utils/model_manifest.py, the one check of a model version against its
export manifest (model_version_publish on the host, the export tests on the controller)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from ansible_collections.tfs_fleet.common.plugins.module_utils.model_manifest import (
    MANIFEST_NAME,
    ManifestError,
    files_sha256,
    load_manifest,
    scan,
    verify,
    verify_files,
    walk,
)

from tfs_fleet import manifest as controller_manifest


def version(root: Path, files: dict[str, bytes]) -> str:
    """Write files and a manifest as the exporter does; return the manifest's sha256."""
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    text = json.dumps({"format": 1, "files": controller_manifest.file_checksums(root)})
    (root / MANIFEST_NAME).write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_exporters_manifest_verifies(tmp_path: Path) -> None:
    digest = version(tmp_path, {"saved_model.pb": b"g", "variables/v.data": b"w" * 3})
    assert verify(str(tmp_path), MANIFEST_NAME, digest) == (2, [])


def test_missing_extra_resized_and_changed_files_are_each_named(tmp_path: Path) -> None:
    version(tmp_path, {"a": b"1", "b": b"22", "c": b"333", "d": b"4"})
    (tmp_path / "a").unlink()
    (tmp_path / "b").write_bytes(b"2")
    (tmp_path / "c").write_bytes(b"999")
    (tmp_path / "e").write_bytes(b"new")
    count, problems = verify(str(tmp_path))
    assert count == 4
    assert problems == [
        "missing: a",
        "not in the manifest: e",
        "size differs: b",
        "sha256 differs: c",
    ]


def test_a_manifest_other_than_the_controllers_is_refused(tmp_path: Path) -> None:
    version(tmp_path, {"a": b"1"})
    count, problems = verify(str(tmp_path), MANIFEST_NAME, "0" * 64)
    assert count == 0 and problems == [
        f"{tmp_path / MANIFEST_NAME} differs from the controller's manifest"
    ]


def test_links_and_special_files_are_refused(tmp_path: Path) -> None:
    version(tmp_path, {"a": b"1"})
    os.symlink("/etc/passwd", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    found, refused = scan(str(tmp_path), MANIFEST_NAME)
    assert found == {"a": 1}
    assert refused == [
        "not a regular file: fifo",
        "symbolic link (not allowed in a model version): link",
    ]


@pytest.mark.parametrize(
    ("files", "words"),
    [
        ({}, "lists no files"),
        ({"a": "x"}, "entry 'a' is not an object"),
        ({"a": {"sha256": "abc"}}, "no sha256 of 64 hex digits"),
        ({"a": {"sha256": "0" * 64, "size": -1}}, "size that is not a count of bytes"),
        ({"../a": {"sha256": "0" * 64}}, "is not a path inside the version"),
    ],
)
def test_a_malformed_manifest_names_the_file_and_the_problem(
    tmp_path: Path, files: dict[str, object], words: str
) -> None:
    path = tmp_path / MANIFEST_NAME
    path.write_text(json.dumps({"files": files}))
    with pytest.raises(ManifestError, match=words) as err:
        load_manifest(str(path))
    assert str(path) in str(err.value)


def test_a_files_table_checks_every_file_the_manifest_included(tmp_path: Path) -> None:
    """verify_files: the controller's table of any SavedModel; a manifest is an ordinary file."""
    version(tmp_path, {"saved_model.pbtxt": b"g", "variables/v.data": b"w" * 3})
    table = {
        rel: {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "size": p.stat().st_size}
        for p in tmp_path.rglob("*")
        if p.is_file() and (rel := p.relative_to(tmp_path).as_posix())
    }
    assert set(table) == {"saved_model.pbtxt", "variables/v.data", MANIFEST_NAME}
    assert verify_files(str(tmp_path), table) == (3, [])
    (tmp_path / MANIFEST_NAME).write_text("{}")
    count, problems = verify_files(str(tmp_path), table)
    assert count == 3 and problems == [f"size differs: {MANIFEST_NAME}"]
    without_size = {"a": {"sha256": "0" * 64}}
    assert verify_files(str(tmp_path), without_size) == (0, ["files: entry 'a' has no size"])


def test_the_table_sha256_is_of_its_canonical_json() -> None:
    one = {"b": {"size": 1, "sha256": "0" * 64}, "a": {"sha256": "1" * 64, "size": 2}}
    two = {"a": {"size": 2, "sha256": "1" * 64}, "b": {"sha256": "0" * 64, "size": 1}}
    canonical = json.dumps(one, sort_keys=True, separators=(",", ":")).encode()
    assert files_sha256(one) == files_sha256(two) == hashlib.sha256(canonical).hexdigest()


def test_walk_only_stats_and_refuses_what_it_cannot_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version(tmp_path, {"a": b"1", "sub/b": b"22"})
    found, refused = walk(str(tmp_path))
    assert {rel: info.st_size for rel, info in found.items()} == {
        "a": 1,
        "sub/b": 2,
        MANIFEST_NAME: (tmp_path / MANIFEST_NAME).stat().st_size,
    }
    assert refused == []
    real_scandir = os.scandir

    def scandir(path: str) -> object:  # as a directory without read permission answers
        if os.path.basename(path) == "sub":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found, refused = walk(str(tmp_path))
    assert refused == ["cannot list directory: sub (Permission denied)"]
    assert "sub/b" not in found  # so the caller refuses the version rather than miss a file
