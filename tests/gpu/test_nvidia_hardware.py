"""nvidia_hardware: GPU generations, NVSwitch detection, kernel-module flavour, Fabric Manager,
Secure Boot and the packages the nvidia_driver role installs (defects 1, 4 and 5 of issue 17).

The PCI scans have the shape the role's detect task prints (``<sysfs>/<address>/<attr>:<value>``);
the device IDs are NVIDIA's (driver README appendix A, open-gpu-kernel-modules README)."""

from __future__ import annotations

import pytest
from ansible_collections.tfs_fleet.common.plugins.module_utils import nvidia_facts as nf
from ansible_collections.tfs_fleet.common.plugins.module_utils import nvidia_hardware as nh

ROOT = "/sys/bus/pci/devices"


def scan(devices: dict[str, tuple[str, str, str]]) -> str:
    """vendor, class, device per address, in the order the role's shell loop prints them."""
    lines = []
    for attr_index, attr in enumerate(("vendor", "class", "device")):
        for address, values in devices.items():
            lines.append(f"{ROOT}/{address}/{attr}:{values[attr_index]}")
    return "\n".join(lines) + "\n"


# An HGX H100 8-GPU board, abridged: 2 of its 8 GPUs, 2 of its 4 NVSwitches, a Mellanox NIC.
HGX_H100 = scan(
    {
        "0000:18:00.0": ("0x10de", "0x030200", "0x2330"),
        "0000:2a:00.0": ("0x10de", "0x030200", "0x2330"),
        "0000:07:00.0": ("0x10de", "0x068000", "0x22a3"),
        "0000:08:00.0": ("0x10de", "0x068000", "0x22a3"),
        "0000:1a:00.0": ("0x15b3", "0x020700", "0x1021"),
    }
)
PCIE_L40S = scan(
    {
        "0000:17:00.0": ("0x10de", "0x030200", "0x26b9"),
        "0000:17:00.1": ("0x10de", "0x040300", "0x22ba"),
    }
)


def gpus(text: str) -> list[dict[str, str]]:
    return nf.pci_gpus(text)


@pytest.mark.parametrize(
    ("device", "generation"),
    [
        ("0x1db1", "pre_turing"),  # V100 SXM2
        ("0x15f8", "pre_turing"),  # P100
        ("0x1eb8", "turing"),  # T4
        ("0x20b2", "ampere"),  # A100 SXM4 80GB
        ("0x2236", "ampere"),  # A10
        ("0x26b9", "ada"),  # L40S
        ("0x27b8", "ada"),  # L4
        ("0x2330", "hopper"),  # H100 SXM5
        ("0x2335", "hopper"),  # H200 SXM
        ("0x2321", "hopper"),  # H100 NVL
        ("0x2342", "grace_hopper"),  # GH200
        ("0x2901", "blackwell"),  # B200
        ("0x2941", "blackwell"),  # GB200
        ("0x2bb1", "blackwell"),  # RTX PRO 6000 Blackwell
        ("2330", "hopper"),
        (0x2330, "hopper"),
    ],
)
def test_gpu_generation(device: object, generation: str) -> None:
    assert nh.gpu_generation(device) == generation


@pytest.mark.parametrize("bad", ["", "0xZZ", "0x123456", "H100"])
def test_gpu_generation_rejects_garbage(bad: str) -> None:
    with pytest.raises(nh.NvidiaPlanError, match="4 hex digits"):
        nh.gpu_generation(bad)


def test_device_ranges_cover_every_id_once() -> None:
    expected = 0
    for first, last, _ in nh.DEVICE_RANGES:
        assert first == expected
        expected = last + 1
    assert expected == 0x10000


def test_nvswitches_are_found_and_are_not_gpus() -> None:
    switches = nh.pci_nvswitches(HGX_H100)
    assert [s["address"] for s in switches] == ["0000:07:00.0", "0000:08:00.0"]
    assert [g["address"] for g in gpus(HGX_H100)] == ["0000:18:00.0", "0000:2a:00.0"]
    assert nh.pci_nvswitches(PCIE_L40S) == []


