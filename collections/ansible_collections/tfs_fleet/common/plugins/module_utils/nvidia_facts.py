# Copyright: tfs-fleet contributors
# Apache-2.0
"""Parsers for what a host says about its NVIDIA hardware and driver.

* PCI scan: ``grep -s -H '' <root>/*/vendor <root>/*/class <root>/*/device`` output
  (``<path>/<address>/<attribute>:<value>`` lines) -> NVIDIA display/3D controllers.
* ``nvidia-smi --query-gpu=driver_version,name,memory.total --format=csv,noheader`` output.
* ``/proc/driver/nvidia/version`` content -> the loaded kernel module's version.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

NVIDIA_PCI_VENDOR = "0x10de"
# PCI base class 0x03: display controllers (0x0300 VGA, 0x0302 3D controller). NVIDIA's
# HDMI audio functions (0x0403) and NVSwitch bridges (0x0680) are not GPUs.
DISPLAY_CLASS_PREFIX = "0x03"

_PROC_RE = re.compile(r"NVRM version:.*?\s(\d{2,4}\.\d{1,3}(?:\.\d{1,3})?)(?:\s|$)")
_DRIVER_RE = re.compile(r"^\d{2,4}\.\d{1,3}(?:\.\d{1,3})?$")
_MEMORY_RE = re.compile(r"^(\d+)\s*MiB$")
# Ubuntu's branch-suffixed driver packages (nvidia-driver-535-server, libnvidia-compute-535,
# nvidia-utils-580) and NVIDIA's cuda-drivers-<branch>; not the container toolkit's packages.
_BRANCH_PACKAGE_RE = re.compile(
    r"^(?:(?:lib)?nvidia-[a-z0-9-]*?|cuda-drivers|linux-modules-nvidia)-(\d{3})"
    r"(?:-server)?(?:-open)?(?:-[a-z][a-z0-9.-]*)?$"
)
_PCI_ADDRESS_RE = re.compile(r"^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
_HEX_RE = re.compile(r"^0x[0-9a-f]+$")


class NvidiaParseError(ValueError):
    """Raised when a tool's output does not have the expected shape."""


def pci_scan_lines(scan: str) -> Iterator[tuple[str, list[str], str]]:
    """(line, path parts, value) of each ``<path>/<address>/<attribute>:<value>`` line of a
    PCI sysfs scan; blank lines are skipped."""
    for raw in scan.splitlines():
        line = raw.strip()
        if line:
            path, _, value = line.rpartition(":")
            yield raw, path.split("/"), value


def pci_gpus(scan: str) -> list[dict[str, str]]:
    """NVIDIA GPUs (address, device id, class) found in a PCI sysfs scan."""
    devices: dict[str, dict[str, str]] = {}
    for raw, parts, value in pci_scan_lines(scan):
        value = value.strip().lower()
        if (
            len(parts) < 2
            or parts[-1] not in ("vendor", "class", "device")
            or not _PCI_ADDRESS_RE.match(parts[-2].lower())
            or not _HEX_RE.match(value)
        ):
            raise NvidiaParseError(f"unexpected PCI scan line {raw!r}")
        devices.setdefault(parts[-2].lower(), {})[parts[-1]] = value
    gpus = [
        {"address": address, "device": attrs.get("device", ""), "class": attrs.get("class", "")}
        for address, attrs in sorted(devices.items())
        if attrs.get("vendor") == NVIDIA_PCI_VENDOR
        and attrs.get("class", "").startswith(DISPLAY_CLASS_PREFIX)
    ]
    return gpus


def proc_driver_version(text: str) -> str:
    """The kernel module version from /proc/driver/nvidia/version ('' when absent)."""
    match = _PROC_RE.search(text or "")
    return match.group(1) if match else ""


def smi_gpus(output: str) -> list[dict[str, object]]:
    """Rows of nvidia-smi --query-gpu=driver_version,name,memory.total --format=csv,noheader."""
    gpus: list[dict[str, object]] = []
    for index, raw in enumerate(line for line in output.splitlines() if line.strip()):
        fields = [f.strip() for f in raw.split(",")]
        if len(fields) < 3:
            raise NvidiaParseError(
                f"nvidia-smi line {raw!r} does not have driver_version, name, memory.total"
            )
        driver, memory = fields[0], fields[-1]
        name = ", ".join(fields[1:-1])
        memory_match = _MEMORY_RE.match(memory)
        if not _DRIVER_RE.match(driver) or memory_match is None or not name:
            raise NvidiaParseError(
                f"nvidia-smi line {raw!r} is not 'DRIVER, NAME, MEMORY MiB' "
                "(did nvidia-smi print an error instead of the query result?)"
            )
        gpus.append(
            {
                "index": index,
                "driver_version": driver,
                "name": name,
                "memory_total_mib": int(memory_match.group(1)),
            }
        )
    return gpus


def other_branch_packages(installed: object, branch: str) -> list[str]:
    """Installed driver packages that belong to a branch other than ``branch``."""
    if not re.match(r"^\d{3}$", str(branch)):
        raise NvidiaParseError(f"driver branch must be three digits such as '580', got {branch!r}")
    if not isinstance(installed, (dict, list, tuple, set)):
        raise NvidiaParseError(
            f"expected package names (a list or package_facts' dict), got {type(installed).__name__}"
        )
    names = list(installed)
    found = []
    for name in sorted(str(n) for n in names):
        match = _BRANCH_PACKAGE_RE.match(name)
        if match and match.group(1) != str(branch):
            found.append(name)
    return found
