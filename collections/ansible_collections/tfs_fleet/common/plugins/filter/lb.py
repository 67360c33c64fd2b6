# Copyright: tfs-fleet developers
# Apache License 2.0
"""Filters for the tfserving_lb role: the load balancer's servers and its model checks."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.tfs_fleet.common.plugins.module_utils.booleans import ACCEPTS, as_bool
from ansible_collections.tfs_fleet.common.plugins.module_utils.host_order import in_host_order

DOCUMENTATION = r"""
name: lb_servers
short_description: The HAProxy servers for every serving container of the backend hosts
description:
  - One entry per serving container of each backend host, as the tfserving role runs them
    (one container, or one per GPU with C(tfserving_per_gpu_containers), named
    C(<tfserving_container_name>-gpu<i>), ports + i * C(tfserving_per_gpu_port_stride)).
  - The address is the host's C(tfserving_lb_server_address), else its C(ansible_host), else its
    inventory name.
  - Hosts come in name order (digits compared as numbers), not in the inventory's order, so a
    dynamic inventory that lists the same hosts in another order renders the same servers.
  - Fails, naming the host and the variable, when the LB could not reach the host (a loopback
    address, or the serving ports published on loopback only) or when the number of per-GPU
    containers is unknown (no GPU fact and C(tfserving_gpu_count) 0).
positional: hosts, lb_host
options:
  _input:
    description: hostvars.
    type: dict
    required: true
  hosts:
    description: The backend hosts (e.g. groups['gpu_servers']).
    type: list
    required: true
  lb_host:
    description: The load balancer's inventory name (a backend on the same host may use loopback).
    type: str
    required: true
"""

# HAProxy server and backend names: letters, digits and "-_.:" (cfgparse.c invalid_char).
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.:-]")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _int(value: Any, where: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"{where} must be a whole number (got {value!r})") from None
    return number


def _is_loopback(address: str) -> bool:
    if address in {"localhost", "localhost.localdomain", "ip6-localhost"}:
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def _gpu_count(host: str, hv: Mapping[str, Any]) -> int:
    """Containers with tfserving_per_gpu_containers, as the tfserving role counts them."""
    count = _int(hv.get("tfserving_gpu_count", 0), f"{host}: tfserving_gpu_count")
    if count > 0:
        return count
    detected = hv.get("nvidia_driver_gpus_pci")
    if detected is None:
        detected = (hv.get("ansible_local") or {}).get("nvidia_driver", {}).get("gpus_pci")
    if detected is None:
        raise AnsibleFilterError(
            f"{host}: tfserving_per_gpu_containers with tfserving_gpu_count 0 (one container per "
            "detected GPU), but the load balancer does not know how many GPUs the host has (no "
            "nvidia_driver fact). Run the play with the host's facts (site.yml, or "
            "playbooks/lb.yml which reads them), or set tfserving_gpu_count for the host."
        )
    return max(len(detected), 1)


def lb_servers(hostvars: Mapping[str, Any], hosts: Sequence[str], lb_host: str) -> list[dict]:
    servers: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for host in in_host_order(hosts):
        hv = hostvars[host]
        address = str(
            hv.get("tfserving_lb_server_address") or hv.get("ansible_host") or host
        ).strip()
        bind = str(hv.get("tfserving_bind_address", "127.0.0.1"))
        if host != lb_host and (_is_loopback(address) or _is_loopback(bind)):
            raise AnsibleFilterError(
                f"{host}: the load balancer {lb_host} would reach it at {address} with its serving "
                f"ports published on {bind} (tfserving_bind_address): "
                + (
                    "a loopback address. Set tfserving_lb_server_address for the host to the "
                    "address the load balancer reaches it at"
                    if _is_loopback(address)
                    else "loopback only. Set tfserving_bind_address for the host to its address "
                    "on the load balancer's network"
                )
                + "."
            )
        grpc = _int(hv.get("tfserving_grpc_port", 8500), f"{host}: tfserving_grpc_port")
        rest = _int(hv.get("tfserving_rest_port", 8501), f"{host}: tfserving_rest_port")
        container = str(hv.get("tfserving_container_name", "tfserving"))
        per_gpu = as_bool(hv.get("tfserving_per_gpu_containers", False))
        if per_gpu is None:
            raise AnsibleFilterError(
                f"{host}: tfserving_per_gpu_containers: "
                f"{hv.get('tfserving_per_gpu_containers')!r} is not accepted; it accepts {ACCEPTS}."
            )
        if per_gpu:
            stride = _int(
                hv.get("tfserving_per_gpu_port_stride", 10),
                f"{host}: tfserving_per_gpu_port_stride",
            )
            indexes: list[int | None] = list(range(_gpu_count(host, hv)))
        else:
            stride, indexes = 0, [None]
        for index in indexes:
            offset = 0 if index is None else index * stride
            suffix = "" if index is None else f"-gpu{index}"
            name = _NAME_BAD.sub("_", f"{host}{suffix}")
            if name in seen:
                raise AnsibleFilterError(
                    f"{host} and {seen[name]} give the same HAProxy server name {name}: rename one "
                    "of the hosts in the inventory."
                )
            seen[name] = host
            servers.append(
                {
                    "name": name,
                    "host": host,
                    "container": f"{container}{suffix}",
                    "address": address,
                    "grpc_port": grpc + offset,
                    "rest_port": rest + offset,
                }
            )
    return servers


def lb_model_checks(lb_models: Sequence[Any], models_list: Sequence[Any]) -> list[dict]:
    """The REST model-status requests of the health check: one per model, the version pinned or
    not. lb_models entries are names or {name, version}; empty: every model of models_list."""
    source = list(lb_models) or [
        {"name": m.get("name")} if isinstance(m, Mapping) else {"name": m} for m in models_list
    ]
    checks: list[dict[str, Any]] = []
    for entry in source:
        item = entry if isinstance(entry, Mapping) else {"name": entry}
        unknown = set(item) - {"name", "version"}
        name = str(item.get("name") or "")
        if unknown or not _MODEL_NAME.match(name):
            raise AnsibleFilterError(
                f"tfserving_lb_models: {entry!r} must be a model name or {{name, version}} with a "
                "name of letters, digits and '._-'"
                + (f" (unknown keys {sorted(unknown)})" if unknown else "")
            )
        version = item.get("version")
        if version is not None:
            version = _int(version, f"tfserving_lb_models: {name} version")
            if version < 1:
                raise AnsibleFilterError(f"tfserving_lb_models: {name} version must be 1 or more")
        uri = f"/v1/models/{name}" + ("" if version is None else f"/versions/{version}")
        checks.append({"name": name, "version": version, "uri": uri})
    if not checks:
        raise AnsibleFilterError(
            "The load balancer's health check needs a model: set tfserving_models_list (or "
            "tfserving_lb_models)."
        )
    names = [c["name"] for c in checks]
    if len(set(names)) != len(names):
        raise AnsibleFilterError(f"tfserving_lb_models: a model is listed twice ({names})")
    return checks


def lb_runtime_pairs(servers: Sequence[Mapping[str, Any]], backends: Sequence[str]) -> list[dict]:
    """{backend, server} pairs of the runtime API for these servers in every backend."""
    return [{"backend": b, "server": s["name"]} for b in backends for s in servers]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {f.__name__: f for f in (lb_servers, lb_model_checks, lb_runtime_pairs)}  # fmt: skip
