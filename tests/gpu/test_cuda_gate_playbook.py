"""The cuda_gate role run by ansible-playbook on fake hosts (driver versions from inventory)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import playbook_report

GATE_DIR = Path(__file__).resolve().parent / "gate"


def _run(*extra: str) -> tuple[int, dict[str, Any]]:
    return playbook_report(
        GATE_DIR / "playbook.yml", GATE_DIR / "inventory.yml", *extra, timeout=180,
        env={"ANSIBLE_PYTHON_INTERPRETER": sys.executable},
    )  # fmt: skip


def _host_results(report: dict[str, Any], task_name: str) -> dict[str, dict[str, Any]]:
    for play in report["plays"]:
        for task in play["tasks"]:
            name = task["task"]["name"]
            if name == task_name or name.startswith(f"cuda_gate : {task_name}"):
                return task["hosts"]
    raise AssertionError(f"task {task_name!r} not in the report")


@pytest.fixture(scope="module")
def gate_run() -> tuple[int, dict[str, Any]]:
    return _run()


def test_gate_refuses_incompatible_image(gate_run: tuple[int, dict[str, Any]]) -> None:
    rc, report = gate_run
    assert rc == 2  # one host failed
    refused = _host_results(report, "Refuse an image the driver cannot run")["gpu-old"]
    assert refused["failed"] is True
    msg = refused["msg"]
    assert msg.startswith("host gpu-old: NVIDIA driver 470.82.01 supports CUDA up to 11.4")
    assert "TF Serving 2.20.0's GPU image (image source 'pull') needs CUDA 12.5" in msg
    assert "upgrade the driver to 555.42.06 or newer" in msg
    assert "cuda_gate_on_incompatible: build" in msg
    assert report["stats"]["gpu-old"]["failures"] == 1


def test_gate_selects_build_for_old_driver(gate_run: tuple[int, dict[str, Any]]) -> None:
    _, report = gate_run
    shown = _host_results(report, "Show the image source the host will use")
    assert shown["gpu-396"]["msg"] == "gpu-396 source=build cuda=9.2 fact=build"
    assert report["stats"]["gpu-396"]["failures"] == 0


def test_gate_lets_compatible_and_cpu_hosts_through(gate_run: tuple[int, dict[str, Any]]) -> None:
    _, report = gate_run
    shown = _host_results(report, "Show the image source the host will use")
    assert shown["gpu-new"]["msg"] == "gpu-new source=pull cuda= fact=unset"
    assert shown["cpu-only"]["msg"] == "cpu-only source=pull cuda= fact=unset"
    decided = _host_results(report, "Decide whether the driver can run the image")
    assert decided["gpu-new"]["ansible_facts"]["cuda_gate_result"]["cuda_required"] == "12.2"
    assert decided["cpu-only"]["ansible_facts"]["cuda_gate_result"]["gpu"] is False


def test_invalid_variable_fails_before_the_gate_runs() -> None:
    rc, report = _run("-e", "cuda_gate_image_source=docker-hub", "--limit", "gpu-new")
    assert rc == 2
    validation = _host_results(report, "Validating arguments against arg spec 'main'")["gpu-new"]
    assert validation["failed"] is True
    assert "cuda_gate_image_source" in validation["msg"]
    assert "docker-hub" in validation["msg"]
