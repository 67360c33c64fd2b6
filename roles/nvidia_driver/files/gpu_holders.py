#!/usr/bin/env python3
# Shipped by the tfs-fleet nvidia_driver role (ansible.builtin.script); standard library only.
"""What holds the NVIDIA driver on this host, before its kernel modules are reloaded: the
processes with /dev/nvidia* open (each with its systemd unit and its container ID, read from
its cgroup), the driver's loaded modules, whether nouveau is loaded, and the version of the
nvidia module the running kernel would load. Prints one JSON object (the role's
nvidia_driver_activation filter decides from it); exit 0 unless /proc cannot be read.

    gpu_holders.py [--proc DIR] [--modinfo-version VERSION]   (the options are for tests)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

DEVICE = re.compile(r"^/dev/nvidia(\d+|ctl|-uvm|-uvm-tools|-modeset|-caps/.*)$")
# cgroup v2 ("0::/system.slice/docker-<id>.scope") and v1 ("12:devices:/docker/<id>") paths.
CONTAINER = re.compile(r"(?:docker-|/docker/|cri-containerd-|/containerd/|libpod-)([0-9a-f]{64})")
UNIT = re.compile(r"/([^/]+\.service)(?:/|$)")
MODULES = ("nvidia", "nvidia_uvm", "nvidia_modeset", "nvidia_drm", "nvidia_peermem", "nvidia_fs")


def cgroup_owner(text: str) -> tuple[str, str]:
    """(unit, container ID) of a process from its /proc/PID/cgroup text; either may be ''."""
    container, unit = "", ""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        match = CONTAINER.search(path)
        if match and not container:
            container = match.group(1)
        units = UNIT.findall(path)
        if units and not unit:
            unit = units[-1]
    return unit, container


def holders(proc: Path) -> list[dict[str, object]]:
    """Processes with an NVIDIA device node open (one entry per process)."""
    found: list[dict[str, object]] = []
    for entry in sorted(proc.iterdir(), key=lambda p: p.name):
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue  # gone, or a kernel thread
        devices = set()
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if DEVICE.match(target):
                devices.add(target)
        if not devices:
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            cgroup = (entry / "cgroup").read_text()
        except OSError:
            continue
        unit, container = cgroup_owner(cgroup)
        found.append({"pid": int(entry.name), "comm": comm, "unit": unit, "container": container,
                      "devices": sorted(devices)})  # fmt: skip
    return found


def loaded_modules(proc: Path) -> list[str]:
    try:
        lines = (proc / "modules").read_text().splitlines()
    except OSError:
        return []
    names = {line.split(" ", 1)[0] for line in lines}
    return sorted(names & {*MODULES, "nouveau"})


def module_version() -> str:
    """Version of the nvidia module the running kernel would load ('' when it has none)."""
    try:
        proc = subprocess.run(["modinfo", "-F", "version", "nvidia"], capture_output=True,
                              text=True, timeout=30, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proc", type=Path, default=Path("/proc"))
    parser.add_argument("--modinfo-version", default=None)
    args = parser.parse_args(argv)
    if not (args.proc / "self").exists() and not any(args.proc.glob("[0-9]*")):
        print(json.dumps({"error": f"cannot read {args.proc}"}))
        return 1
    modules = loaded_modules(args.proc)
    version = module_version() if args.modinfo_version is None else args.modinfo_version
    print(json.dumps({
        "holders": holders(args.proc),
        "modules": [m for m in modules if m != "nouveau"],
        "nouveau": "nouveau" in modules,
        "module_version": version,
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
