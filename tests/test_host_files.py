"""tfs_fleet.common.host_files: several files and directories of a role in one module run."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.tfs_fleet.common.plugins.module_utils import host_files as hf

from helpers import run_collection_module


def run(files: list[dict[str, Any]], tmp_path: Path, check: bool = False) -> tuple[int, dict]:
    return run_collection_module("host_files", {"files": files}, tmp_path, check)


def me() -> tuple[str, str]:
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def test_makes_writes_removes_and_is_idempotent(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "tfserving"
    old = tmp_path / "stale.config"
    old.write_text("old\n")
    user, group = me()
    files = [
        {"path": str(conf), "state": "directory", "owner": user, "group": group},
        {"path": str(conf / "monitoring.config"), "content": "prometheus_config {}\n"},
        {"path": str(conf / "batching.config"), "content": "max_batch_size { value: 8 }\n",
         "mode": "0600"},
        {"path": str(old), "state": "absent"},
    ]  # fmt: skip
    rc, first = run(files, tmp_path)
    assert rc == 0 and first["changed"], first
    written = [str(conf / "monitoring.config"), str(conf / "batching.config")]
    assert first["changed_paths"] == [str(conf), *written, str(old)], first
    assert (conf / "monitoring.config").read_text() == "prometheus_config {}\n"
    assert oct((conf / "monitoring.config").stat().st_mode & 0o777) == "0o644"
    assert oct((conf / "batching.config").stat().st_mode & 0o777) == "0o600"
    assert oct(conf.stat().st_mode & 0o777) == "0o755"
    assert not old.exists()
    # No temporary file left beside the files.
    assert sorted(p.name for p in conf.iterdir()) == ["batching.config", "monitoring.config"]
    rc, again = run(files, tmp_path)
    assert rc == 0 and not again["changed"] and again["changed_paths"] == [], again
    assert {f["action"] for f in again["files"]} == {"none"}


def test_a_changed_content_is_rewritten_with_a_diff_and_a_mode_is_enforced(tmp_path: Path) -> None:
    target = tmp_path / "facts.fact"
    target.write_text('{"a": 1}\n')
    target.chmod(0o600)
    inode = target.stat().st_ino
    rc, result = run([{"path": str(target), "content": '{"a": 2}\n'}], tmp_path)
    assert rc == 0 and result["changed_paths"] == [str(target)], result
    assert target.read_text() == '{"a": 2}\n'
    assert target.stat().st_ino != inode  # renamed over it, not rewritten in place
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert result["diff"] == [
        {"before": '{"a": 1}\n', "after": '{"a": 2}\n', "before_header": str(target),
         "after_header": str(target)}
    ]  # fmt: skip
    target.chmod(0o666)
    rc, result = run([{"path": str(target), "content": '{"a": 2}\n'}], tmp_path)
    assert result["files"] == [{"path": str(target), "action": "attributes"}], result
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_check_mode_changes_nothing_and_plans_files_in_a_new_directory(tmp_path: Path) -> None:
    conf = tmp_path / "new"
    keep = tmp_path / "keep.config"
    keep.write_text("x\n")
    files = [
        {"path": str(conf), "state": "directory"},
        {"path": str(conf / "a.config"), "content": "a\n"},
        {"path": str(keep), "state": "absent"},
    ]
    rc, result = run(files, tmp_path, check=True)
    assert rc == 0 and result["changed"], result
    assert [f["action"] for f in result["files"]] == ["create", "create", "remove"]
    assert not conf.exists() and keep.read_text() == "x\n"


def test_bad_entries_fail_before_anything_changes(tmp_path: Path) -> None:
    made = tmp_path / "made"
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    rc, result = run(
        [{"path": str(made), "state": "directory"}, {"path": str(blocker), "state": "absent"}],
        tmp_path,
    )
    assert rc != 0 and "is a directory" in result["msg"] and str(blocker) in result["msg"]
    assert not made.exists()  # the first entry was not applied
    rc, result = run([{"path": str(tmp_path / "no-dir" / "f"), "content": "x"}], tmp_path)
    assert rc != 0 and "list " + str(tmp_path / "no-dir") in result["msg"], result


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"path": "relative/x", "content": ""}, "files[0].path must be an absolute path"),
        ({"path": "/x", "state": "file"}, "state file needs content"),
        ({"path": "/x", "state": "directory", "content": "a"}, "content is only for state file"),
        ({"path": "/x", "content": "", "mode": "rw-r--r--"}, "files[0].mode 'rw-r--r--'"),
    ],
)
def test_normalize_names_the_entry_and_the_fix(entry: dict[str, Any], words: str) -> None:
    with pytest.raises(hf.HostFilesError, match=words.replace("[", r"\[").replace("]", r"\]")):
        hf.normalize([entry])


def test_a_path_listed_twice_and_an_unknown_owner_are_refused(tmp_path: Path) -> None:
    with pytest.raises(hf.HostFilesError, match="listed twice"):
        hf.normalize([{"path": "/x", "content": ""}, {"path": "/x", "state": "absent"}])
    rc, result = run(
        [{"path": str(tmp_path / "f"), "content": "x", "owner": "no-such-user-tfsf"}], tmp_path
    )
    assert rc != 0 and "owner 'no-such-user-tfsf' does not exist" in result["msg"], result
    assert not (tmp_path / "f").exists()
