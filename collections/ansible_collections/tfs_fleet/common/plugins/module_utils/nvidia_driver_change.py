# Copyright: tfs-fleet contributors
# Apache-2.0
"""What a driver change does to a running GPU host (issue 24 item 4, docs/live-fleet.md).

Two decisions, both pure functions of what the role read on the host:

- ``change_plan``: before the run, in check mode (the host-setup plan play): does this run
  install, upgrade or activate a driver on the host (which drains a serving host first), or
  change nothing?
- ``activation_plan``: after the packages changed, how the new driver gets loaded: the kernel
  modules unloaded and loaded again in place (the containers and services that hold the GPU
  stopped first and started again after), a reboot, or nothing the role may do (the operator's
  steps instead). A reboot is never the control node's, and a process the role does not know
  that holds a GPU is never killed: it stops the change instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# Kernel modules of the driver, dependents first: the order to unload them in. nvidia_peermem
# (GPUDirect RDMA) and nvidia_fs (GPUDirect Storage) sit on nvidia; drm on modeset on nvidia.
UNLOAD_ORDER = (
    "nvidia_peermem",
    "nvidia_fs",
    "nvidia_drm",
    "nvidia_modeset",
    "nvidia_uvm",
    "nvidia",
)
# Loaded again whatever was loaded before: CUDA needs both.
ALWAYS_LOAD = ("nvidia", "nvidia_uvm")

CONTAINER_ID = re.compile(r"^[0-9a-f]{12,64}$")


class DriverChangeError(ValueError):
    """Input the decision cannot be made from (a bug in the caller, or a malformed probe)."""


def _major(version: str) -> str:
    return version.split(".", 1)[0] if version else ""


def change_plan(
    *,
    gpu_present: bool,
    force: bool = False,
    installed: Mapping[str, Any] | None = None,
    version_package: str,
    branch: str,
    loaded_version: str = "",
    in_container: bool = False,
    kernel_module_switch: bool = False,
) -> dict[str, str]:
    """{action, detail}: what this run would do to the host's driver.

    action is one of
      skip      no NVIDIA GPU and not forced: the role leaves the host alone;
      none      the branch is installed and loaded: nothing to do;
      install   no driver package yet;
      upgrade   another branch is installed, or the kernel-module flavour changes;
      activate  the packages are right but the loaded module is another version (or none is
                loaded): this run reloads the modules or reboots.
    installed maps package names to their versions (a list of {version} as package_facts gives,
    or a version string).
    """
    if not branch or not re.fullmatch(r"[0-9]{3}", str(branch)):
        raise DriverChangeError(
            f"nvidia_driver_branch must be a driver major version such as 580, got {branch!r}"
        )
    if not (gpu_present or force):
        return {"action": "skip", "detail": "no NVIDIA GPU"}
    version = _installed_version(installed or {}, version_package)
    if not version:
        return {"action": "install", "detail": f"no driver yet; branch {branch}"}
    if _major(version) != str(branch):
        return {"action": "upgrade", "detail": f"driver {version} -> branch {branch}"}
    if kernel_module_switch:
        return {"action": "upgrade", "detail": "the kernel modules change flavour"}
    if gpu_present and not in_container and not _same_driver(version, loaded_version):
        loaded = loaded_version or "none"
        return {
            "action": "activate",
            "detail": f"driver {version} installed, {loaded} loaded: the modules are reloaded or the host rebooted",
        }
    return {"action": "none", "detail": ""}


def _installed_version(installed: Mapping[str, Any], package: str) -> str:
    entry = installed.get(package)
    if isinstance(entry, list):
        entry = entry[0] if entry else None
    if isinstance(entry, Mapping):
        entry = entry.get("version")
    return str(entry or "")


def _same_driver(package_version: str, loaded_version: str) -> bool:
    """A package version (535.216.01-1~deb12u1, 580.65.06-0ubuntu1) against the loaded module's
    (535.216.01): the same driver when the package's starts with the module's numbers."""
    if not package_version or not loaded_version:
        return False
    return _numbers(package_version) == loaded_version


def _numbers(package_version: str) -> str:
    """The driver's own version in a package version: 580.82.07 of 580.82.07-1~deb12u1."""
    numbers = re.match(r"[0-9]+(\.[0-9]+)*", package_version)
    return numbers.group(0) if numbers else package_version


