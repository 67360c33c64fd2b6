"""Verifier, host without a GPU: the role skipped it and installed nothing."""

from __future__ import annotations

import json

testinfra_hosts = ["ansible://tfsf-gpu-driver-nogpu"]

DRIVER_PACKAGES = ["nvidia-driver", "nvidia-kernel-dkms", "nvidia-smi", "nvidia-persistenced"]
PIN_FILE = "/etc/apt/preferences.d/tfs-fleet-nvidia-driver"
NOUVEAU_FILE = "/etc/modprobe.d/tfs-fleet-blacklist-nouveau.conf"


def test_host_without_gpu_is_left_alone(host):
    for name in DRIVER_PACKAGES:
        assert not host.package(name).is_installed
    assert not host.file(PIN_FILE).exists
    assert not host.file(NOUVEAU_FILE).exists


def test_local_facts_say_no_gpu(host):
    facts = json.loads(host.file("/etc/ansible/facts.d/nvidia_driver.fact").content_string)
    assert facts["gpu_present"] is False
    assert facts["gpus_pci"] == []
    assert facts["branch"] == ""
