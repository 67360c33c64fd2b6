"""tfs_fleet.common.docker_daemon_json, run by Ansible on this machine against temp files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers import BIN, REPO


def run_module(args: dict[str, Any], *flags: str) -> tuple[int, dict[str, Any]]:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
    }
    proc = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-c", "local", "-i", "localhost,",
         "-m", "tfs_fleet.common.docker_daemon_json", "-a", json.dumps(args),
         "-e", f"ansible_python_interpreter={sys.executable}", *flags],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip
    out = json.loads(proc.stdout)
    result = out["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return proc.returncode, result


def test_merges_and_keeps_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(
        '{"labels": ["admin"], "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}'
    )
    rc, result = run_module(
        {
            "path": str(path),
            "settings": {"storage-driver": "vfs", "runtimes": {"crun": {"path": "crun"}}},
        }
    )
    assert rc == 0 and result["changed"] is True
    config = json.loads(path.read_text())
    assert config == {
        "labels": ["admin"],
        "storage-driver": "vfs",
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}, "crun": {"path": "crun"}},
    }
    assert result["changed_keys"] == ["runtimes", "storage-driver"]


def test_second_run_is_unchanged_and_keeps_formatting(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"storage-driver":"vfs","debug":false}')  # compact, as an admin wrote it
    before = path.read_text()
    rc, result = run_module({"path": str(path), "settings": {"storage-driver": "vfs"}})
    assert rc == 0 and result["changed"] is False
    assert path.read_text() == before


def test_remove_drops_only_named_keys(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"default-runtime": "nvidia", "debug": true}')
    rc, result = run_module({"path": str(path), "remove": ["default-runtime"]})
    assert rc == 0 and result["changed"] is True
    assert json.loads(path.read_text()) == {"debug": True}


def test_check_mode_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    rc, result = run_module({"path": str(path), "settings": {"debug": True}}, "--check")
    assert rc == 0 and result["changed"] is True
    assert result["config"] == {"debug": True}
    assert not path.exists()


def test_invalid_json_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": true,,}')
    rc, result = run_module({"path": str(path), "settings": {"debug": False}})
    assert rc != 0
    assert str(path) in result["msg"] and "not valid JSON" in result["msg"]
    assert path.read_text() == '{"debug": true,,}'


def test_non_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text("[1, 2]")
    rc, result = run_module({"path": str(path), "settings": {"debug": False}})
    assert rc != 0 and "not an object" in result["msg"]


def test_key_in_settings_and_remove_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    rc, result = run_module({"path": str(path), "settings": {"debug": True}, "remove": ["debug"]})
    assert rc != 0 and "debug" in result["msg"]
    assert not path.exists()
