"""The tfserving role's GPU access, rendered in check mode against this machine's engine
(issue 17, defect 3 and the per-GPU items): CDI devices by default where the toolkit set CDI
up, NVIDIA_VISIBLE_DEVICES per container in runtime mode, the GPU count from detection, the
memory controls, a health check that notices a lost GPU, and the oversubscription check.
Nothing is created: docker_container runs in check mode; hosts are aliases of localhost."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import yaml

from helpers import playbook_report, require_docker_image

pytestmark = pytest.mark.docker

PROBE = "tfs-fleet/probe:latest"
PLAY = "- hosts: all\n  gather_facts: false\n  roles: [tfserving]\n"
TWO_GPUS = [
    {"address": "0000:18:00.0", "device": "0x2330", "class": "0x030200"},
    {"address": "0000:2a:00.0", "device": "0x2330", "class": "0x030200"},
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any]]:
    require_docker_image(PROBE)
    base = tmp_path_factory.mktemp("serving")
    (base / "models" / "half_plus_two" / "1").mkdir(parents=True)
    common = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "tfserving_image": PROBE,
        "tfserving_models_host_dir": str(base / "models"),
        "tfserving_config_dir": str(base / "etc"),
        "nvidia_driver_gpu_present": True,
        "nvidia_driver_gpus_pci": TWO_GPUS,
    }
    hosts = {
        "cdi-host": {
            "tfserving_container_name": "tfsf17-cdi",
            "nvidia_container_toolkit_cdi_enabled": True,
        },
        "old-engine": {"tfserving_container_name": "tfsf17-gpus"},
        "cdi-per-gpu": {
            "tfserving_container_name": "tfsf17-pergpu",
            "nvidia_container_toolkit_cdi_enabled": True,
            "tfserving_per_gpu_containers": True,
            "tfserving_gpu_memory_fraction": 0.45,
            "tfserving_gpu_allow_growth": True,
        },
        "runtime-per-gpu": {
            "tfserving_container_name": "tfsf17-runtime",
            "tfserving_gpu_mode": "runtime",
            "tfserving_per_gpu_containers": True,
        },
        "oversubscribed": {
            "tfserving_container_name": "tfsf17-over",
            "tfserving_per_gpu_containers": True,
            "tfserving_gpu_count": 4,
        },
        "cpu-host": {"tfserving_container_name": "tfsf17-cpu", "nvidia_driver_gpu_present": False},
    }
    inventory = base / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"vars": common, "hosts": hosts}}))
    playbook = base / "play.yml"
    playbook.write_text(PLAY)
    return playbook_report(playbook, inventory, "--check", timeout=300)


def _containers(report: dict[str, Any], host: str) -> list[dict[str, Any]]:
    for play in report["plays"]:
        for task in play["tasks"]:
            if (
                task["task"]["name"].endswith("Run the serving container(s)")
                and host in task["hosts"]
            ):
                return [r["invocation"]["module_args"] for r in task["hosts"][host]["results"]]
    raise AssertionError(f"no serving container task ran on {host}")


def test_cdi_devices_where_the_toolkit_set_cdi_up(report: tuple[int, dict[str, Any]]) -> None:
    (args,) = _containers(report[1], "cdi-host")
    assert args["device_requests"] == [
        {"driver": "cdi", "device_ids": ["nvidia.com/gpu=all"], "capabilities": None,
         "count": None, "options": None}
    ]  # fmt: skip
    assert args["runtime"] is None


def test_gpus_flag_where_cdi_is_not_set_up(report: tuple[int, dict[str, Any]]) -> None:
    (args,) = _containers(report[1], "old-engine")
    assert args["device_requests"][0]["driver"] == "nvidia"
    assert args["device_requests"][0]["count"] == -1


def test_per_gpu_cdi_containers_from_detection_with_memory_controls(
    report: tuple[int, dict[str, Any]],
) -> None:
    containers = _containers(report[1], "cdi-per-gpu")
    assert [c["name"] for c in containers] == ["tfsf17-pergpu-gpu0", "tfsf17-pergpu-gpu1"]
    assert [c["device_requests"][0]["device_ids"] for c in containers] == [
        ["nvidia.com/gpu=0"],
        ["nvidia.com/gpu=1"],
    ]
    for container in containers:
        assert "--per_process_gpu_memory_fraction=0.45" in container["command"]
        assert container["env"]["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


def test_every_container_serves_prometheus_metrics_by_default(
    report: tuple[int, dict[str, Any]],
) -> None:
    """TF Serving's metrics are on by default in every container, per-GPU ones included: the
    monitoring config (prometheus_config) is passed and its directory is mounted."""
    for host in ("cdi-host", "cdi-per-gpu", "runtime-per-gpu", "cpu-host"):
        containers = _containers(report[1], host)
        assert containers, host
        for container in containers:
            assert (
                "--monitoring_config_file=/etc/tfs-fleet/monitoring.config"
                in (container["command"])
            ), (host, container["name"])
            targets = {m["target"]: m for m in container["mounts"]}
            assert targets["/etc/tfs-fleet"]["read_only"] is True, (host, container["name"])


def test_runtime_mode_sets_nvidia_visible_devices_per_container(
    report: tuple[int, dict[str, Any]],
) -> None:
    containers = _containers(report[1], "runtime-per-gpu")
    assert [c["runtime"] for c in containers] == ["nvidia", "nvidia"]
    assert [c["env"]["NVIDIA_VISIBLE_DEVICES"] for c in containers] == ["0", "1"]


def test_health_check_notices_a_lost_gpu(report: tuple[int, dict[str, Any]]) -> None:
    (gpu,) = _containers(report[1], "cdi-host")
    (cpu,) = _containers(report[1], "cpu-host")
    # [CMD, bash, -c, script, $0, model name]: the model name travels as $1, never in the script.
    assert gpu["healthcheck"]["test"][3].endswith(
        "grep -q AVAILABLE <&3 && nvidia-smi -L >/dev/null 2>&1"
    )
    assert "nvidia-smi" not in cpu["healthcheck"]["test"][3]
    assert cpu["device_requests"] is None


def test_more_per_gpu_containers_than_gpus_fail_before_any_change(
    report: tuple[int, dict[str, Any]],
) -> None:
    rc, data = report
    assert rc == 2
    assert data["stats"]["oversubscribed"]["failures"] == 1
    for play in data["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].endswith("Check the GPU settings (per-GPU containers, memory)"):
                result = task["hosts"]["oversubscribed"]
                assert result["failed"] is True
                assert (
                    "tfserving_gpu_count 4 per-GPU containers on 2 detected GPU(s)" in result["msg"]
                )
                return
    raise AssertionError("the GPU settings check did not run")