def test_loaded_module_flavour_from_proc() -> None:
    open_banner = (
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build  "
        "(dvs-builder@U16-I3-B03-4-3)  Thu Jan 23 00:18:42 UTC 2025\nGCC version:  gcc 13.3.0\n"
    )
    closed = (
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
    )
    assert nh.proc_kernel_module(open_banner) == "open"
    assert nh.proc_kernel_module(closed) == "proprietary"
    assert nh.proc_kernel_module("") == ""


@pytest.mark.parametrize(
    ("installed", "flavour"),
    [
        (["nvidia-driver-580-server-open", "nvidia-utils-580-server"], "open"),
        (["nvidia-driver-580-server", "nvidia-utils-580-server"], "proprietary"),
        (["linux-modules-nvidia-580-server-open-generic"], "open"),
        (["linux-modules-nvidia-580-server-generic"], "proprietary"),
        (["nvidia-open-kernel-dkms", "nvidia-driver"], "open"),
        (["nvidia-kernel-dkms", "nvidia-driver"], "proprietary"),
        (["kmod-nvidia-open-dkms"], "open"),
        (["cuda-drivers-575"], "proprietary"),
        (["nvidia-container-toolkit", "docker.io"], ""),
    ],
)
def test_installed_flavour(installed: list[str], flavour: str) -> None:
    assert nh.installed_kernel_module(installed) == flavour


# ---- defect 1: Fabric Manager on NVSwitch boards


def test_hgx_board_gets_fabric_manager_at_the_branch_on_ubuntu() -> None:
    plan = nh.driver_plan(
        "Ubuntu", "580", gpus=gpus(HGX_H100), nvswitches=nh.pci_nvswitches(HGX_H100)
    )
    assert plan["fabric_manager"] is True
    assert plan["nvswitch_count"] == 2
    assert plan["fabric_manager_packages"] == ["nvidia-fabricmanager-580", "libnvidia-nscq-580"]
    assert plan["fabric_manager_version_package"] == "nvidia-fabricmanager-580"
    assert plan["errors"] == []


def test_pcie_host_gets_no_fabric_manager() -> None:
    plan = nh.driver_plan("Ubuntu", "580", gpus=gpus(PCIE_L40S), nvswitches=[])
    assert plan["fabric_manager"] is False
    assert plan["fabric_manager_packages"] == []
    assert nh.driver_plan("Ubuntu", "580", gpus=gpus(PCIE_L40S), fabric_manager="always")[
        "fabric_manager_packages"
    ] == ["nvidia-fabricmanager-580", "libnvidia-nscq-580"]
    never = nh.driver_plan(
        "Ubuntu",
        "580",
        gpus=gpus(HGX_H100),
        nvswitches=nh.pci_nvswitches(HGX_H100),
        fabric_manager="never",
    )
    assert never["fabric_manager"] is False


def test_rhel_hgx_uses_the_fm_profile() -> None:
    plan = nh.driver_plan(
        "RedHat", "580", gpus=gpus(HGX_H100), nvswitches=nh.pci_nvswitches(HGX_H100)
    )
    assert plan["packages"] == ["@nvidia-driver:580-open/fm"]
    assert plan["rhel_stream"] == "580-open"
    assert plan["fabric_manager_version_package"] == "nvidia-fabric-manager"


def test_cuda_repo_590_names_fabric_manager_without_branch() -> None:
    plan = nh.driver_plan(
        "Ubuntu",
        "590",
        source="cuda_repo",
        gpus=gpus(HGX_H100),
        nvswitches=nh.pci_nvswitches(HGX_H100),
    )
    assert plan["packages"] == ["nvidia-driver-pinning-590", "nvidia-open"]
    assert plan["fabric_manager_packages"] == ["nvidia-fabricmanager", "libnvidia-nscq"]


