"""The serving container's health check, rendered by Ansible from roles/tfserving/vars and run
here with bash: a hostile model name stays data, never shell code."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from helpers import REPO, ansible_playbook


def rendered_healthcheck(tmp_path: Path, model_name: str) -> list[str]:
    playbook = tmp_path / "render.yml"
    playbook.write_text(
        json.dumps(
            [{
                "hosts": "localhost", "gather_facts": False,
                "vars_files": [str(REPO / "roles/tfserving/defaults/main.yml"),
                               str(REPO / "roles/tfserving/vars/main.yml")],
                "tasks": [{"ansible.builtin.debug": {"var": "_tfserving_healthcheck.test"}}],
            }]
        )
    )  # fmt: skip
    extra = json.dumps({"tfserving_model_name": model_name})
    callback = {
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
    }
    proc = ansible_playbook(
        playbook, "localhost,", "-c", "local", "-e", extra, timeout=120, env=callback
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    host = out["plays"][0]["tasks"][0]["hosts"]["localhost"]
    test: list[str] = host["_tfserving_healthcheck.test"]
    return test


def test_a_hostile_model_name_is_not_run_as_shell_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    test = rendered_healthcheck(tmp_path, f"m'; touch {marker}; echo '")
    assert test[:3] == ["CMD", "bash", "-c"]
    # Run it as Docker would (nothing listens on 8501 here: the check itself fails, fine).
    subprocess.run(test[1:], capture_output=True, timeout=30, check=False)
    assert not marker.exists(), test


def test_the_model_name_reaches_the_request(tmp_path: Path) -> None:
    """The check still asks for the configured model: run it against a one-shot HTTP answer."""
    test = rendered_healthcheck(tmp_path, "half_plus_two")
    assert test[-1] == "half_plus_two"
    script = (
        test[3]
        .replace("/dev/tcp/127.0.0.1/8501", "/dev/stdout")
        .replace("grep -q AVAILABLE <&3", "true")
    )
    proc = subprocess.run(
        ["bash", "-c", script, *test[4:]], capture_output=True, text=True, timeout=30
    )
    assert "GET /v1/models/half_plus_two HTTP/1.0" in proc.stdout, proc
