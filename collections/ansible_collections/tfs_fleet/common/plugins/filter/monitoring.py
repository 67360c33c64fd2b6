# Copyright: tfs-fleet developers
# Apache License 2.0
"""Filters for fleet observability: the drift metrics each serving host publishes through node
exporter's textfile collector, and the Prometheus scrape targets generated from the inventory."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.tfs_fleet.common.plugins.module_utils.host_order import in_host_order
from ansible_collections.tfs_fleet.common.plugins.module_utils.nvidia_hardware import gpu_fact

DOCUMENTATION = r"""
name: drift_models_text
short_description: Prometheus text of the model versions and labels a host serves
description:
  - Renders, from the tfserving_models role's plan, C(tfs_fleet_model_version_published) (on
    disk), C(tfs_fleet_model_version_served) (what TF Serving serves by the model's version
    policy), C(tfs_fleet_model_latest_version) and C(tfs_fleet_model_version_label).
  - Deterministic (sorted), no timestamp, so an unchanged host renders the same text.
options:
  _input:
    description: The role's plan (tfs_fleet.common.model_plan) entries with name, wanted,
      version_policy, latest_count and labels.
    type: list
    required: true
"""

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _value(text: object) -> str:
    # Prometheus text format: backslash, double quote and line feed escaped in label values.
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _sample(name: str, labels: Mapping[str, object], value: float | int) -> str:
    for key in labels:
        if not _LABEL_NAME.match(key):
            raise AnsibleFilterError(f"monitoring: {key!r} is not a Prometheus label name")
    inner = ",".join(f'{k}="{_value(v)}"' for k, v in labels.items())
    shown = int(value) if float(value).is_integer() else value
    return f"{name}{{{inner}}} {shown}" if inner else f"{name} {shown}"


def _family(name: str, help_text: str, samples: Sequence[str]) -> list[str]:
    if not _METRIC_NAME.match(name):
        raise AnsibleFilterError(f"monitoring: {name!r} is not a Prometheus metric name")
    return [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", *samples]


def _versions(model: Mapping[str, Any], key: str) -> list[int]:
    try:
        return sorted({int(v) for v in model.get(key) or []})
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(
            f"drift_models_text: model {model.get('name')!r}: {key} must be whole numbers"
        ) from exc


def policy_versions(model: Mapping[str, Any]) -> list[int]:
    """What TF Serving serves of the published versions: latest N (default 1), all, specific."""
    published = _versions(model, "wanted")
    policy = model.get("version_policy") or "latest"
    if policy == "latest":
        count = int(model.get("latest_count") or 1)
        return published[-count:] if count > 0 else []
    if policy in ("all", "specific"):
        return published
    raise AnsibleFilterError(
        f"drift_models_text: model {model.get('name')!r}: unknown version_policy {policy!r}"
    )


def drift_models_text(plan: Sequence[Mapping[str, Any]]) -> str:
    if not isinstance(plan, Sequence) or isinstance(plan, str):
        raise AnsibleFilterError(f"drift_models_text: expected the model plan, got {plan!r}")
    published, served, latest, labels = [], [], [], []
    for model in sorted(plan, key=lambda m: str(m.get("name"))):
        name = str(model["name"])
        published += [
            _sample("tfs_fleet_model_version_published", {"model": name, "version": v}, 1)
            for v in _versions(model, "wanted")
        ]
        versions = policy_versions(model)
        served += [
            _sample("tfs_fleet_model_version_served", {"model": name, "version": v}, 1)
            for v in versions
        ]
        if versions:
            latest.append(_sample("tfs_fleet_model_latest_version", {"model": name}, versions[-1]))
        for label, version in sorted((model.get("labels") or {}).items()):
            labels.append(
                _sample(
                    "tfs_fleet_model_version_label",
                    {"model": name, "label": label, "version": int(version)},
                    1,
                )
            )
    lines = [
        *_family(
            "tfs_fleet_model_version_published",
            "Model version published in the served directory (1), as the last converge left it.",
            published,
        ),
        *_family(
            "tfs_fleet_model_version_served",
            "Model version TF Serving serves by the model's version policy (1).",
            served,
        ),
        *_family(
            "tfs_fleet_model_latest_version",
            "Highest model version served on this host.",
            latest,
        ),
        *_family(
            "tfs_fleet_model_version_label",
            "Version label of a model and the version it points to (1).",
            labels,
        ),
    ]
    return "\n".join(lines) + "\n"


def image_cuda_version(container_results: Sequence[Mapping[str, Any]], fallback: str = "") -> str:
    """CUDA of the serving image: CUDA_VERSION from the image's environment (NVIDIA's CUDA base
    images, and so TF Serving's GPU images, set it), else ``fallback`` (the CUDA gate's)."""
    for result in container_results or []:
        env = ((result or {}).get("container") or {}).get("Config", {}).get("Env") or []
        for entry in env:
            if isinstance(entry, str) and entry.startswith("CUDA_VERSION="):
                return entry.split("=", 1)[1]
    return str(fallback or "")


def drift_serving_text(
    containers: Sequence[str],
    image: str,
    image_id: str,
    driver_version: str = "",
    cuda_version: str = "",
    gpu: bool = False,
) -> str:
    """The serving containers' image reference and ID; on GPU hosts the driver version and the
    image's CUDA."""
    if not containers:
        raise AnsibleFilterError("drift_serving_text: no serving container names given")
    images = [
        _sample(
            "tfs_fleet_serving_image_info",
            {"container": c, "image": image or "", "image_id": image_id or ""},
            1,
        )
        for c in sorted(containers)
    ]
    lines = _family(
        "tfs_fleet_serving_image_info",
        "Image reference and image ID of a serving container (1).",
        images,
    )
    if gpu:
        lines += _family(
            "tfs_fleet_gpu_info",
            "NVIDIA driver version and the serving image's CUDA on a GPU host (1).",
            [
                _sample(
                    "tfs_fleet_gpu_info",
                    {"driver_version": driver_version or "", "image_cuda_version": cuda_version},
                    1,
                )
            ],
        )
    return "\n".join(lines) + "\n"