def test_debian_hgx_fails_before_installing() -> None:
    plan = nh.driver_plan(
        "Debian", "535", gpus=gpus(HGX_H100), nvswitches=nh.pci_nvswitches(HGX_H100), host="hgx-1"
    )
    assert len(plan["errors"]) == 1
    assert plan["errors"][0].startswith("hgx-1 has 2 NVSwitch(es) and needs NVIDIA Fabric Manager")
    assert "nvidia_driver_fabric_manager: never" in plan["errors"][0]


# ---- defect 4: open kernel modules


def test_auto_fresh_hopper_on_580_is_open() -> None:
    plan = nh.driver_plan("Ubuntu", "580", gpus=gpus(HGX_H100))
    assert plan["kernel_module"] == "open"
    assert plan["packages"] == ["nvidia-driver-580-server-open"]
    assert plan["version_package"] == "nvidia-utils-580-server"
    headless = nh.driver_plan("Ubuntu", "580", flavor="headless", gpus=gpus(HGX_H100))
    assert headless["packages"] == ["nvidia-headless-580-server-open", "nvidia-utils-580-server"]


@pytest.mark.parametrize(
    ("kernel_module", "board", "expected_module", "dkms"),
    [
        pytest.param(
            "auto",
            gpus(HGX_H100)[:1],
            "proprietary",
            "nvidia-kernel-dkms",
            id="auto-keeps-535-proprietary",
        ),
        pytest.param(
            "open", gpus(PCIE_L40S), "open", "nvidia-open-kernel-dkms", id="explicit-open"
        ),
    ],
)
def test_debian_535_kernel_module_packages(
    kernel_module: str, board: list[dict[str, str]], expected_module: str, dkms: str
) -> None:
    plan = nh.driver_plan("Debian", "535", kernel_module=kernel_module, gpus=board)
    assert plan["kernel_module"] == expected_module
    assert plan["packages"] == ["nvidia-driver", dkms, "nvidia-smi", "nvidia-persistenced"]
    assert plan["version_package"] == dkms


def test_blackwell_requires_open_and_r570() -> None:
    b200 = [{"address": "0000:18:00.0", "device": "0x2901", "class": "0x030200"}]
    plan = nh.driver_plan("Ubuntu", "580", gpus=b200)
    assert plan["kernel_module"] == "open"
    assert plan["errors"] == []
    refused = nh.driver_plan("Ubuntu", "580", kernel_module="proprietary", gpus=b200, host="b1")
    assert "need the open kernel modules but proprietary was asked for" in refused["errors"][0]
    old = nh.driver_plan("Ubuntu", "550", gpus=b200, host="b1")
    assert "blackwell GPUs need driver branch 570 or later" in " ".join(old["errors"])


def test_auto_never_replaces_a_preinstalled_open_driver() -> None:
    installed = ["nvidia-driver-535-server-open", "nvidia-utils-535-server"]
    plan = nh.driver_plan("Ubuntu", "535", gpus=gpus(PCIE_L40S), installed=installed)
    assert plan["kernel_module"] == "open"
    assert plan["switch"] is False
    assert plan["packages"] == ["nvidia-driver-535-server-open"]
    assert "already has the open modules" in plan["kernel_module_reason"]


def test_auto_keeps_the_loaded_flavour_when_no_package_tells() -> None:
    plan = nh.driver_plan("Ubuntu", "580", gpus=gpus(PCIE_L40S), loaded_module="proprietary")
    assert plan["kernel_module"] == "proprietary"


def test_asking_for_a_flavour_switches_and_lists_what_goes() -> None:
    installed = ["nvidia-kernel-dkms", "nvidia-driver", "nvidia-smi"]
    plan = nh.driver_plan(
        "Debian", "535", kernel_module="open", gpus=gpus(PCIE_L40S), installed=installed
    )
    assert plan["switch"] is True
    assert plan["remove_packages"] == ["nvidia-kernel-dkms"]


