"""scripts/gpu_facts.py against recorded tool outputs (tests/gpu/fixtures: written from NVIDIA's
documented formats, no GPU was lent; see the fixtures' README), a fake PCI sysfs tree and a
fake efivars file; and its tables kept equal to the collection's."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ansible_collections.tfs_fleet.common.plugins.module_utils import cuda_compat, nvidia_hardware

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_facts.py"
FIX = Path(__file__).resolve().parent / "fixtures"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_facts", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(tmp_path: Path, *args: str) -> dict[str, Any]:
    efivars = tmp_path / "efivars"
    efivars.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--no-live", "--efivars", str(efivars),
         "--cdi-dir", str(tmp_path / "cdi"), *args],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(proc.stdout)


def _hgx(tmp_path: Path, smi: str = "hgx_h100_nvidia-smi-q-x.xml", *extra: str) -> dict[str, Any]:
    return _run(
        tmp_path, "--lspci", str(FIX / "hgx_h100_lspci-nn.txt"), "--smi-xml", str(FIX / smi),
        "--proc-version", str(FIX / "hgx_h100_proc_version.txt"), *extra,
    )  # fmt: skip


def test_tables_equal_the_collections() -> None:
    module = _module()
    assert module.DEVICE_RANGES == nvidia_hardware.DEVICE_RANGES
    assert module.OPEN_REQUIRED == nvidia_hardware.OPEN_REQUIRED
    assert module.OPEN_DEFAULT_BRANCH == nvidia_hardware.OPEN_DEFAULT_BRANCH
    assert module.DRIVER_TABLE == cuda_compat.DRIVER_TABLE
    assert module.TFSERVING_CUDA == cuda_compat.TFSERVING_CUDA


def test_standard_library_only() -> None:
    imports = [
        line.split()[1].split(".")[0]
        for line in SCRIPT.read_text().splitlines()
        if line.startswith(("import ", "from "))
    ]
    assert set(imports) <= set(sys.stdlib_module_names) | {"__future__"}


def test_hgx_h100_board(tmp_path: Path) -> None:
    facts = _hgx(tmp_path, "hgx_h100_nvidia-smi-q-x.xml", "--tfserving-version", "2.20.0")
    assert [(g["address"], g["generation"], g["name"]) for g in facts["gpus"]] == [
        ("0000:18:00.0", "hopper", "NVIDIA H100 80GB HBM3"),
        ("0000:2a:00.0", "hopper", "NVIDIA H100 80GB HBM3"),
    ]
    assert [s["address"] for s in facts["nvswitches"]] == ["0000:07:00.0", "0000:08:00.0"]
    assert facts["driver"] == {
        "version": "580.95.05",
        "kernel_module": "open",
        "cuda_version": "13.0",
    }
    assert facts["kernel_module"]["auto_choice"] == "open"
    assert facts["fabric_manager"]["needed"] is True
    assert facts["fabric_manager"]["fabric_states"] == ["Completed"]
    assert facts["cuda_gate"]["action"] == "proceed"
    assert facts["cuda_gate"]["min_driver"] == "555.42.06"
    assert facts["gpus"][0]["memory_total_mib"] == 81559


def test_hgx_before_fabric_manager_shows_the_fabric_not_started(tmp_path: Path) -> None:
    facts = _hgx(tmp_path, "hgx_h100_nofm_nvidia-smi-q-x.xml")
    assert facts["fabric_manager"] == {
        "needed": True, "service": "unknown", "fabric_states": ["Not Started"],
    }  # fmt: skip


def test_pcie_l40s_host(tmp_path: Path) -> None:
    facts = _run(
        tmp_path, "--lspci", str(FIX / "pcie_l40s_lspci-nn.txt"),
        "--smi-xml", str(FIX / "pcie_l40s_nvidia-smi-q-x.xml"),
        "--proc-version", str(FIX / "pcie_l40s_proc_version.txt"), "--tfserving-version", "2.20.0",
    )  # fmt: skip
    assert [(g["generation"], g["name"]) for g in facts["gpus"]] == [("ada", "NVIDIA L40S")]
    assert facts["nvswitches"] == []
    assert facts["fabric_manager"]["needed"] is False
    assert facts["driver"]["kernel_module"] == "proprietary"
    assert facts["kernel_module"]["auto_choice"] == "proprietary"  # branch 535 < R560
    assert facts["cuda_gate"]["action"] == "fail"  # 535 runs CUDA 12.2, 2.20 needs 12.5
    assert facts["cuda_gate"]["reason"] == "driver 535.230.02 is older than 555.42.06"


def test_sysfs_tree_cdi_spec_and_secure_boot(tmp_path: Path) -> None:
    pci = tmp_path / "pci"
    for address, (klass, device) in {
        "0000:18:00.0": ("0x030200", "0x2901"),  # B200
        "0000:07:00.0": ("0x068000", "0x2901"),
    }.items():
        (pci / address).mkdir(parents=True)
        (pci / address / "vendor").write_text("0x10de\n")
        (pci / address / "class").write_text(f"{klass}\n")
        (pci / address / "device").write_text(f"{device}\n")
    (tmp_path / "cdi").mkdir()
    (tmp_path / "cdi" / "nvidia.yaml").write_text(
        'cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: "0"\n- name: all\n'
    )
    (tmp_path / "efivars").mkdir()
    (tmp_path / "efivars" / _module().SECURE_BOOT_EFIVAR).write_bytes(b"\x06\x00\x00\x00\x01")
    facts = _run(
        tmp_path,
        "--sysfs",
        str(pci),
        "--proc-version",
        str(tmp_path / "none"),
        "--smi-xml",
        "/dev/null",
    )
    assert [g["generation"] for g in facts["gpus"]] == ["blackwell"]
    assert facts["kernel_module"]["open_required"] == ["blackwell"]
    assert facts["cdi"]["specs"] == [
        {"path": str(tmp_path / "cdi" / "nvidia.yaml"), "devices": ["0", "all"]}
    ]
    assert facts["secure_boot"] == "enabled"
    assert facts["driver"]["version"] == ""
    assert facts["cuda_gate"]["action"] == "no_driver"