def activation_plan(
    *,
    gpu_present: bool,
    in_container: bool,
    control_node: bool,
    package_version: str,
    loaded_version: str,
    module_version: str = "",
    nouveau_loaded: bool = False,
    loaded_modules: Iterable[str] = (),
    holders: Iterable[Mapping[str, Any]] = (),
    containers: Mapping[str, str] | None = None,
    services: Iterable[str] = (),
    reload: bool = True,
    reboot: bool = True,
    host: str = "this host",
) -> dict[str, Any]:
    """How the installed driver gets loaded: {action, reason, stop_containers, stop_services,
    unload, load, blockers}.

    action is one of
      none    nothing to load: no GPU, a container (no kernel modules of its own), no package,
              or the loaded module is already the package's;
      reload  unload the modules (`unload`, in order) and load them again (`load`), after
              stopping `stop_containers` (names) and `stop_services` (units); start them again
              after;
      reboot  the new module can only be loaded by a boot (nouveau holds the GPU, the running
              kernel has no module of the new version, or reloading is turned off);
      manual  the role may do neither: `reason` says what the operator must do.

    holders: the processes that hold /dev/nvidia* ({pid, comm, unit, container}: the systemd
    unit and the container ID from the process's cgroup, either may be empty); containers: the
    engine's running containers, ID to name; services: the units the role may stop and start
    again (persistence daemon, Fabric Manager, DCGM).
    """
    result: dict[str, Any] = {
        "action": "none",
        "reason": "",
        "stop_containers": [],
        "stop_services": [],
        "unload": [],
        "load": [],
        "blockers": [],
    }
    if not gpu_present:
        return {**result, "reason": "no NVIDIA GPU"}
    if in_container:
        return {
            **result,
            "reason": "a container loads no kernel modules of its own (the machine's driver is used)",
        }
    if not package_version:
        return {**result, "reason": "no driver package installed"}
    if _same_driver(package_version, loaded_version) and not nouveau_loaded:
        return {**result, "reason": f"driver {loaded_version} is loaded"}

    loaded = sorted(set(loaded_modules) | ({"nvidia"} if loaded_version else set()))
    target_version = _numbers(package_version)
    reboot_reason = ""
    if nouveau_loaded:
        reboot_reason = "nouveau holds the GPU (blacklisted now; it goes at the next boot)"
    elif module_version != target_version:
        reboot_reason = f"the running kernel has no nvidia module of version {target_version}" + (
            f" (it has {module_version}: a new kernel came with the packages?)"
            if module_version
            else ""
        )
    elif not reload:
        reboot_reason = "nvidia_driver_reload is false"

    if reboot_reason:
        if control_node:
            return {
                **result,
                "action": "manual",
                "reason": (
                    f"{host} needs a reboot to load driver {target_version} ({reboot_reason}), but it "
                    "is the control node (connection local): reboot it yourself."
                ),
            }
        if not reboot:
            return {
                **result,
                "action": "manual",
                "reason": (
                    f"{host} needs a reboot to load driver {target_version} ({reboot_reason}); "
                    "nvidia_driver_reboot is false: reboot it yourself, or set it to true."
                ),
            }
        return {**result, "action": "reboot", "reason": reboot_reason}

    containers = dict(containers or {})
    allowed = set(services)
    stop_containers: set[str] = set()
    stop_services: set[str] = set()
    blockers: list[str] = []
    for holder in holders:
        if not isinstance(holder, Mapping):
            raise DriverChangeError(f"a holder must be a mapping, got {holder!r}")
        container = str(holder.get("container") or "")
        unit = str(holder.get("unit") or "")
        label = f"{holder.get('comm', '?')} (pid {holder.get('pid', '?')})"
        if container:
            if not CONTAINER_ID.match(container):
                raise DriverChangeError(f"not a container ID: {container!r}")
            name = next(
                (
                    n
                    for cid, n in containers.items()
                    if cid.startswith(container) or container.startswith(cid)
                ),
                "",
            )
            if name:
                stop_containers.add(name)
            else:
                blockers.append(
                    f"{label} in container {container[:12]}, which the engine does not list"
                )
        elif unit in allowed:
            stop_services.add(unit)
        else:
            blockers.append(f"{label}" + (f" of {unit}" if unit else ""))
    if blockers:
        return {
            **result,
            "action": "manual",
            "blockers": blockers,
            "reason": (
                f"{host}: driver {target_version} is installed but {loaded_version} is loaded, and "
                f"processes the role does not manage hold the GPU: {', '.join(blockers)}. Stop them "
                "(or add their unit to nvidia_driver_gpu_services) and run site.yml again; a reboot "
                "also loads the new driver."
            ),
        }
    unload = [m for m in UNLOAD_ORDER if m in loaded]
    load = [m for m in reversed(UNLOAD_ORDER) if m in loaded or m in ALWAYS_LOAD]
    return {
        **result,
        "action": "reload",
        "reason": f"driver {loaded_version} loaded, {target_version} installed: the modules are reloaded in place",
        "stop_containers": sorted(stop_containers),
        "stop_services": sorted(stop_services),
        "unload": unload,
        "load": load,
    }
