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


def run_module(
    args: dict[str, Any], *flags: str, path_dir: Path | None = None
) -> tuple[int, dict[str, Any]]:
    """Run the module through ansible; path_dir goes first on PATH (a fake dockerd there)."""
    env = {
        **os.environ,
        **({"PATH": f"{path_dir}{os.pathsep}{os.environ['PATH']}"} if path_dir else {}),
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
        start_module(
            {"path": str(path), "settings": {f"key-{n}": n}, "validate": "none"},
            tmp_path,
            str(n),
        )
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
    rc, result = run_module({"path": str(path), "settings": {"debug": 1}, "validate": "none"})
    assert rc == 0 and result["changed"] is True and result["changed_keys"] == ["debug"]
    assert json.loads(path.read_text())["debug"] == 1
    assert json.loads(path.read_text())["debug"] is not True
    rc, result = run_module(
        {"path": str(path), "settings": {"max-concurrent-downloads": 3.0}, "validate": "none"}
    )
    assert rc == 0 and result["changed"] is True
    assert isinstance(json.loads(path.read_text())["max-concurrent-downloads"], float)


def test_a_bad_mode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    rc, result = run_module({"path": str(path), "settings": {"debug": True}, "mode": "rw"})
    assert rc != 0 and "mode" in result["msg"]
    assert not path.exists()


# ---- validation before writing (issue 23 item 6) ------------------------------------------
# Fake dockerd executables put first on PATH: each logs its arguments, answers --version with
# the version given, and (where it has --validate) rejects "log-level": "loud" in the file it
# is given, as Docker 26's dockerd does, while it accepts a key the schema does not know.

FAKE_DOCKERD = """#!/bin/sh
echo "$*" >>"$(dirname "$0")/calls.log"
case "$1" in
  --version) echo "{version}"; exit 0 ;;
  --validate)
    if [ "{has_validate}" != yes ]; then
      echo 'Status: unknown flag: --validate' >&2; echo "See 'dockerd --help'., Code: 125" >&2
      exit 125
    fi
    [ "$2" = --config-file ] && [ -f "$3" ] || {{ echo "bad arguments: $*" >&2; exit 2; }}
    cp "$3" "$(dirname "$0")/validated.json"
    if grep -q '"loud"' "$3"; then
      echo "unable to configure the Docker daemon with file $3: log level not valid: loud" >&2
      exit 1
    fi
    echo "configuration OK"; exit 0 ;;
esac
echo "fake dockerd: unexpected arguments $*" >&2
exit 3
"""

NEW_ENGINE = "Docker version 26.1.5+dfsg1, build a72d7cd"
OLD_ENGINE = "Docker version 20.10.24+dfsg1, build 5d6db84"


def fake_dockerd(tmp_path: Path, version: str, has_validate: bool) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "dockerd"
    script.write_text(
        FAKE_DOCKERD.format(version=version, has_validate="yes" if has_validate else "no")
    )
    script.chmod(0o755)
    return bin_dir


def calls(bin_dir: Path) -> list[str]:
    log = bin_dir / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def leftovers(directory: Path) -> list[str]:
    """Temp files of the module in directory (the lock file is expected)."""
    return sorted(
        p.name
        for p in directory.iterdir()
        if p.name.startswith(".daemon.json") and p.name != ".daemon.json.tfs-fleet.lock"
    )


def test_validate_path_rejects_what_dockerd_rejects_and_writes_nothing(tmp_path: Path) -> None:
    bin_dir = fake_dockerd(tmp_path, NEW_ENGINE, has_validate=True)
    etc = tmp_path / "etc"
    etc.mkdir()
    path = etc / "daemon.json"
    before = '{"labels": ["admin"]}'
    path.write_text(before)
    args = {
        "path": str(path),
        "settings": {"log-level": "loud", "debug": True},
        "settings_name": "docker_daemon_options",
    }
    rc, result = run_module(args, path_dir=bin_dir)
    assert rc != 0, result
    msg = result["msg"]
    # The variable and the key dockerd names, dockerd's own words, the real path (not the temp).
    assert msg.startswith("docker_daemon_options.log-level: dockerd --validate"), msg
    assert "Docker 26.1" in msg and "log level not valid: loud" in msg, msg
    assert f"with file {path}:" in msg, msg
    assert path.read_text() == before
    assert not (etc / "daemon.json.tfs-fleet-previous").exists()
    # dockerd saw the whole merged file, written beside daemon.json and removed after.
    validate_call = [c for c in calls(bin_dir) if c.startswith("--validate")]
    assert len(validate_call) == 1
    assert validate_call[0].startswith(f"--validate --config-file {etc}/.daemon.json.")
    assert json.loads((bin_dir / "validated.json").read_text()) == {
        "labels": ["admin"],
        "log-level": "loud",
        "debug": True,
    }
    assert leftovers(etc) == []


def test_validate_path_accepts_a_good_file_even_with_a_key_the_schema_lacks(
    tmp_path: Path,
) -> None:
    bin_dir = fake_dockerd(tmp_path, NEW_ENGINE, has_validate=True)
    path = tmp_path / "daemon.json"
    path.write_text('{"labels": ["admin"]}')
    # A key of a newer dockerd than the schema knows: the engine's own check decides.
    settings = {"log-level": "warn", "min-api-version": "1.24"}
    rc, result = run_module({"path": str(path), "settings": settings}, path_dir=bin_dir)
    assert rc == 0, result
    assert result["validated_with"].startswith("dockerd --validate (")
    assert json.loads(path.read_text()) == {"labels": ["admin"], **settings}
    # The file the engine last ran with is kept for the restart handler.
    assert (tmp_path / "daemon.json.tfs-fleet-previous").read_text() == '{"labels": ["admin"]}'
    assert leftovers(tmp_path) == []


def test_check_mode_validates_too_and_writes_nothing(tmp_path: Path) -> None:
    bin_dir = fake_dockerd(tmp_path, NEW_ENGINE, has_validate=True)
    path = tmp_path / "daemon.json"
    rc, result = run_module(
        {"path": str(path), "settings": {"log-level": "loud"}}, "--check", path_dir=bin_dir
    )
    assert rc != 0 and "settings.log-level" in result["msg"], result
    rc, result = run_module(
        {"path": str(path), "settings": {"log-level": "warn"}}, "--check", path_dir=bin_dir
    )
    assert rc == 0 and result["changed"] is True, result
    assert result["validated_with"].startswith("dockerd --validate")
    # Nothing written: no file, no previous copy, no temp file (check mode takes no lock).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]


def test_schema_path_on_an_engine_without_validate_rejects_and_writes_nothing(
    tmp_path: Path,
) -> None:
    bin_dir = fake_dockerd(tmp_path, OLD_ENGINE, has_validate=False)
    path = tmp_path / "daemon.json"
    before = '{"labels": ["admin"]}'
    path.write_text(before)
    args = {
        "path": str(path),
        "settings": {"debug": "yes", "log-driver": "json-file"},
        "settings_name": "docker_daemon_options",
    }
    rc, result = run_module(args, path_dir=bin_dir)
    assert rc != 0, result
    msg = result["msg"]
    assert msg.startswith("docker_daemon_options.debug: 'yes' is not accepted"), msg
    assert "a boolean" in msg and "Docker 20.10" in msg and "has no --validate" in msg, msg
    assert "Fix docker_daemon_options" in msg
    assert path.read_text() == before
    assert not (tmp_path / "daemon.json.tfs-fleet-previous").exists()
    # An engine older than 23 is never run with a flag it lacks.
    assert calls(bin_dir) == ["--version"]


def test_schema_path_names_an_unknown_key_with_a_did_you_mean(tmp_path: Path) -> None:
    bin_dir = fake_dockerd(tmp_path, OLD_ENGINE, has_validate=False)
    path = tmp_path / "daemon.json"
    rc, result = run_module(
        {"path": str(path), "settings": {"log-drivr": "json-file"}}, path_dir=bin_dir
    )
    assert rc != 0 and "settings.log-drivr" in result["msg"], result
    assert "did you mean log-driver?" in result["msg"]
    assert not path.exists()


def test_schema_path_accepts_a_good_value(tmp_path: Path) -> None:
    bin_dir = fake_dockerd(tmp_path, OLD_ENGINE, has_validate=False)
    path = tmp_path / "daemon.json"
    rc, result = run_module(
        {"path": str(path), "settings": {"debug": False, "log-opts": {"max-size": "50m"}}},
        path_dir=bin_dir,
    )
    assert rc == 0, result
    assert result["validated_with"] == "schema ({} (Docker 20.10) has no --validate)".format(
        bin_dir / "dockerd"
    )
    assert json.loads(path.read_text()) == {"debug": False, "log-opts": {"max-size": "50m"}}
    # No file before: the previous copy is an empty configuration.
    assert json.loads((tmp_path / "daemon.json.tfs-fleet-previous").read_text()) == {}


def test_a_dockerd_that_answers_unknown_flag_falls_back_to_the_schema(tmp_path: Path) -> None:
    # No version dockerd's --version would print: detection goes by the flag's answer.
    bin_dir = fake_dockerd(tmp_path, "dockerd, dev build", has_validate=False)
    path = tmp_path / "daemon.json"
    rc, result = run_module({"path": str(path), "settings": {"debug": "yes"}}, path_dir=bin_dir)
    assert rc != 0 and result["msg"].startswith("settings.debug: 'yes' is not accepted"), result
    assert "has no --validate" in result["msg"]
    assert [c.split(" ")[0] for c in calls(bin_dir)] == ["--version", "--validate"]
    assert not path.exists() and leftovers(tmp_path) == []
    rc, result = run_module({"path": str(path), "settings": {"debug": True}}, path_dir=bin_dir)
    assert rc == 0 and result["validated_with"].startswith("schema ("), result
    assert json.loads(path.read_text()) == {"debug": True}


def test_an_unchanged_file_is_not_validated(tmp_path: Path) -> None:
    bin_dir = fake_dockerd(tmp_path, NEW_ENGINE, has_validate=True)
    path = tmp_path / "daemon.json"
    path.write_text('{"log-level": "loud"}')  # what is there already is not this run's to check
    rc, result = run_module(
        {"path": str(path), "settings": {"log-level": "loud"}}, path_dir=bin_dir
    )
    assert rc == 0 and result["changed"] is False and result["validated_with"] == "", result
    assert calls(bin_dir) == []


def test_the_previous_copy_stays_the_file_before_the_first_pending_change(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": false}')
    previous = tmp_path / "daemon.json.tfs-fleet-previous"
    rc, result = run_module({"path": str(path), "settings": {"debug": True}})
    assert rc == 0 and result["previous_file"] == str(previous), result
    # A second change before any restart: the copy is still the file the engine ran with.
    rc, result = run_module({"path": str(path), "settings": {"log-level": "warn"}})
    assert rc == 0, result
    assert previous.read_text() == '{"debug": false}'
    assert json.loads(path.read_text()) == {"debug": True, "log-level": "warn"}
    rc, result = run_module(
        {"path": str(path), "settings": {"log-level": "info"}, "keep_previous": False}
    )
    assert rc == 0 and "previous_file" not in result


# ---- what the running engine needs (issue 24 item 1; module_utils/docker_reload.py) -------


def test_a_reloadable_change_asks_for_a_reload_with_the_engines_version(tmp_path: Path) -> None:
    bin_dir = fake_dockerd(tmp_path, OLD_ENGINE, has_validate=False)
    path = tmp_path / "daemon.json"
    path.write_text('{"labels": ["admin"], "log-driver": "json-file"}')
    args = {"path": str(path), "settings": {"max-concurrent-downloads": 4}}
    rc, result = run_module(args, "--check", path_dir=bin_dir)
    assert rc == 0 and result["changed"] is True, result
    assert (result["engine_action"], result["reload_keys"], result["restart_keys"]) == (
        "reload",
        ["max-concurrent-downloads"],
        [],
    )
    assert result["engine_version"] == OLD_ENGINE
    rc, result = run_module(args, path_dir=bin_dir)
    assert rc == 0 and result["engine_action"] == "reload", result


def test_a_nested_key_of_a_key_a_reload_ignores_asks_for_a_restart(tmp_path: Path) -> None:
    bin_dir = fake_dockerd(tmp_path, NEW_ENGINE, has_validate=True)
    path = tmp_path / "daemon.json"
    path.write_text('{"log-opts": {"max-size": "10m", "max-file": "3"}}')
    settings = {"log-opts": {"max-size": "50m"}, "debug": True}
    rc, result = run_module({"path": str(path), "settings": settings}, path_dir=bin_dir)
    assert rc == 0, result
    assert (result["engine_action"], result["restart_keys"], result["reload_keys"]) == (
        "restart",
        ["log-opts"],
        ["debug"],
    )
    assert json.loads(path.read_text())["log-opts"] == {"max-size": "50m", "max-file": "3"}


def test_an_unchanged_file_needs_nothing(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": true}')
    rc, result = run_module({"path": str(path), "settings": {"debug": True}})
    assert rc == 0 and result["changed"] is False, result
    assert (result["engine_action"], result["restart_keys"], result["reload_keys"]) == (
        "none",
        [],
        [],
    )


def test_a_change_still_pending_is_compared_with_the_file_the_engine_runs_on(
    tmp_path: Path,
) -> None:
    """A restart that never happened (its handler did not run): the previous copy is what the
    engine runs on, so a later reloadable change still restarts, and a run that changes nothing
    still reports the restart the engine needs."""
    bin_dir = fake_dockerd(tmp_path, NEW_ENGINE, has_validate=True)
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": false}')
    rc, result = run_module(
        {"path": str(path), "settings": {"log-level": "warn"}}, path_dir=bin_dir
    )
    assert rc == 0 and result["engine_action"] == "restart", result
    rc, result = run_module(
        {"path": str(path), "settings": {"log-level": "warn", "debug": True}}, path_dir=bin_dir
    )
    assert rc == 0 and result["changed"] is True, result
    assert (result["restart_keys"], result["reload_keys"]) == (["log-level"], ["debug"])
    rc, result = run_module(
        {"path": str(path), "settings": {"debug": True}}, "--check", path_dir=bin_dir
    )
    assert rc == 0 and result["changed"] is False, result
    assert result["engine_action"] == "restart" and result["restart_keys"] == ["log-level"]
    # Once the engine runs on the file (the handler removed the copy): nothing.
    (tmp_path / "daemon.json.tfs-fleet-previous").unlink()
    rc, result = run_module({"path": str(path), "settings": {"debug": True}}, path_dir=bin_dir)
    assert rc == 0 and result["engine_action"] == "none", result


def test_an_unreadable_previous_copy_asks_for_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": false}')
    (tmp_path / "daemon.json.tfs-fleet-previous").write_text("{not json")
    rc, result = run_module({"path": str(path), "settings": {"debug": True}})
    assert rc == 0 and result["engine_action"] == "restart", result
    assert result["restart_keys"] == ["debug"]
