"""Verifier, host with the fake GPU: real packages, files and services after converge."""

from __future__ import annotations

import json
import re

import pytest

testinfra_hosts = ["ansible://tfsf-gpu-driver"]

DRIVER_PACKAGES = ["nvidia-driver", "nvidia-kernel-dkms", "nvidia-smi", "nvidia-persistenced"]
PIN_FILE = "/etc/apt/preferences.d/tfs-fleet-nvidia-driver"
NOUVEAU_FILE = "/etc/modprobe.d/tfs-fleet-blacklist-nouveau.conf"


@pytest.mark.parametrize("name", DRIVER_PACKAGES)
def test_driver_packages_installed_on_branch_535(host, name):
    package = host.package(name)
    assert package.is_installed
    if name != "nvidia-persistenced":  # versioned on its own (535.171.x in bookworm)
        assert package.version.startswith("535."), package.version


def test_apt_pin_holds_branch(host):
    pin = host.file(PIN_FILE)
    assert pin.exists
    assert "Pin: version 535.*" in pin.content_string
    assert "Pin-Priority: 1001" in pin.content_string
    policy = host.check_output("apt-cache policy nvidia-kernel-dkms")
    assert re.search(r"Candidate: 535\.", policy)
    assert "1001" in policy


def test_nouveau_blacklisted(host):
    conf = host.file(NOUVEAU_FILE)
    assert conf.mode == 0o644
    assert "blacklist nouveau" in conf.content_string
    assert "options nouveau modeset=0" in conf.content_string


def test_module_registered_but_not_built_in_container(host):
    # No kernel headers in a container, so DKMS registers the module source and skips the
    # build (the role does not install headers there).
    status = host.check_output("dkms status")
    assert re.search(r"nvidia-current/535\.[0-9.]+: added", status), status
    assert not host.package(f"linux-headers-{host.check_output('uname -r')}").is_installed


def test_persistence_daemon_enabled(host):
    assert host.service("nvidia-persistenced").is_enabled


def test_nvidia_smi_installed_but_no_kernel_driver(host):
    assert host.file("/usr/bin/nvidia-smi").exists
    result = host.run("nvidia-smi")
    assert result.rc != 0  # no GPU and no kernel module in a container: no fake success


def test_local_facts_record_the_detection(host):
    facts = json.loads(host.file("/etc/ansible/facts.d/nvidia_driver.fact").content_string)
    assert facts["gpu_present"] is True
    assert [gpu["address"] for gpu in facts["gpus_pci"]] == ["0000:17:00.0"]
    assert facts["gpus_pci"][0]["device"] == "0x2330"
    assert facts["branch"] == "535"
    assert facts["package_version"].startswith("535.")
    assert facts["installed_version"] == ""  # no kernel module is loaded in a container
    assert facts["container"] is True
    assert facts["reboot_required"] is False
    assert facts["secure_boot"] in ("enabled", "disabled", "unsupported", "unknown")


def test_local_facts_record_the_plan(host):
    facts = json.loads(host.file("/etc/ansible/facts.d/nvidia_driver.fact").content_string)
    # H100 on Debian 12's 535 (older than R560): auto keeps the proprietary modules.
    assert facts["kernel_module"] == "proprietary"
    assert facts["nvswitch_count"] == 0
    assert facts["fabric_manager"] is False


def test_persistence_mode_is_on_in_the_daemons_unit(host):
    # The packaged unit passes --no-persistence-mode; the role's drop-in takes it out.
    exec_start = host.check_output(
        "systemctl show nvidia-persistenced --property ExecStart --value"
    )
    assert "--no-persistence-mode" not in exec_start
    assert "nvidia-persistenced" in exec_start
