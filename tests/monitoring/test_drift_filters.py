"""The drift-metric filters and the scrape-target filter (collections/.../filter/monitoring.py)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tfs_fleet.common.plugins.filter.monitoring import (
    drift_models_text,
    drift_serving_text,
    image_cuda_version,
    policy_versions,
    scrape_targets,
    serving_container,
)

PLAN = [
    {"name": "resnet", "wanted": [3, 1, 2], "version_policy": "all", "labels": {"stable": 2}},
    {"name": "half_plus_two", "wanted": [1, 2], "version_policy": "latest", "latest_count": 1,
     "labels": {}},
]  # fmt: skip


def lint(text: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: run scripts/ensure_controller_tools.sh"
    return subprocess.run(
        [tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )


def test_models_text_lists_published_served_latest_and_labels() -> None:
    text = drift_models_text(PLAN)
    assert 'tfs_fleet_model_version_published{model="half_plus_two",version="1"} 1' in text
    assert 'tfs_fleet_model_version_served{model="half_plus_two",version="1"}' not in text
    assert 'tfs_fleet_model_version_served{model="half_plus_two",version="2"} 1' in text
    assert 'tfs_fleet_model_latest_version{model="resnet"} 3' in text
    assert 'tfs_fleet_model_version_label{model="resnet",label="stable",version="2"} 1' in text
    # Deterministic: the same plan renders the same text, whatever the order.
    assert drift_models_text(list(reversed(PLAN))) == text
    proc = lint(text)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_policy_versions_follow_the_version_policy() -> None:
    assert policy_versions({"wanted": [1, 2, 3], "latest_count": 2}) == [2, 3]
    assert policy_versions({"wanted": [1, 3], "version_policy": "specific"}) == [1, 3]
    with pytest.raises(AnsibleFilterError, match="unknown version_policy"):
        policy_versions({"name": "m", "wanted": [1], "version_policy": "newest"})


def test_serving_text_with_gpu_and_escaping() -> None:
    text = drift_serving_text(
        ["tfserving-gpu1", "tfserving-gpu0"], 'reg/x:"1"', "sha256:ab", "580.95.05", "12.5", True
    )
    lines = text.splitlines()
    assert lines.index(
        'tfs_fleet_serving_image_info{container="tfserving-gpu0",image="reg/x:\\"1\\"",'
        'image_id="sha256:ab"} 1'
    ) < lines.index(
        'tfs_fleet_serving_image_info{container="tfserving-gpu1",image="reg/x:\\"1\\"",'
        'image_id="sha256:ab"} 1'
    )
    assert 'tfs_fleet_gpu_info{driver_version="580.95.05",image_cuda_version="12.5"} 1' in text
    assert "tfs_fleet_gpu_info" not in drift_serving_text(["tfserving"], "i", "sha256:1")
    proc = lint(text)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_image_cuda_from_the_image_environment_else_the_gate() -> None:
    results = [{"container": {"Config": {"Env": ["PATH=/bin", "CUDA_VERSION=12.2.2"]}}}]
    assert image_cuda_version(results, "11.8") == "12.2.2"
    assert image_cuda_version([{"container": {"Config": {"Env": []}}}], "11.8") == "11.8"
    assert image_cuda_version([], "") == ""


def test_serving_container_names_and_ports() -> None:
    assert serving_container(None, "tfserving", 8501, 10) == {
        "name": "tfserving",
        "rest_port": 8501,
    }
    assert serving_container(2, "tfserving", 8501, 10) == {
        "name": "tfserving-gpu2",
        "rest_port": 8521,
    }


def _record(*containers: tuple[str, int]) -> dict[str, object]:
    return {
        "tfserving_metrics": {
            "path": "/monitoring/prometheus/metrics",
            "containers": [{"name": n, "rest_port": p} for n, p in containers],
        }
    }


def test_scrape_targets_from_the_inventory() -> None:
    hostvars = {
        "gpu-a": {
            "ansible_host": "10.0.0.1",
            "ansible_local": _record(("tfserving-gpu0", 8501), ("tfserving-gpu1", 8511)),
            "nvidia_driver_gpu_present": True,
        },
        "cpu-b": {
            "tfserving_monitoring_address": "b.internal",
            "ansible_local": _record(("tfserving", 8501)),
        },
        "new-c": {},
        "mon": {"ansible_host": "10.0.0.9"},
        "lb1": {"ansible_host": "10.0.0.5"},
    }  # fmt: skip
    groups = {"gpu_servers": ["gpu-a", "cpu-b", "new-c"], "canary": ["gpu-a"], "lb": ["lb1"]}
    out = scrape_targets(hostvars, groups, ["gpu_servers", "canary"], extra_node_hosts=["mon"])
    by_job: dict[str, list[tuple[str, str]]] = {}
    for group in out["groups"]:
        (target,) = group["targets"]
        by_job.setdefault(group["labels"]["job"], []).append((group["labels"]["host"], target))
    # Within a group, hosts in name order (not the inventory's), containers by name.
    assert by_job["tfserving"] == [
        ("cpu-b", "b.internal:8501"),
        ("gpu-a", "10.0.0.1:8501"),
        ("gpu-a", "10.0.0.1:8511"),
    ]
    assert by_job["node"] == [
        ("cpu-b", "b.internal:9100"),
        ("gpu-a", "10.0.0.1:9100"),
        ("new-c", "new-c:9100"),
        ("mon", "10.0.0.9:9100"),
    ]
    assert by_job["dcgm"] == [("gpu-a", "10.0.0.1:9400")]
    assert by_job["haproxy"] == [("lb1", "10.0.0.5:8405")]
    assert out["unrecorded"] == ["new-c"]
    gpu_a_first = out["groups"][2]["labels"]
    assert gpu_a_first == {
        "host": "gpu-a",
        "fleet_group": "gpu_servers",
        "job": "tfserving",
        "container": "tfserving-gpu0",
        "__metrics_path__": "/monitoring/prometheus/metrics",
    }
    # No lb group, no DCGM: neither job.
    quiet = scrape_targets(hostvars, {"gpu_servers": ["gpu-a"]}, ["gpu_servers"], dcgm_port=0)
    assert {g["labels"]["job"] for g in quiet["groups"]} == {"tfserving", "node"}


def test_scrape_targets_do_not_follow_the_inventorys_host_order() -> None:
    """A dynamic inventory (the sandbox's container list, a cloud's API) can list the same hosts
    in another order on the next run: the targets file must not change, or Prometheus reloads
    and the re-run reports a change (seen on the sandbox: a re-run of site.yml rewrote it)."""
    hostvars = {
        f"host-{n}": {"ansible_local": _record(("tfserving", 8501))} for n in (1, 2, 10)
    } | {"lb-2": {}, "lb-1": {}}
    one = scrape_targets(
        hostvars, {"gpu_servers": ["host-10", "host-2", "host-1"], "lb": ["lb-2", "lb-1"]},
        ["gpu_servers"],
    )  # fmt: skip
    other = scrape_targets(
        hostvars, {"gpu_servers": ["host-1", "host-10", "host-2"], "lb": ["lb-1", "lb-2"]},
        ["gpu_servers"],
    )  # fmt: skip
    assert one == other
    assert [g["labels"]["host"] for g in one["groups"] if g["labels"]["job"] == "node"] == [
        "host-1",
        "host-2",
        "host-10",
    ]
    assert [g["labels"]["host"] for g in one["groups"] if g["labels"]["job"] == "haproxy"] == [
        "lb-1",
        "lb-2",
    ]
