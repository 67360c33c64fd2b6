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
    load_manifest,
    scan,
    verify,
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