def test_auto_with_proprietary_installed_on_blackwell_fails_with_the_fix() -> None:
    b200 = [{"address": "0000:18:00.0", "device": "0x2901", "class": "0x030200"}]
    plan = nh.driver_plan(
        "Ubuntu", "580", gpus=b200, installed=["nvidia-driver-580-server"], host="b1"
    )
    assert plan["kernel_module"] == "proprietary"
    assert "the host has the proprietary ones installed" in plan["errors"][0]
    assert "nvidia_driver_kernel_module: open" in plan["errors"][0]


def test_pre_turing_stays_proprietary_and_refuses_open() -> None:
    v100 = [{"address": "0000:18:00.0", "device": "0x1db1", "class": "0x030200"}]
    assert nh.driver_plan("Ubuntu", "580", gpus=v100)["kernel_module"] == "proprietary"
    refused = nh.driver_plan("Ubuntu", "580", kernel_module="open", gpus=v100)
    assert (
        "pre-Turing GPUs (0000:18:00.0 0x1db1) do not run the open kernel modules"
        in refused["errors"][0]
    )


def test_rhel_and_cuda_repo_open_packages() -> None:
    assert nh.driver_plan("RedHat", "580", gpus=gpus(PCIE_L40S))["packages"] == [
        "@nvidia-driver:580-open"
    ]
    assert nh.driver_plan("RedHat", "535", gpus=gpus(PCIE_L40S))["packages"] == [
        "@nvidia-driver:535-dkms"
    ]
    assert nh.driver_plan("Ubuntu", "575", source="cuda_repo", gpus=gpus(PCIE_L40S))[
        "packages"
    ] == ["nvidia-open-575"]
    assert nh.driver_plan("Ubuntu", "570", source="cuda_repo", kernel_module="proprietary")[
        "packages"
    ] == ["cuda-drivers-570"]


# ---- defect 5: Secure Boot


def test_ubuntu_secure_boot_uses_canonicals_signed_modules() -> None:
    plan = nh.driver_plan(
        "Ubuntu", "580", gpus=gpus(HGX_H100), secure_boot="enabled", kernel="6.8.0-48-generic"
    )
    assert plan["signed_modules"] is True
    assert plan["packages"] == [
        "linux-modules-nvidia-580-server-open-generic",
        "nvidia-driver-580-server-open",
    ]
    headless = nh.driver_plan(
        "Ubuntu", "535", flavor="headless", kernel_module="proprietary", secure_boot="enabled",
        kernel="6.8.0-1015-aws",
    )  # fmt: skip
    assert headless["packages"] == [
        "linux-modules-nvidia-535-server-aws",
        "nvidia-headless-no-dkms-535-server",
        "nvidia-utils-535-server",
    ]


def test_ubuntu_secure_boot_unknown_kernel_flavour_names_the_variable() -> None:
    plan = nh.driver_plan("Ubuntu", "580", secure_boot="enabled", kernel="6.8.0-custom")
    assert "nvidia_driver_ubuntu_kernel_flavour" in plan["errors"][0]
    fixed = nh.driver_plan(
        "Ubuntu", "580", secure_boot="enabled", kernel="6.8.0-custom", kernel_flavour="generic"
    )
    assert fixed["errors"] == []


@pytest.mark.parametrize(
    ("distribution", "source"),
    [("Debian", "distribution"), ("RedHat", "cuda_repo"), ("Ubuntu", "cuda_repo")],
)
def test_dkms_with_secure_boot_and_no_enrolled_key_fails_with_mok_steps(
    distribution: str, source: str
) -> None:
    branch = "535" if distribution == "Debian" else "580"
    plan = nh.driver_plan(distribution, branch, source=source, secure_boot="enabled", host="sb-1")
    assert plan["signed_modules"] is False
    message = " ".join(plan["errors"])
    assert message.startswith("Secure Boot is enabled on sb-1")
    assert "mokutil --import /var/lib/dkms/mok.pub" in message
    assert "Enroll MOK" in message
    enrolled = nh.driver_plan(
        distribution, branch, source=source, secure_boot="enabled", mok_enrolled=True
    )
    assert enrolled["errors"] == []


