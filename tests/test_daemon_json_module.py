"""tfs_fleet.common.docker_daemon_json, run by Ansible on this machine against temp files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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


def test_diff_shows_the_file_before_and_after(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": true}')
    rc, result = run_module({"path": str(path), "settings": {"debug": False}}, "--check", "--diff")
    assert rc == 0 and result["changed"] is True
    assert result["diff"] == {
        "before": '{"debug": true}',
        "after": '{\n  "debug": false\n}\n',
        "before_header": str(path),
        "after_header": str(path),
    }
    assert path.read_text() == '{"debug": true}'


def test_check_mode_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    rc, result = run_module({"path": str(path), "settings": {"debug": True}}, "--check")
    assert rc == 0 and result["changed"] is True
    assert result["config"] == {"debug": True}
    assert not path.exists()


@pytest.mark.parametrize(
    ("content", "debug", "reason"),
    [
        pytest.param('{"debug": true,,}', False, "not valid JSON", id="invalid-json"),
        pytest.param('{"x": NaN}', True, "NaN", id="nan"),
    ],
)
def test_an_unreadable_file_is_refused_and_never_overwritten(
    tmp_path: Path, content: str, debug: bool, reason: str
) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(content)
    rc, result = run_module({"path": str(path), "settings": {"debug": debug}})
    assert rc != 0
    assert str(path) in result["msg"] and reason in result["msg"]
    assert path.read_text() == content


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


MODULE = (
    REPO / "collections/ansible_collections/tfs_fleet/common/plugins/modules/docker_daemon_json.py"
)


def start_module(args: dict[str, Any], tmp_path: Path, tag: str) -> subprocess.Popen[str]:
    """Start the module file directly (as Ansible's AnsiballZ would run it), without waiting."""
    args_file = tmp_path / f"args-{tag}.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    # The module imports the collection's module_utils, as AnsiballZ packs them.
    env = {**os.environ, "PYTHONPATH": str(REPO / "collections")}
    return subprocess.Popen(
        [sys.executable, str(MODULE), str(args_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip


def test_twenty_concurrent_merges_keep_every_key_and_the_file_stays_valid(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"foreign": "kept"}')
    procs = [
        start_module({"path": str(path), "settings": {f"key-{n}": n}}, tmp_path, str(n))
        for n in range(20)
    ]
    # Read the file while the runs go on: it must parse every time.
    reads = 0
    while any(p.poll() is None for p in procs) and reads < 20000:
        text = path.read_text()
        json.loads(text)
        reads += 1
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, (out, err)
        assert json.loads(out)["changed"] is True
    config = json.loads(path.read_text())
    assert config == {"foreign": "kept", **{f"key-{n}": n for n in range(20)}}
    # No temporary file left behind.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".daemon.json")) == [
        ".daemon.json.tfs-fleet.lock"
    ]


def test_a_link_at_the_old_temp_name_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / ".daemon.json.tfs-fleet.tmp").symlink_to(victim)
    path = tmp_path / "daemon.json"
    rc, result = run_module({"path": str(path), "settings": {"debug": True}})
    assert rc == 0, result
    assert victim.read_text() == "precious\n"
    assert json.loads(path.read_text()) == {"debug": True}


@pytest.mark.slow
def test_mode_is_applied_to_a_new_file_and_enforced_on_an_existing_one(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    rc, result = run_module({"path": str(path), "settings": {"debug": True}, "mode": "0600"})
    assert rc == 0, result
    assert path.stat().st_mode & 0o7777 == 0o600
    path.chmod(0o644)
    rc, result = run_module({"path": str(path), "settings": {"debug": True}, "mode": "0600"})
    assert rc == 0 and result["changed"] is True
    assert path.stat().st_mode & 0o7777 == 0o600
    rc, result = run_module({"path": str(path), "settings": {"debug": True}, "mode": "0600"})
    assert rc == 0 and result["changed"] is False


def test_an_existing_file_keeps_its_mode_when_none_is_asked(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text("{}")
    path.chmod(0o640)
    rc, result = run_module({"path": str(path), "settings": {"debug": True}})
    assert rc == 0 and result["changed"] is True
    assert path.stat().st_mode & 0o7777 == 0o640


def test_values_are_compared_with_their_json_types(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": true, "max-concurrent-downloads": 3}')
    rc, result = run_module({"path": str(path), "settings": {"debug": 1}})
    assert rc == 0 and result["changed"] is True and result["changed_keys"] == ["debug"]
    assert json.loads(path.read_text())["debug"] == 1
    assert json.loads(path.read_text())["debug"] is not True
    rc, result = run_module({"path": str(path), "settings": {"max-concurrent-downloads": 3.0}})
    assert rc == 0 and result["changed"] is True
    assert isinstance(json.loads(path.read_text())["max-concurrent-downloads"], float)


def test_a_bad_mode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    rc, result = run_module({"path": str(path), "settings": {"debug": True}, "mode": "rw"})
    assert rc != 0 and "mode" in result["msg"]
    assert not path.exists()
