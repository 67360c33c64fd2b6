"""Unit tests of the nvidia-smi, /proc and PCI parsers."""

from __future__ import annotations

import pytest
from ansible_collections.tfs_fleet.common.plugins.module_utils import nvidia_facts as nf

PCI_SCAN = """\
/sys/bus/pci/devices/0000:00:02.0/vendor:0x8086
/sys/bus/pci/devices/0000:00:02.0/class:0x030000
/sys/bus/pci/devices/0000:00:02.0/device:0x3e92
/sys/bus/pci/devices/0000:17:00.0/vendor:0x10de
/sys/bus/pci/devices/0000:17:00.0/class:0x030200
/sys/bus/pci/devices/0000:17:00.0/device:0x2330
/sys/bus/pci/devices/0000:17:00.1/vendor:0x10de
/sys/bus/pci/devices/0000:17:00.1/class:0x040300
/sys/bus/pci/devices/0000:17:00.1/device:0x22ba
/sys/bus/pci/devices/0000:65:00.0/vendor:0x10de
/sys/bus/pci/devices/0000:65:00.0/class:0x030000
/sys/bus/pci/devices/0000:65:00.0/device:0x1db4
/sys/bus/pci/devices/0000:b0:00.0/vendor:0x10de
/sys/bus/pci/devices/0000:b0:00.0/class:0x068000
/sys/bus/pci/devices/0000:b0:00.0/device:0x22a3
"""


def test_pci_gpus_keeps_nvidia_display_controllers_only() -> None:
    gpus = nf.pci_gpus(PCI_SCAN)
    assert [g["address"] for g in gpus] == ["0000:17:00.0", "0000:65:00.0"]
    assert gpus[0] == {"address": "0000:17:00.0", "device": "0x2330", "class": "0x030200"}


def test_pci_gpus_none_without_nvidia() -> None:
    assert nf.pci_gpus(PCI_SCAN.replace("0x10de", "0x1002")) == []
    assert nf.pci_gpus("") == []


def test_pci_scan_garbage_is_an_error() -> None:
    with pytest.raises(nf.NvidiaParseError, match="unexpected PCI scan line"):
        nf.pci_gpus("grep: /sys/bus/pci/devices/*/vendor: No such file or directory\n")


PROC_PROPRIETARY = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
    "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
)
PROC_OPEN = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build  "
    "(dvs-builder@U16-I3-B03-4-3)  Tue Mar  5 22:15:33 UTC 2024\n"
)
PROC_OLD = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  396.37  Tue Jun 12 14:47:22 PDT 2018\n"


@pytest.mark.parametrize(
    ("text", "version"),
    [(PROC_PROPRIETARY, "535.104.05"), (PROC_OPEN, "550.54.15"), (PROC_OLD, "396.37")],
)
def test_proc_driver_version(text: str, version: str) -> None:
    assert nf.proc_driver_version(text) == version


@pytest.mark.parametrize("text", ["", "GCC version: 12.2.0\n", "NVRM version: unknown\n"])
def test_proc_driver_version_absent(text: str) -> None:
    assert nf.proc_driver_version(text) == ""


def test_smi_gpus_parses_every_row() -> None:
    output = (
        "550.54.15, NVIDIA H100 80GB HBM3, 81559 MiB\n550.54.15, Tesla V100-SXM2-16GB, 16384 MiB\n"
    )
    gpus = nf.smi_gpus(output)
    assert gpus == [
        {
            "index": 0,
            "driver_version": "550.54.15",
            "name": "NVIDIA H100 80GB HBM3",
            "memory_total_mib": 81559,
        },
        {
            "index": 1,
            "driver_version": "550.54.15",
            "name": "Tesla V100-SXM2-16GB",
            "memory_total_mib": 16384,
        },
    ]


def test_smi_gpu_name_with_comma() -> None:
    gpus = nf.smi_gpus("535.104.05, Board, Rev 2, 24576 MiB\n")
    assert gpus[0]["name"] == "Board, Rev 2"


def test_smi_empty_output_means_no_gpus() -> None:
    assert nf.smi_gpus("\n") == []


@pytest.mark.parametrize(
    "output",
    [
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
        "535.104.05, NVIDIA A100, [N/A]",
        "N/A, NVIDIA A100, 40960 MiB",
        "535.104.05, , 40960 MiB",
    ],
)
def test_smi_errors(output: str) -> None:
    with pytest.raises(nf.NvidiaParseError):
        nf.smi_gpus(output)


def test_other_branch_packages_for_an_upgrade() -> None:
    installed = {
        "nvidia-driver-535-server": [{}],
        "libnvidia-compute-535-server": [{}],
        "nvidia-utils-535-server": [{}],
        "nvidia-headless-no-dkms-535-server": [{}],
        "cuda-drivers-535": [{}],
        "nvidia-utils-580-server": [{}],
        "nvidia-driver-580-server": [{}],
        "nvidia-container-toolkit": [{}],
        "libnvidia-container1": [{}],
        "nvidia-kernel-common": [{}],
        "linux-modules-nvidia-535-server-generic": [{}],
        "bash": [{}],
    }
    assert nf.other_branch_packages(installed, "580") == [
        "cuda-drivers-535",
        "libnvidia-compute-535-server",
        # Canonical's signed modules of the old branch go too (issue 17: Secure Boot hosts).
        "linux-modules-nvidia-535-server-generic",
        "nvidia-driver-535-server",
        "nvidia-headless-no-dkms-535-server",
        "nvidia-utils-535-server",
    ]
    assert nf.other_branch_packages(list(installed), "535") == [
        "nvidia-driver-580-server",
        "nvidia-utils-580-server",
    ]


@pytest.mark.parametrize("branch", ["", "58", "latest", "5800"])
def test_other_branch_packages_bad_branch(branch: str) -> None:
    with pytest.raises(nf.NvidiaParseError, match="three digits"):
        nf.other_branch_packages(["nvidia-driver-535"], branch)


def test_other_branch_packages_rejects_a_string() -> None:
    with pytest.raises(nf.NvidiaParseError, match="expected package names"):
        nf.other_branch_packages("nvidia-driver-535", "580")
