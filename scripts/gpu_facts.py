#!/usr/bin/env python3
# Copyright: tfs-fleet contributors
# Apache-2.0
"""Print, as JSON, what the tfs-fleet GPU roles decide on this host. Standard library only:
copy this one file to any GPU host and run it (`python3 gpu_facts.py`); no Ansible needed.

It reports the GPUs and their generation, the driver and its kernel-module flavour, the
NVSwitch / Fabric Manager need and state, the CUDA gate's decision for a TF Serving release,
the CDI specs and the Secure Boot state. Every input can come from a recorded file instead of
the live system (--lspci, --smi-xml, --proc-version, --sysfs, --cdi-dir, --sb-state), which is
how tests/gpu/test_gpu_facts.py runs it against recorded outputs.

The tables below are copies of the collection's (module_utils/nvidia_hardware.py and
cuda_compat.py); tests/gpu/test_gpu_facts.py fails when they drift apart.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

DEVICE_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0000, 0x1DFF, "pre_turing"),
    (0x1E00, 0x1FFF, "turing"),
    (0x2000, 0x20FF, "ampere"),
    (0x2100, 0x21FF, "turing"),
    (0x2200, 0x231F, "ampere"),
    (0x2320, 0x233F, "hopper"),
    (0x2340, 0x234F, "grace_hopper"),
    (0x2350, 0x25FF, "ampere"),
    (0x2600, 0x28FF, "ada"),
    (0x2900, 0xFFFF, "blackwell"),
)
OPEN_REQUIRED = frozenset({"grace_hopper", "blackwell"})
OPEN_UNSUPPORTED = frozenset({"pre_turing"})
OPEN_DEFAULT_BRANCH = 560
DRIVER_TABLE: tuple[tuple[str, str], ...] = (
    ("9.0", "384.81"),
    ("9.1", "390.46"),
    ("9.2", "396.26"),
    ("10.0", "410.48"),
    ("10.1", "418.39"),
    ("10.2", "440.33"),
    ("11.0", "450.51.05"),
    ("11.1", "455.23"),
    ("11.2", "460.27.03"),
    ("11.3", "465.19.01"),
    ("11.4", "470.42.01"),
    ("11.5", "495.29.05"),
    ("11.6", "510.39.01"),
    ("11.7", "515.43.04"),
    ("11.8", "520.61.05"),
    ("12.0", "525.60.13"),
    ("12.1", "530.30.02"),
    ("12.2", "535.54.03"),
    ("12.3", "545.23.06"),
    ("12.4", "550.54.14"),
    ("12.5", "555.42.06"),
    ("12.6", "560.28.03"),
    ("12.8", "570.26"),
    ("12.9", "575.51.03"),
    ("13.0", "580.65.06"),
    ("13.1", "590.44.01"),
    ("13.2", "595.45.04"),
    ("13.3", "610.43.02"),
)
TFSERVING_CUDA: dict[str, str] = {
    "2.14": "11.8",
    "2.15": "12.2",
    "2.16": "12.2",
    "2.17": "12.2",
    "2.18": "12.2",
    "2.19": "12.2",
    "2.20": "12.5",
    "2.21": "12.5",
}
NVIDIA_VENDOR = "10de"
LSPCI_RE = re.compile(
    r"^(?P<address>(?:[0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])\s+(?P<desc>.*?)\s+"
    r"\[(?P<class>[0-9a-f]{4})\]:\s+(?P<name>.*)\[(?P<vendor>[0-9a-f]{4}):(?P<device>[0-9a-f]{4})\]",
    re.IGNORECASE,
)
PROC_RE = re.compile(r"NVRM version:.*?\s(\d{2,4}\.\d{1,3}(?:\.\d{1,3})?)(?:\s|$)")
SECURE_BOOT_EFIVAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-e98c0e7f1e5f"


def generation(device: str) -> str:
    value = int(device.lower().removeprefix("0x"), 16)
    for first, last, name in DEVICE_RANGES:
        if first <= value <= last:
            return name
    return "unknown"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def pci_from_lspci(text: str) -> list[dict[str, str]]:
    """`lspci -nn` lines -> NVIDIA functions (address with domain, class, device)."""
    found = []
    for line in text.splitlines():
        match = LSPCI_RE.match(line.strip())
        if not match or match["vendor"].lower() != NVIDIA_VENDOR:
            continue
        address = match["address"].lower()
        if address.count(":") == 1:
            address = f"0000:{address}"
        found.append(
            {
                "address": address,
                "class": f"0x{match['class'].lower()}",
                "device": f"0x{match['device'].lower()}",
                "name": match["name"].strip(),
            }
        )
    return found


def pci_from_sysfs(root: Path) -> list[dict[str, str]]:
    found = []
    for entry in sorted(root.glob("*")) if root.is_dir() else []:
        try:
            vendor = (entry / "vendor").read_text().strip().lower()
            klass = (entry / "class").read_text().strip().lower()
            device = (entry / "device").read_text().strip().lower()
        except OSError:
            continue
        if vendor == f"0x{NVIDIA_VENDOR}":
            found.append({"address": entry.name.lower(), "class": klass[:6], "device": device})
    return found


def smi_from_xml(text: str) -> dict[str, Any]:
    """`nvidia-smi -q -x` -> driver version, CUDA version and per-GPU rows."""
    root = ET.fromstring(text)
    gpus = []
    for gpu in root.findall("gpu"):
        memory = (gpu.findtext("fb_memory_usage/total") or "").split()
        gpus.append(
            {
                "address": (gpu.get("id") or "").lower(),
                "name": gpu.findtext("product_name") or "",
                "architecture": gpu.findtext("product_architecture") or "",
                "device_id": (gpu.findtext("pci/pci_device_id") or "").lower(),
                "memory_total_mib": int(memory[0]) if memory and memory[0].isdigit() else None,
                "persistence_mode": gpu.findtext("persistence_mode") or "",
                "fabric_state": gpu.findtext("fabric/state") or "",
                "fabric_status": gpu.findtext("fabric/status") or "",
            }
        )
    return {
        "driver_version": root.findtext("driver_version") or "",
        "cuda_version": root.findtext("cuda_version") or "",
        "gpus": gpus,
    }


def _bdf(address: str) -> str:
    """bus:device.function of a PCI address (nvidia-smi writes an 8-digit domain, sysfs 4)."""
    return ":".join(address.lower().split(":")[-2:])


def _run(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else (proc.stdout + proc.stderr)


def secure_boot(sb_state: str | None, efivars: Path) -> str:
    if sb_state is not None:
        if "SecureBoot enabled" in sb_state:
            return "enabled"
        if "SecureBoot disabled" in sb_state:
            return "disabled"
        if "support Secure Boot" in sb_state:
            return "unsupported"
    var = efivars / SECURE_BOOT_EFIVAR
    try:
        data = var.read_bytes()
    except OSError:
        return "unsupported" if not efivars.exists() else "unknown"
    return "enabled" if len(data) >= 5 and data[4] == 1 else "disabled"


def cdi_specs(dirs: list[Path]) -> list[dict[str, Any]]:
    specs = []
    for directory in dirs:
        for path in sorted(directory.glob("*.y*ml")) + sorted(directory.glob("*.json")):
            text = path.read_text(errors="replace")
            if "nvidia.com/gpu" not in text:
                continue
            names = re.findall(r"^\s*-\s*name:\s*\"?([^\s\"]+)\"?\s*$", text, flags=re.MULTILINE)
            specs.append({"path": str(path), "devices": names})
    return specs


def cuda_gate(driver: str, tfserving_version: str) -> dict[str, Any]:
    series = ".".join(tfserving_version.split(".")[:2])
    needed = TFSERVING_CUDA.get(series)
    result: dict[str, Any] = {"tfserving_version": tfserving_version, "cuda_required": needed}
    if needed is None:
        result.update(action="unknown", reason=f"no CUDA recorded for TF Serving {series}")
        return result
    if not driver:
        result.update(action="no_driver", reason="no NVIDIA driver is loaded")
        return result
    supported = [cuda for cuda, floor in DRIVER_TABLE if _version(driver) >= _version(floor)]
    top = supported[-1] if supported else None
    minimum = dict(DRIVER_TABLE)[needed]
    result.update(cuda_max=top, min_driver=minimum)
    if top is not None and _version(top) >= _version(needed):
        result["action"] = "proceed"
    else:
        result.update(action="fail", reason=f"driver {driver} is older than {minimum}")
    return result


def facts(args: argparse.Namespace) -> dict[str, Any]:
    lspci = Path(args.lspci).read_text() if args.lspci else None
    functions = pci_from_lspci(lspci) if lspci is not None else pci_from_sysfs(Path(args.sysfs))
    gpu_functions = [f for f in functions if f["class"].startswith("0x03")]
    nvswitches = [f for f in functions if f["class"].startswith("0x0680")]
    smi_text = Path(args.smi_xml).read_text() if args.smi_xml else _run(["nvidia-smi", "-q", "-x"])
    try:
        smi = smi_from_xml(smi_text) if smi_text and smi_text.lstrip().startswith("<") else None
    except ET.ParseError:
        smi = None
    proc_path = Path(args.proc_version)
    proc = proc_path.read_text() if proc_path.exists() else ""
    match = PROC_RE.search(proc)
    driver = match.group(1) if match else (smi or {}).get("driver_version", "")
    module = ("open" if "Open Kernel Module" in proc else "proprietary") if match else ""
    by_address = {_bdf(g["address"]): g for g in (smi or {}).get("gpus", [])}
    gpus = []
    for function in gpu_functions:
        row = {**function, "generation": generation(function["device"])}
        smi_row = by_address.get(_bdf(function["address"]))
        if smi_row:
            row.update({k: v for k, v in smi_row.items() if k not in ("address", "device_id")})
        gpus.append(row)
    gens = {g["generation"] for g in gpus}
    branch = int(driver.split(".")[0]) if driver else 0
    if gens & OPEN_REQUIRED:
        auto = "open"
    elif gens & OPEN_UNSUPPORTED or (branch and branch < OPEN_DEFAULT_BRANCH):
        auto = "proprietary"
    else:
        auto = "open"
    service = _run(["systemctl", "is-active", "nvidia-fabricmanager"]) if args.live else None
    sb_text = Path(args.sb_state).read_text() if args.sb_state else _run(["mokutil", "--sb-state"])
    cdi_dirs = [Path(d) for d in (args.cdi_dir or ["/etc/cdi", "/var/run/cdi"])]
    return {
        "gpus": gpus,
        "nvswitches": nvswitches,
        "driver": {
            "version": driver,
            "kernel_module": module,
            "cuda_version": (smi or {}).get("cuda_version", ""),
        },
        "kernel_module": {
            "auto_choice": auto,
            "open_required": sorted(gens & OPEN_REQUIRED),
            "open_unsupported": sorted(gens & OPEN_UNSUPPORTED),
            "matches_auto": module in ("", auto),
        },
        "fabric_manager": {
            "needed": bool(nvswitches),
            "service": (service or "").strip() or "unknown",
            "fabric_states": sorted({g.get("fabric_state", "") for g in gpus} - {""}),
        },
        "cuda_gate": cuda_gate(driver, args.tfserving_version),
        "cdi": {"specs": cdi_specs([d for d in cdi_dirs if d.is_dir()])},
        "secure_boot": secure_boot(sb_text, Path(args.efivars)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tfserving-version", default=os.environ.get("TFSERVING_VERSION", "2.19.0")
    )
    parser.add_argument("--sysfs", default="/sys/bus/pci/devices", help="PCI devices directory")
    parser.add_argument("--lspci", help="a recorded `lspci -nn` output instead of sysfs")
    parser.add_argument("--smi-xml", help="a recorded `nvidia-smi -q -x` output")
    parser.add_argument("--proc-version", default="/proc/driver/nvidia/version")
    parser.add_argument("--cdi-dir", action="append", help="CDI spec directory (repeatable)")
    parser.add_argument("--sb-state", help="a recorded `mokutil --sb-state` output")
    parser.add_argument("--efivars", default="/sys/firmware/efi/efivars")
    parser.add_argument("--no-live", dest="live", action="store_false", help="run no systemctl")
    args = parser.parse_args(argv)
    json.dump(facts(args), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