def test_secure_boot_off_or_container_changes_nothing() -> None:
    for state in ("disabled", "unsupported", "unknown"):
        assert nh.driver_plan("Debian", "535", secure_boot=state)["errors"] == []
    assert nh.driver_plan("Debian", "535", secure_boot="enabled", container=True)["errors"] == []


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (
            {"kernel_module": "closed"},
            "nvidia_driver_kernel_module must be one of auto, open, proprietary",
        ),
        (
            {"fabric_manager": "yes"},
            "nvidia_driver_fabric_manager must be one of auto, always, never",
        ),
        ({"branch": "latest"}, "nvidia_driver_branch must be three digits"),
    ],
)
def test_bad_input_names_the_variable(kwargs: dict[str, str], needle: str) -> None:
    args = {"distribution": "Ubuntu", "branch": "580", **kwargs}
    with pytest.raises(nh.NvidiaPlanError, match=needle):
        nh.driver_plan(**args)


def test_other_branch_packages_include_open_and_signed_modules() -> None:
    installed = [
        "nvidia-driver-535-server-open",
        "linux-modules-nvidia-535-server-open-generic",
        "linux-modules-nvidia-535-server-generic",
        "nvidia-fabricmanager-535",
        "libnvidia-nscq-535",
        "nvidia-driver-580-server-open",
        "nvidia-container-toolkit",
    ]
    assert nf.other_branch_packages(installed, "580") == sorted(installed[:5])


# ---- defect 2: one source of the GPU fact


def test_gpu_fact_order_variable_then_this_run_then_ansible_local() -> None:
    recorded = {
        "ansible_local": {"nvidia_driver": {"gpu_present": True, "installed_version": "580.65.06"}}
    }
    assert nh.gpu_fact(recorded) == {
        "present": True,
        "driver": "580.65.06",
        "source": "ansible_local",
    }
    this_run = {
        **recorded,
        "nvidia_driver_gpu_present": False,
        "nvidia_driver_installed_version": "",
    }
    assert nh.gpu_fact(this_run) == {"present": False, "driver": "", "source": "nvidia_driver"}
    assert nh.gpu_fact(recorded, explicit=False)["present"] is False
    assert nh.gpu_fact(recorded, explicit=False)["source"] == "variable"
    assert nh.gpu_fact({}) == {"present": False, "driver": "", "source": "none"}
    assert nh.gpu_fact({"ansible_local": {}}) == {"present": False, "driver": "", "source": "none"}
    assert nh.gpu_fact({"nvidia_driver_gpu_present": "True"})["present"] is True
    # Variables from -e are strings: Ansible's boolean rules (module_utils/booleans.py).
    assert nh.gpu_fact(recorded, explicit="false")["present"] is False
    assert nh.gpu_fact({}, explicit="yes")["present"] is True
    with pytest.raises(nh.NvidiaPlanError, match="'flase' is not a boolean"):
        nh.gpu_fact({}, explicit="flase")


def test_branch_policy() -> None:
    eol = nh.branch_policy("535", "2026-12-02")
    assert eol["expired"] is True
    assert "reached end of life in 2026-06" in eol["message"]
    assert 'nvidia_driver_branch: "580"' in eol["message"]
    assert "nvidia_driver_allow_eol_branch: true" in eol["message"]
    assert nh.branch_policy("535", "2026-05-31")["expired"] is False
    # NVIDIA's current page (R620) says June 2028; the R580 page said August 2028.
    assert nh.branch_policy("580", "2026-12-02") == {
        "branch": "580", "kind": "LTSB", "end_of_life": "2028-06", "expired": False,
        "message": "branch 580 (LTSB) reaches end of life in 2028-06",
    }  # fmt: skip
    assert nh.branch_policy("580", "2028-06-30")["expired"] is False
    assert nh.branch_policy("580", "2028-07-01")["expired"] is True
    assert nh.branch_policy("590", "2026-12-02")["kind"] == "unknown"