def serving_container(index: int | None, name: str, rest_port: int, stride: int) -> dict[str, Any]:
    """Name and REST port of one serving container as the tfserving role runs it (index None:
    the one container; N: the per-GPU container <name>-gpuN on port + N * stride)."""
    if index is None:
        return {"name": str(name), "rest_port": int(rest_port)}
    return {
        "name": f"{name}-gpu{int(index)}",
        "rest_port": int(rest_port) + int(index) * int(stride),
    }


# ---- scrape targets -------------------------------------------------------------------------
def _address(host: str, hv: Mapping[str, Any], override_key: str) -> str:
    override = hv.get(override_key)
    if isinstance(override, str) and override:
        return override
    return str(hv.get("ansible_host") or host)


def scrape_targets(
    hostvars: Mapping[str, Mapping[str, Any]],
    groups: Mapping[str, Sequence[str]],
    serving_groups: Sequence[str],
    node_exporter_port: int = 9100,
    lb_group: str = "lb",
    lb_port: int = 8405,
    lb_path: str = "/metrics",
    extra_node_hosts: Sequence[str] = (),
    dcgm_port: int = 9400,
) -> dict[str, Any]:
    """Prometheus file_sd target groups from the inventory.

    Every serving host (the hosts of ``serving_groups``) gives one target per serving container
    from what the tfserving role recorded there (``ansible_local.tfserving_metrics``: REST
    ports and metrics path, per-GPU containers included) and one node exporter target; every
    host of ``lb_group`` gives HAProxy's Prometheus endpoint; a serving host with an NVIDIA GPU
    (the nvidia_driver facts, tfs_fleet.common.nvidia_gpu_fact) its DCGM exporter (``dcgm_port``
    0: none); ``extra_node_hosts`` (the
    monitoring hosts) a node exporter target. Each target carries ``host`` (the inventory
    name), ``fleet_group`` (the serving group) and, for containers, ``container``. Within a
    group, hosts come in name order (module_utils.host_order), not the inventory's, so the same
    hosts always give the same file. Returns
    ``groups`` (the file_sd list) and ``unrecorded`` (serving hosts without a record, whose
    containers are not scraped yet)."""
    out: list[dict[str, Any]] = []
    unrecorded: list[str] = []
    seen: set[str] = set()
    for group in serving_groups:
        for host in in_host_order(groups.get(group, [])):
            if host in seen:
                continue
            seen.add(host)
            hv = hostvars.get(host, {})
            address = _address(host, hv, "tfserving_monitoring_address")
            base = {"host": host, "fleet_group": group}
            record = ((hv.get("ansible_local") or {}).get("tfserving_metrics")) or {}
            containers = record.get("containers") or []
            if not record.get("path") or not containers:
                unrecorded.append(host)
            for container in sorted(containers, key=lambda c: str(c.get("name"))):
                out.append(
                    {
                        "targets": [f"{address}:{int(container['rest_port'])}"],
                        "labels": {
                            **base,
                            "job": "tfserving",
                            "container": str(container["name"]),
                            "__metrics_path__": str(record["path"]),
                        },
                    }
                )
            out.append(
                {
                    "targets": [f"{address}:{int(node_exporter_port)}"],
                    "labels": {**base, "job": "node"},
                }
            )
            if int(dcgm_port) > 0 and gpu_fact(hv)["present"]:
                out.append(
                    {
                        "targets": [f"{address}:{int(dcgm_port)}"],
                        "labels": {**base, "job": "dcgm"},
                    }
                )
    for host in in_host_order(extra_node_hosts):
        if host in seen:
            continue
        seen.add(host)
        address = _address(host, hostvars.get(host, {}), "tfserving_monitoring_address")
        out.append(
            {
                "targets": [f"{address}:{int(node_exporter_port)}"],
                "labels": {"host": host, "fleet_group": "monitoring", "job": "node"},
            }
        )
    for host in in_host_order(groups.get(lb_group, []) if lb_group else []):
        address = _address(host, hostvars.get(host, {}), "tfserving_monitoring_address")
        out.append(
            {
                "targets": [f"{address}:{int(lb_port)}"],
                "labels": {
                    "host": host,
                    "fleet_group": lb_group,
                    "job": "haproxy",
                    "__metrics_path__": lb_path,
                },
            }
        )
    return {"groups": out, "unrecorded": unrecorded}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {f.__name__: f for f in (drift_models_text, drift_serving_text, image_cuda_version, policy_versions, serving_container, scrape_targets)}  # fmt: skip
