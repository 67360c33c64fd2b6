"""nvidia_driver on a throwaway Debian 12 systemd container with a fake PCI tree, in check mode:
an HGX board (GPUs + NVSwitches) and a Secure Boot host with no enrolled DKMS key both stop
before any change, with the reason and the fix; a PCIe host gets its plan reported.

Fixtures follow NVIDIA's documented PCI identities (vendor 0x10de; GPUs class 0x0302, device
0x2330 = H100 SXM5; NVSwitch class 0x0680, device 0x22a3 = H100 NVSwitch). No GPU is here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import (
    ansible_playbook,
    docker,
    playbook_report,
    systemd_container,
    write_inventory,
)

pytestmark = pytest.mark.docker

PLAY = """\
- name: nvidia_driver in check mode
  hosts: all
  become: true
  gather_facts: false
  roles: [nvidia_driver]
"""
HGX = {
    "0000:18:00.0": ("0x10de", "0x030200", "0x2330"),
    "0000:2a:00.0": ("0x10de", "0x030200", "0x2330"),
    "0000:07:00.0": ("0x10de", "0x068000", "0x22a3"),
}
PCIE = {"0000:17:00.0": ("0x10de", "0x030200", "0x26b9")}
FAKE_MOKUTIL = """#!/bin/sh
case "$1" in
  --sb-state) echo "SecureBoot enabled" ;;
  --test-key) echo "$2 is not enrolled"; exit 1 ;;
