"""playbooks/rollout.yml refuses bad settings on the controller, naming the variable, before any
host is contacted (the inventory's hosts do not exist: reaching one would fail differently)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import ansible_playbook

INVENTORY = """\
all:
  children:
    gpu_servers:
      hosts:
        gpu-a: {{ansible_host: 192.0.2.1}}
        gpu-b: {{ansible_host: 192.0.2.2}}
    canary:
      hosts:
        {canary}: {{}}
"""


def run(tmp_path: Path, settings: dict[str, object], canary: str = "gpu-a") -> str:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(INVENTORY.format(canary=canary))
    proc = ansible_playbook(
        Path("playbooks/rollout.yml"), inventory, "-e", json.dumps(settings),
        "-e", f"tfserving_rollout_report_dir={tmp_path / 'runs'}", timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert "gpu-a" not in proc.stdout.split("PLAY RECAP", 1)[-1]  # never reached a host
    return proc.stdout


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"tfserving_rollout_serial": [0]}, "tfserving_rollout_serial: [0] is not accepted"),
        ({"tfserving_rollout_serial": ["150%"]}, "tfserving_rollout_serial: ['150%'] is not"),
        ({"tfserving_rollout_max_fail_percentage": 101}, "a whole number from 0 to 100"),
        ({"tfserving_rollout_steps": ["models", "reboot"]}, "Got no match for: reboot"),
        ({"tfserving_rollout_drain_command": "lbctl drain"}, "it accepts an argv list"),
        (
            {"tfserving_rollout_drain_tasks": "/nonexistent/drain.yml"},
            "/nonexistent/drain.yml is not a file",
        ),
        ({"tfserving_rollout_steps": []}, "tfserving_rollout_steps: [] is not accepted"),
        ({"tfserving_rollout_serail": [1]}, "did you mean tfserving_rollout_serial?"),
    ],
)
def test_bad_setting_fails_before_any_host(
    tmp_path: Path, settings: dict[str, object], needle: str
) -> None:
    assert needle in run(tmp_path, settings)


def test_canary_outside_gpu_servers_is_refused(tmp_path: Path) -> None:
    assert "every canary host must be" in run(tmp_path, {}, canary="lb-1")
