# Copyright: tfs-fleet contributors
# Apache-2.0
"""GPU filters: CUDA compatibility (driver -> CUDA, TF Serving -> CUDA, the gate) and parsers
of nvidia-smi, /proc/driver/nvidia/version and PCI sysfs scans, and the driver plan (kernel
module flavour, Fabric Manager, Secure Boot) of nvidia_hardware. See docs/gpu.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.tfs_fleet.common.plugins.module_utils import (
    cuda_compat,
    nvidia_driver_change,
    nvidia_facts,
    nvidia_hardware,
)

DOCUMENTATION = r"""
name: cuda_gate
short_description: The CUDA compatibility gate's decision for one host
description:
  - Takes the host's NVIDIA driver version and returns whether TF Serving O(tfserving_version)'s
    GPU image can run there (the CUDA it needs against the highest CUDA the driver supports), and
    what to do when it cannot (fail with a message naming the fix, or switch the host to a build
    for an older CUDA). See docs/gpu.md.
  - The same file holds the other GPU filters; see their docstrings in the source
    (C(cuda_max_for_driver), C(cuda_min_driver), C(tfserving_cuda), the C(nvidia_*) parsers of
    nvidia-smi, /proc/driver/nvidia/version and PCI sysfs, and C(nvidia_driver_plan)).
positional: tfserving_version, image_source, host
options:
  _input:
    description: The driver version (for example C(535.104.05)).
    type: str
    required: true
  tfserving_version:
    description: The TF Serving release whose GPU image would run.
    type: str
    required: true
  image_source:
    description: How the image is obtained (C(pull), C(archive), C(build), C(standin)).
    type: str
    required: true
  host:
    description: The host's name, for the messages.
    type: str
    default: this host
"""


def _wrap(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (
            cuda_compat.CudaCompatError,
            nvidia_facts.NvidiaParseError,
            nvidia_hardware.NvidiaPlanError,
            nvidia_driver_change.DriverChangeError,
        ) as exc:
            raise AnsibleFilterError(f"tfs_fleet.common.{name}: {exc}") from exc

    run.__name__ = name
    run.__doc__ = func.__doc__
    return run


def cuda_max_for_driver(driver: str, minor_compat: bool = False) -> str | None:
    """Highest CUDA major.minor the driver supports (None below CUDA 9.0)."""
    return cuda_compat.max_cuda_for_driver(driver, minor_compat=minor_compat)


def cuda_min_driver(cuda: str) -> str:
    """Minimum driver for a CUDA major.minor release."""
    return cuda_compat.min_driver_for_cuda(cuda)


def tfserving_cuda(version: str, overrides: dict[str, str] | None = None) -> str:
    """CUDA that TF Serving's GPU image for this release needs."""
    return cuda_compat.cuda_for_tfserving(version, overrides)


def cuda_gate(
    driver: str,
    tfserving_version: str,
    image_source: str,
    host: str = "this host",
    **options: Any,
) -> dict[str, object]:
    """The gate's decision for one host (see cuda_compat.gate; its keyword options gpu,
    on_incompatible, build_cuda, minor_compat and overrides pass through)."""
    return cuda_compat.gate(
        host=host,
        driver=driver,
        tfserving_version=tfserving_version,
        image_source=image_source,
        **options,
    )


def nvidia_driver_change_plan(installed: Any, **options: Any) -> dict[str, str]:
    """What this run would do to the host's driver (module_utils.nvidia_driver_change.change_plan;
    the input is ansible_facts.packages, the options its keywords)."""
    if not isinstance(installed, dict):
        raise nvidia_driver_change.DriverChangeError(
            f"expected the package facts (a dict), got {type(installed).__name__}"
        )
    return nvidia_driver_change.change_plan(installed=installed, **options)


def nvidia_driver_activation(probe: Any, **options: Any) -> dict[str, Any]:
    """How the installed driver gets loaded (module_utils.nvidia_driver_change.activation_plan);
    the input is files/gpu_holders.py's JSON, the options the other keywords."""
    if not isinstance(probe, dict) or "error" in probe:
        raise nvidia_driver_change.DriverChangeError(
            f"gpu_holders.py gave no usable answer: {probe!r}"
        )
    return nvidia_driver_change.activation_plan(
        holders=probe.get("holders", []),
        loaded_modules=probe.get("modules", []),
        nouveau_loaded=bool(probe.get("nouveau", False)),
        module_version=str(probe.get("module_version", "")),
        **options,
    )


class FilterModule:
    """tfs_fleet.common GPU filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        table: dict[str, Callable[..., Any]] = {
            "cuda_max_for_driver": cuda_max_for_driver,
            "cuda_min_driver": cuda_min_driver,
            "tfserving_cuda": tfserving_cuda,
            "cuda_gate": cuda_gate,
            "nvidia_pci_gpus": nvidia_facts.pci_gpus,
            "nvidia_smi_gpus": nvidia_facts.smi_gpus,
            "nvidia_proc_version": nvidia_facts.proc_driver_version,
            "nvidia_other_branch_packages": nvidia_facts.other_branch_packages,
            "nvidia_pci_nvswitches": nvidia_hardware.pci_nvswitches,
            "nvidia_gpu_generation": nvidia_hardware.gpu_generation,
            "nvidia_proc_kernel_module": nvidia_hardware.proc_kernel_module,
            "nvidia_driver_plan": nvidia_hardware.driver_plan,
            "nvidia_gpu_fact": nvidia_hardware.gpu_fact,
            "nvidia_branch_policy": nvidia_hardware.branch_policy,
            "nvidia_driver_change": nvidia_driver_change_plan,
            "nvidia_driver_activation": nvidia_driver_activation,
        }
        return {name: _wrap(name, func) for name, func in table.items()}