esac
"""


def _lay_out(name: str, root: str, devices: dict[str, tuple[str, str, str]]) -> None:
    script = []
    for address, (vendor, klass, device) in devices.items():
        path = f"{root}/{address}"
        script.append(
            f"mkdir -p {path} && echo {vendor} >{path}/vendor && echo {klass} >{path}/class"
            f" && echo {device} >{path}/device"
        )
    docker("exec", name, "sh", "-c", " && ".join(script))


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with systemd_container("gpu17-driver") as name:
        _lay_out(name, "/srv/fake/hgx", HGX)
        _lay_out(name, "/srv/fake/pcie", PCIE)
        inventory = write_inventory(tmp_path_factory.mktemp("inv") / "hosts.yml", [name])
        yield name, inventory


def _run(host: tuple[str, Path], tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    _, inventory = host
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    return playbook_report(
        playbook,
        inventory,
        "--check",
        "-e",
        "nvidia_driver_allow_eol_branch=true",
        *extra,
        timeout=300,
    )


def _task(report: dict[str, Any], prefix: str, host: str) -> dict[str, Any]:
    for play in report["plays"]:
        for task in play["tasks"]:
            if (
                task["task"]["name"].split(" : ", 1)[-1].startswith(prefix)
                and host in task["hosts"]
            ):
                return task["hosts"][host]
    raise AssertionError(f"no task {prefix!r} ran on {host}")


def _names(report: dict[str, Any]) -> list[str]:
    return [t["task"]["name"].split(" : ", 1)[-1] for p in report["plays"] for t in p["tasks"]]


def test_hgx_board_on_debian_stops_before_any_change(
    host: tuple[str, Path], tmp_path: Path
) -> None:
    rc, report = _run(host, tmp_path, "-e", "nvidia_driver_pci_devices_path=/srv/fake/hgx")
    name = host[0]
    assert rc == 2
    stop = _task(report, "Stop before any change", name)
    assert stop["failed"] is True
    assert "has 1 NVSwitch(es) and needs NVIDIA Fabric Manager" in stop["msg"]
    assert report["stats"][name]["changed"] == 0
    assert "Install the kernel headers for the running kernel" not in _names(report)


def test_secure_boot_without_enrolled_key_stops_with_mok_steps(
    host: tuple[str, Path], tmp_path: Path
) -> None:
    name = host[0]
    docker(
        "exec",
        name,
        "sh",
        "-c",
        f"cat >/usr/local/bin/mokutil <<'X'\n{FAKE_MOKUTIL}X\nchmod 0755 /usr/local/bin/mokutil",
    )
    try:
        rc, report = _run(
            host, tmp_path, "-e", "nvidia_driver_pci_devices_path=/srv/fake/pcie",
            "-e", "nvidia_driver_container=false",
        )  # fmt: skip
    finally:
        docker("exec", name, "rm", "-f", "/usr/local/bin/mokutil")
    assert rc == 2
    stop = _task(report, "Stop before any change", name)
    assert stop["msg"].startswith(
        f"Secure Boot is enabled on {name} and the DKMS signing key is not enrolled"
    )
    assert "mokutil --import /var/lib/dkms/mok.pub" in stop["msg"]
    assert report["stats"][name]["changed"] == 0


def test_pcie_host_plan_is_reported_and_passes_the_stop(
    host: tuple[str, Path], tmp_path: Path
) -> None:
    # Only up to the plan: the rest of the check run needs Debian's non-free archive.
    rc, report = _run(
        host, tmp_path, "-e", "nvidia_driver_pci_devices_path=/srv/fake/pcie",
        "-e", "nvidia_driver_install_headers=false", "-e", "nvidia_driver_debian_mirror=file:///nonexistent",
    )  # fmt: skip
    name = host[0]
    plan = _task(report, "Report the plan", name)["msg"]
    assert "proprietary kernel modules (branch 535 predates R560" in plan
    assert "Fabric Manager: not needed (0 NVSwitch)" in plan
    assert _task(report, "Stop before any change", name).get("skipped") is True
    assert rc in (
        0,
        2,
    )  # what follows the plan may fail on the unreachable mirror; not checked here


def test_branch_past_end_of_life_fails_unless_accepted(
    host: tuple[str, Path], tmp_path: Path
) -> None:
    # Debian 12's only branch, 535, reached its end of life in June 2026 (the policy is LTSB 580).
    rc, report = _run(
        host, tmp_path, "-e", "nvidia_driver_pci_devices_path=/srv/fake/pcie",
        "-e", "nvidia_driver_allow_eol_branch=false",
    )  # fmt: skip
    name = host[0]
    assert rc == 2
    check = _task(report, "Check the driver branch against NVIDIA's lifecycle", name)
    assert check["failed"] is True
    assert "branch 535 (LTSB) reached end of life in 2026-06" in check["msg"]
    assert report["stats"][name]["changed"] == 0


UBUNTU_UNIT = """\
# As Ubuntu's nvidia-persistenced package ships it (the flag the role takes out).
[Unit]
Description=NVIDIA Persistence Daemon
[Service]
Type=forking
ExecStart=/usr/bin/nvidia-persistenced --user nvidia-persistenced --no-persistence-mode --verbose
ExecStopPost=/bin/rm -rf /var/run/nvidia-persistenced
"""
PERSISTENCED_PLAY = """\
- name: The persistence daemon's drop-in
  hosts: all
  become: true
  gather_facts: false
  tasks:
    - name: Run the role's persistenced tasks
      ansible.builtin.include_role:
        name: nvidia_driver
        tasks_from: persistenced.yml
"""


def test_persistence_mode_drop_in_for_ubuntus_unit(host: tuple[str, Path], tmp_path: Path) -> None:
    name, inventory = host
    unit = "/etc/systemd/system/nvidia-persistenced.service"
    docker("exec", name, "sh", "-c", f"cat >{unit} <<'X'\n{UBUNTU_UNIT}X\nsystemctl daemon-reload")
    playbook = tmp_path / "persistenced.yml"
    playbook.write_text(PERSISTENCED_PLAY)
    proc = ansible_playbook(
        playbook, inventory, "-e", "nvidia_driver_installed_version=",
        "-e", "nvidia_driver_container=true", timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    shown = docker(
        "exec", name, "systemctl", "show", "nvidia-persistenced", "--property", "ExecStart"
    ).stdout
    assert "--persistence-mode" in shown
    assert "--no-persistence-mode" not in shown
    assert "--user nvidia-persistenced" in shown
