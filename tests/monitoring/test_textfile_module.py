"""tfs_fleet.common.textfile_metrics run by Ansible: atomic write, timestamp moves only with a
change, check mode, no temporary file that the collector could read (*.prom)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO

BIN = Path(sys.executable).parent


def run(path: Path, content: str, *extra: str) -> dict:
    args = json.dumps(
        {"path": str(path), "content": content, "timestamp_metric": "t_last_change_seconds"}
    )
    proc = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-c", "local", "-i", "localhost,", "-m",
         "tfs_fleet.common.textfile_metrics", "-a", args,
         "-e", f"ansible_python_interpreter={sys.executable}", *extra],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
             "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json"},
    )  # fmt: skip
    assert proc.returncode in (0, 2), proc.stderr
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return result


def test_write_then_unchanged_then_changed(tmp_path: Path) -> None:
    path = tmp_path / "drift.prom"
    first = run(path, "# TYPE a gauge\na 1\n")
    assert first["changed"] is True
    text = path.read_text()
    assert text.startswith("# TYPE a gauge\na 1\n") and "\nt_last_change_seconds " in text
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    again = run(path, "# TYPE a gauge\na 1\n")
    assert again["changed"] is False and path.read_text() == text
    assert again["timestamp"] == first["timestamp"]
    checked = run(path, "# TYPE a gauge\na 2\n", "--check")
    assert checked["changed"] is True and path.read_text() == text
    changed = run(path, "# TYPE a gauge\na 2\n")
    assert changed["changed"] is True and changed["timestamp"] >= first["timestamp"]
    assert "a 2\n" in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drift.prom"]


def test_a_missing_directory_is_made_with_its_parents(tmp_path: Path) -> None:
    path = tmp_path / "var-lib" / "node-exporter" / "x.prom"
    result = run(path, "a 1\n")
    assert result["changed"] is True and "a 1\n" in path.read_text(), result
    for directory in (path.parent, path.parent.parent):
        assert oct(directory.stat().st_mode & 0o777) == "0o755", directory
    assert run(path, "a 1\n")["changed"] is False


def test_a_file_where_the_directory_belongs_fails_naming_it(tmp_path: Path) -> None:
    (tmp_path / "absent").write_text("a file")
    result = run(tmp_path / "absent" / "x.prom", "a 1\n")
    assert result["failed"] is True
    assert f"{tmp_path / 'absent'} is not a directory" in result["msg"]


def test_check_mode_with_the_directory_not_yet_made_reports_a_change(tmp_path: Path) -> None:
    """A first converge in check mode: nothing is made."""
    result = run(tmp_path / "absent" / "x.prom", "a 1\n", "--check")
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    assert not (tmp_path / "absent").exists()


def test_several_files_in_one_run(tmp_path: Path) -> None:
    """files: each file as path/content would make it, a change only where its content moved."""
    from helpers import run_collection_module

    models, integrity = tmp_path / "models.prom", tmp_path / "sub" / "integrity.prom"
    files = [
        {"path": str(models), "content": "m 1\n", "timestamp_metric": "t_models"},
        {"path": str(integrity), "content": "r 0\n", "mode": "0640"},
    ]
    rc, first = run_collection_module("textfile_metrics", {"files": files}, tmp_path)
    assert rc == 0 and first["changed"], first
    assert models.read_text().startswith("m 1\n") and "\nt_models " in models.read_text()
    assert integrity.read_text() == "r 0\n" and oct(integrity.stat().st_mode & 0o777) == "0o640"
    stamp = first["timestamps"][str(models)]
    rc, again = run_collection_module("textfile_metrics", {"files": files}, tmp_path)
    assert rc == 0 and not again["changed"] and again["timestamps"][str(models)] == stamp
    files[1]["content"] = "r 1\n"
    rc, moved = run_collection_module("textfile_metrics", {"files": files}, tmp_path)
    assert rc == 0 and moved["changed"] and integrity.read_text() == "r 1\n"
    assert [d["after_header"] for d in moved["diff"]] == [str(integrity)]
    assert moved["timestamps"][str(models)] == stamp  # the unchanged file kept its timestamp
    rc, bad = run_collection_module(
        "textfile_metrics", {"files": [{"path": str(models)}]}, tmp_path
    )
    assert rc != 0 and "missing required arguments: content" in bad["msg"], bad
