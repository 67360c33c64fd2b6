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
    nvidia_facts,
    nvidia_hardware,
)


def _wrap(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (
            cuda_compat.CudaCompatError,
            nvidia_facts.NvidiaParseError,
            nvidia_hardware.NvidiaPlanError,
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
        }
        return {name: _wrap(name, func) for name, func in table.items()}