@pytest.mark.parametrize(
    ("branch", "kind", "end_of_life", "expired"),
    [
        ("535", "LTSB", "2026-06", True),
        ("550", "PB", "2025-08", True),
        ("580", "LTSB", "2028-06", False),
        ("595", "PB", "2027-03", False),
        ("610", "NFB", "2026-08", True),
        ("620", "LTSB", "2029-09", False),
    ],
)
def test_branch_lifecycle_as_of_december_2026(
    branch: str, kind: str, end_of_life: str, expired: bool
) -> None:
    policy = nh.branch_policy(branch, "2026-12-07")
    assert (policy["kind"], policy["end_of_life"], policy["expired"]) == (
        kind,
        end_of_life,
        expired,
    )


def test_supported_branches_move_with_the_date() -> None:
    assert nh.supported_branches("2026-12-07") == ["580", "595", "620"]
    assert nh.supported_branches("2027-04-01") == ["580", "620"]
    assert nh.supported_branches("2026-05-01") == ["535", "580", "595", "620"]
    assert (
        "supported today: 580 (LTSB until 2028-06), 595 (PB until 2027-03), "
        "620 (LTSB until 2029-09)" in (nh.branch_policy("610", "2026-12-07")["message"])
    )


@pytest.mark.parametrize(("major", "branch"), [("12", "535"), ("13", "550")])
def test_debians_own_packaged_branch_is_refused_naming_the_way_out(major: str, branch: str) -> None:
    policy = nh.branch_policy(branch, "2026-12-07", distribution="Debian", distribution_major=major)
    assert policy["expired"] is True
    message = policy["message"]
    assert f"It is the branch Debian {major} packages" in message
    assert "nvidia_driver_debian_source: cuda_repo" in message
    assert 'nvidia_driver_branch: "580"' in message
    assert f"keep Debian's {branch} knowingly with nvidia_driver_allow_eol_branch: true" in message
    # From NVIDIA's repository the same branch is just an expired branch, not Debian's.
    other = nh.branch_policy(branch, "2026-12-07", "Debian", major, source="cuda_repo")
    assert "packages" not in other["message"]
    # Another release's packaged branch is not named as this one's.
    assert (
        "Debian 13 packages" not in nh.branch_policy("535", "2026-12-07", "Debian", "13")["message"]
    )


def test_debian_from_nvidias_cuda_repository_takes_its_packages() -> None:
    plan = nh.driver_plan("Debian", "580", source="cuda_repo", gpus=gpus(PCIE_L40S))
    assert plan["packages"] == ["nvidia-open-580"]
    assert plan["version_package"] == "nvidia-open-580"
    plan = nh.driver_plan("Debian", "620", source="cuda_repo", kernel_module="proprietary")
    assert plan["packages"] == ["nvidia-driver-pinning-620", "cuda-drivers"]
    # Debian's own packages stay the default, and Debian's HGX error names the repository.
    assert nh.driver_plan("Debian", "550")["packages"][:2] == [
        "nvidia-driver",
        "nvidia-kernel-dkms",
    ]
    hgx = nh.driver_plan(
        "Debian", "550", gpus=gpus(HGX_H100), nvswitches=nh.pci_nvswitches(HGX_H100)
    )
    assert "nvidia_driver_debian_source: cuda_repo" in hgx["errors"][0]
    hgx_repo = nh.driver_plan(
        "Debian", "580", source="cuda_repo", gpus=gpus(HGX_H100),
        nvswitches=nh.pci_nvswitches(HGX_H100),
    )  # fmt: skip
    assert hgx_repo["errors"] == []
    assert hgx_repo["fabric_manager_packages"] == ["nvidia-fabricmanager-580", "libnvidia-nscq-580"]
