# Copyright: tfs-fleet contributors
# Apache-2.0
"""What a host's NVIDIA hardware needs: GPU generation, kernel-module flavour, NVSwitch and
Fabric Manager, Secure Boot, and the driver packages that follow (``driver_plan``).

Pure Python (of Ansible, only its boolean rules through booleans.py; unit-testable; ``scripts/gpu_facts.py`` carries a copy of
the generation table, and a test keeps the two equal).

Sources (see docs/gpu.md):

* GPU generation from the PCI device ID: the device ID ranges of NVIDIA's chips as listed in
  the driver README's "Appendix A. Supported NVIDIA GPU Products" and the open kernel
  modules' README (github.com/NVIDIA/open-gpu-kernel-modules, "Compatible GPUs").
* Open kernel modules: supported from Turing on, required by Grace Hopper and Blackwell, the
  default since R560 (NVIDIA Driver Installation Guide, "Kernel Modules").
* NVSwitch: an NVIDIA PCI function of class 0x0680 (bridge, other) on HGX/DGX baseboards;
  such a host needs nvidia-fabricmanager (and libnvidia-nscq) at the driver's exact version
  (NVIDIA Fabric Manager User Guide).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.tfs_fleet.common.plugins.module_utils.booleans import ACCEPTS, as_bool
from ansible_collections.tfs_fleet.common.plugins.module_utils.nvidia_facts import pci_scan_lines

NVSWITCH_CLASS_PREFIX = "0x0680"

# (first device ID, last device ID, generation), ascending and without gaps.
DEVICE_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0000, 0x1DFF, "pre_turing"),  # Kepler, Maxwell, Pascal, Volta (V100 0x1db1-0x1df6)
    (0x1E00, 0x1FFF, "turing"),  # TU102/TU104/TU106 (T4 0x1eb8)
    (0x2000, 0x20FF, "ampere"),  # GA100 (A100 0x20b0-0x20b5, A30 0x20b7)
    (0x2100, 0x21FF, "turing"),  # TU116/TU117
    (0x2200, 0x231F, "ampere"),  # GA102 (A10 0x2236, A40 0x2235)
    (0x2320, 0x233F, "hopper"),  # GH100 (H100 SXM5 0x2330, PCIe 0x2331, NVL 0x2321, H200 0x2335)
    (0x2340, 0x234F, "grace_hopper"),  # GH200 (0x2342, 0x2348)
    (0x2350, 0x25FF, "ampere"),  # GA103/GA104/GA106/GA107
    (0x2600, 0x28FF, "ada"),  # AD10x (L40 0x26b5, L40S 0x26b9, L4 0x27b8)
    (0x2900, 0xFFFF, "blackwell"),  # GB100 (B200 0x2901, GB200 0x2941), GB20x and later IDs
)
GENERATIONS: tuple[str, ...] = (
    "pre_turing",
    "turing",
    "ampere",
    "ada",
    "hopper",
    "grace_hopper",
    "blackwell",
)
OPEN_REQUIRED: frozenset[str] = frozenset({"grace_hopper", "blackwell"})
OPEN_UNSUPPORTED: frozenset[str] = frozenset({"pre_turing"})
# Lowest driver branch that runs a generation (Blackwell: R570).
MIN_BRANCH: dict[str, int] = {"blackwell": 570, "grace_hopper": 535, "hopper": 525}
OPEN_MIN_BRANCH = 515
OPEN_DEFAULT_BRANCH = 560
# From R590 NVIDIA's Ubuntu repository has no branch-suffixed cuda-drivers-<branch>; a
# separate package pins the branch (NVIDIA Driver Installation Guide, "Version locking").
CUDA_REPO_UNSUFFIXED_BRANCH = 590

KERNEL_MODULES: tuple[str, ...] = ("auto", "open", "proprietary")
FABRIC_MANAGER: tuple[str, ...] = ("auto", "always", "never")
DISTRIBUTIONS: tuple[str, ...] = ("Debian", "Ubuntu", "RedHat")

_UBUNTU_KERNEL_RE = re.compile(r"^\d+\.\d+\.\d+-\d+-([a-z0-9][a-z0-9.-]*)$")
# Installed packages that tell the flavour of the kernel module. Ubuntu's branch packages
# (nvidia-driver-580[-server][-open], linux-modules-nvidia-580[-server]-[open-]<kernel>) differ
# only in the "open" part, so both lists build on the same two stems.
_BRANCH_PACKAGE = (
    r"^nvidia-(?:driver|headless|headless-no-dkms|dkms|kernel-source)-\d{3}(?:-server)?"
)
_LINUX_MODULES = r"^linux-modules-nvidia-\d{3}(?:-server)?-"


def _package_res(branch_end: str, modules_end: str, *others: str) -> tuple[re.Pattern[str], ...]:
    """The branch and linux-modules stems with their endings, then the other patterns."""
    patterns = (_BRANCH_PACKAGE + branch_end, _LINUX_MODULES + modules_end, *others)
    return tuple(re.compile(pattern) for pattern in patterns)


_OPEN = (r"^nvidia-open(?:-\d{3})?$", r"^nvidia-open-kernel-dkms$", r"^kmod-nvidia-open-dkms$")
_PROPRIETARY = (r"^cuda-drivers(?:-\d{3})?$", r"^nvidia-kernel-dkms$", r"^kmod-nvidia-latest-dkms$")
_OPEN_PACKAGE_RES = _package_res("-open$", "open-", *_OPEN)
_PROPRIETARY_PACKAGE_RES = _package_res("$", "(?!open-)", *_PROPRIETARY)


class NvidiaPlanError(ValueError):
    """Raised when an input has the wrong shape (a programming or inventory error)."""


def gpu_generation(device_id: object) -> str:
    """Generation of an NVIDIA GPU from its PCI device ID ("0x2330", "2330" or an int)."""
    if isinstance(device_id, int):
        value = device_id
    else:
        text = str(device_id).strip().lower()
        text = text[2:] if text.startswith("0x") else text
        if not re.match(r"^[0-9a-f]{1,4}$", text):
            raise NvidiaPlanError(
                f"PCI device ID must be 4 hex digits such as 0x2330, got {device_id!r}"
            )
        value = int(text, 16)
    for first, last, generation in DEVICE_RANGES:
        if first <= value <= last:
            return generation
    raise NvidiaPlanError(f"PCI device ID {device_id!r} is out of range")


def pci_nvswitches(scan: str) -> list[dict[str, str]]:
    """NVSwitch functions (NVIDIA vendor, PCI class 0x0680) in the PCI sysfs scan that
    nvidia_facts.pci_gpus reads (``<path>/<address>/<attribute>:<value>`` lines)."""
    devices: dict[str, dict[str, str]] = {}
    for raw, parts, value in pci_scan_lines(scan):
        if len(parts) < 2:
            raise NvidiaPlanError(f"unexpected PCI scan line {raw!r}")
        devices.setdefault(parts[-2].lower(), {})[parts[-1]] = value.strip().lower()
    return [
        {"address": address, "device": attrs.get("device", ""), "class": attrs.get("class", "")}
        for address, attrs in sorted(devices.items())
        if attrs.get("vendor") == "0x10de"
        and attrs.get("class", "").startswith(NVSWITCH_CLASS_PREFIX)
    ]


def proc_kernel_module(text: str) -> str:
    """Flavour of the loaded module from /proc/driver/nvidia/version: open, proprietary or ''."""
    for line in (text or "").splitlines():
        if line.startswith("NVRM version:"):
            return "open" if "Open Kernel Module" in line else "proprietary"
    return ""


def installed_kernel_module(installed: Iterable[str]) -> str:
    """Flavour the installed driver packages carry: open, proprietary or '' (none)."""
    names = sorted(str(name) for name in installed)
    if any(r.match(n) for n in names for r in _OPEN_PACKAGE_RES):
        return "open"
    if any(r.match(n) for n in names for r in _PROPRIETARY_PACKAGE_RES):
        return "proprietary"
    return ""


def ubuntu_kernel_flavour(kernel: str) -> str:
    """Ubuntu kernel flavour from a kernel release: 6.8.0-48-generic -> generic ('' if none)."""
    match = _UBUNTU_KERNEL_RE.match(kernel or "")
    return match.group(1) if match else ""


def _check(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise NvidiaPlanError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _packages(
    distribution: str,
    branch: str,
    flavor: str,
    source: str,
    module: str,
    signed: bool,
    kernel_flavour: str,
) -> tuple[list[str], str, str]:
    """(driver packages, the package whose version is the driver's, RHEL stream or '')."""
    is_open = module == "open"
    if distribution == "Debian" and source != "cuda_repo":
        kmod = "nvidia-open-kernel-dkms" if is_open else "nvidia-kernel-dkms"
        if flavor == "headless":
            return [kmod, "nvidia-smi", "libcuda1", "nvidia-persistenced"], kmod, ""
        return ["nvidia-driver", kmod, "nvidia-smi", "nvidia-persistenced"], kmod, ""
    if distribution == "RedHat":
        stream = f"{branch}-open" if is_open else f"{branch}-dkms"
        return [f"@nvidia-driver:{stream}"], "nvidia-driver", stream
    if source == "cuda_repo":
        meta = "nvidia-open" if is_open else "cuda-drivers"
        if int(branch) >= CUDA_REPO_UNSUFFIXED_BRANCH:
            return [f"nvidia-driver-pinning-{branch}", meta], meta, ""
        return [f"{meta}-{branch}"], f"{meta}-{branch}", ""
    suffix = f"{branch}-server" + ("-open" if is_open else "")
    utils = f"nvidia-utils-{branch}-server"
    if signed:
        modules = f"linux-modules-nvidia-{suffix}-{kernel_flavour}"
        if flavor == "headless":
            return [modules, f"nvidia-headless-no-dkms-{suffix}", utils], utils, ""
        return [modules, f"nvidia-driver-{suffix}"], utils, ""
    if flavor == "headless":
        return [f"nvidia-headless-{suffix}", utils], utils, ""
    return [f"nvidia-driver-{suffix}"], utils, ""


def _fabric_manager_packages(distribution: str, branch: str, source: str) -> list[str]:
    if distribution == "RedHat":
        return []  # the stream's fm profile brings nvidia-fabric-manager and libnvidia-nscq
    if source == "cuda_repo" and int(branch) >= CUDA_REPO_UNSUFFIXED_BRANCH:
        return ["nvidia-fabricmanager", "libnvidia-nscq"]
    return [f"nvidia-fabricmanager-{branch}", f"libnvidia-nscq-{branch}"]


def _other_flavour_packages(installed: Iterable[str], module: str) -> list[str]:
    wrong = _PROPRIETARY_PACKAGE_RES if module == "open" else _OPEN_PACKAGE_RES
    return sorted(n for n in (str(i) for i in installed) if any(r.match(n) for r in wrong))


def mok_steps(host: str) -> str:
    return (
        f"Secure Boot is enabled on {host} and the DKMS signing key is not enrolled, so a "
        "DKMS-built NVIDIA module would not load. Enroll the key, then run the role again: "
        "(1) create it if missing: `sudo dkms generate_mok` (or install dkms and let it create "
        "/var/lib/dkms/mok.pub); (2) `sudo mokutil --import /var/lib/dkms/mok.pub` and choose a "
        "one-time password; (3) reboot and, at the console, choose 'Enroll MOK' and enter that "
        "password; (4) check with `mokutil --test-key /var/lib/dkms/mok.pub` ('is already "
        "enrolled'). Or disable Secure Boot in the firmware."
    )


def driver_plan(
    distribution: str,
    branch: str,
    flavor: str = "full",
    source: str = "distribution",
    kernel_module: str = "auto",
    gpus: Iterable[Mapping[str, Any]] = (),
    nvswitches: Iterable[Mapping[str, Any]] = (),
    fabric_manager: str = "auto",
    installed: Iterable[str] = (),
    loaded_module: str = "",
    secure_boot: str = "unknown",
    mok_enrolled: bool = False,
    kernel: str = "",
    kernel_flavour: str = "",
    container: bool = False,
    host: str = "this host",
) -> dict[str, Any]:
    """What the nvidia_driver role installs on one host, and why; ``errors`` lists the reasons
    to stop before any change (the role fails with them)."""
    _check("distribution", distribution, DISTRIBUTIONS)
    _check("nvidia_driver_kernel_module", kernel_module, KERNEL_MODULES)
    _check("nvidia_driver_fabric_manager", fabric_manager, FABRIC_MANAGER)
    _check("nvidia_driver_flavor", flavor, ("full", "headless"))
    _check(
        "the driver source (nvidia_driver_ubuntu_source / nvidia_driver_debian_source)",
        source,
        ("distribution", "cuda_repo"),
    )
    if not re.match(r"^\d{3}$", str(branch)):
        raise NvidiaPlanError(
            f"nvidia_driver_branch must be three digits such as '580', got {branch!r}"
        )
    if distribution == "RedHat":
        source = "cuda_repo"
    installed = sorted(str(name) for name in installed)
    gpu_list = list(gpus)
    generations = [gpu_generation(g.get("device", "")) for g in gpu_list]
    gens = set(generations)
    branch_n = int(branch)
    errors: list[str] = []

    have = installed_kernel_module(installed) or (
        loaded_module if loaded_module in ("open", "proprietary") else ""
    )
    required = sorted(gens & OPEN_REQUIRED)
    unsupported = sorted(gens & OPEN_UNSUPPORTED)
    if kernel_module != "auto":
        module = kernel_module
        reason = f"nvidia_driver_kernel_module: {kernel_module}"
    elif have:
        module = have
        reason = f"the host already has the {have} modules (auto never switches; set open or proprietary to switch)"
    elif required:
        module = "open"
        reason = f"{', '.join(required)} GPUs require the open modules"
    elif unsupported:
        module = "proprietary"
        reason = "pre-Turing GPUs need the proprietary modules"
    elif branch_n >= OPEN_DEFAULT_BRANCH:
        module = "open"
        reason = (
            f"open modules are NVIDIA's default from R{OPEN_DEFAULT_BRANCH} on (Turing and later)"
        )
    else:
        module = "proprietary"
        reason = f"branch {branch} predates R{OPEN_DEFAULT_BRANCH}, whose default became the open modules"
    if module == "open" and unsupported:
        errors.append(
            f"{host}: pre-Turing GPUs ({', '.join(_ids(gpu_list, generations, 'pre_turing'))}) do not run "
            "the open kernel modules: set nvidia_driver_kernel_module: proprietary."
        )
    if module == "proprietary" and required:
        errors.append(
            f"{host}: {', '.join(required)} GPUs ({', '.join(i for g in required for i in _ids(gpu_list, generations, g))}) "
            "need the open kernel modules but "
            + (
                "the host has the proprietary ones installed"
                if kernel_module == "auto"
                else "proprietary was asked for"
            )
            + ": set nvidia_driver_kernel_module: open (the role then replaces the proprietary packages)."
        )
    if module == "open" and branch_n < OPEN_MIN_BRANCH:
        errors.append(
            f"{host}: branch {branch} has no production open kernel modules (R{OPEN_MIN_BRANCH} and later do): "
            "raise nvidia_driver_branch or set nvidia_driver_kernel_module: proprietary."
        )
    for generation in sorted(gens):
        if branch_n < MIN_BRANCH.get(generation, 0):
            errors.append(
                f"{host}: {generation} GPUs need driver branch {MIN_BRANCH[generation]} or later, "
                f"nvidia_driver_branch is {branch}."
            )

    switches = list(nvswitches)
    need_fm = fabric_manager == "always" or (fabric_manager == "auto" and len(switches) > 0)
    fm_packages = _fabric_manager_packages(distribution, branch, source) if need_fm else []
    if need_fm and distribution == "Debian" and source == "distribution":
        errors.append(
            f"{host} has {len(switches)} NVSwitch(es) and needs NVIDIA Fabric Manager at the driver's "
            "exact version, which Debian does not ship: take the driver from NVIDIA's CUDA "
            "repository (nvidia_driver_debian_source: cuda_repo), run this host on Ubuntu or RHEL, "
            "or set nvidia_driver_fabric_manager: never if you install Fabric Manager yourself."
        )

    signed = False
    if secure_boot == "enabled" and not container:
        if distribution == "Ubuntu" and source == "distribution":
            signed = True
            kernel_flavour = kernel_flavour or ubuntu_kernel_flavour(kernel)
            if not kernel_flavour:
                errors.append(
                    f"{host}: cannot tell the Ubuntu kernel flavour from kernel {kernel!r} for Canonical's "
                    "signed linux-modules-nvidia packages: set nvidia_driver_ubuntu_kernel_flavour "
                    "(e.g. generic)."
                )
        elif not mok_enrolled:
            errors.append(mok_steps(host))

    packages, version_package, stream = _packages(
        distribution, branch, flavor, source, module, signed, kernel_flavour
    )
    if need_fm and distribution == "RedHat":
        packages = [f"{p}/fm" for p in packages]
    remove = _other_flavour_packages(installed, module) if have and have != module else []
    return {
        "distribution": distribution,
        "branch": branch,
        "generations": generations,
        "kernel_module": module,
        "kernel_module_reason": reason,
        "installed_kernel_module": have,
        "switch": bool(have and have != module),
        "remove_packages": remove,
        "packages": packages,
        "version_package": version_package,
        "rhel_stream": stream,
        "signed_modules": signed,
        "nvswitch_count": len(switches),
        "fabric_manager": need_fm,
        "fabric_manager_packages": fm_packages,
        "fabric_manager_version_package": fm_packages[0]
        if fm_packages
        else ("nvidia-fabric-manager" if need_fm else ""),
        "errors": errors,
    }


def _ids(gpus: list[Mapping[str, Any]], generations: list[str], generation: str) -> list[str]:
    return [
        f"{g.get('address', '?')} {g.get('device', '?')}"
        for g, gen in zip(gpus, generations, strict=True)
        if gen == generation
    ]


def gpu_fact(host: Mapping[str, Any], explicit: object = None) -> dict[str, Any]:
    """The one source of "does this host have an NVIDIA GPU, and which driver is loaded".

    ``host`` is the host's variables (``hostvars[inventory_hostname]``). In order: the role's
    own variable (``explicit``, when not None); the nvidia_driver role's facts set in this run
    (``nvidia_driver_gpu_present``, ``nvidia_driver_installed_version``); what that role
    recorded on the host in /etc/ansible/facts.d/nvidia_driver.fact (``ansible_local``, read
    by fact gathering: a play with ``gather_facts: false`` or a ``--tags`` run that skipped the
    driver role still finds it); else no GPU. Returns present, driver and source."""
    local = host.get("ansible_local") or {}
    recorded = local.get("nvidia_driver") if isinstance(local, Mapping) else None
    recorded = recorded if isinstance(recorded, Mapping) else {}
    if "nvidia_driver_gpu_present" in host:
        present, source = host["nvidia_driver_gpu_present"], "nvidia_driver"
    elif "gpu_present" in recorded:
        present, source = recorded["gpu_present"], "ansible_local"
    else:
        present, source = False, "none"
    if "nvidia_driver_installed_version" in host:
        driver = host["nvidia_driver_installed_version"] or ""
    else:
        driver = recorded.get("installed_version", "") or ""
    if explicit is not None:
        present, source = explicit, "variable"
    converted = as_bool(present)
    if converted is None and source == "variable":
        raise NvidiaPlanError(f"the role's GPU variable: {explicit!r} is not {ACCEPTS}")
    return {"present": bool(converted), "driver": str(driver), "source": source}


# Branch policy: NVIDIA's data-center driver lifecycle ("Supported Drivers and CUDA Toolkit
# Versions" in NVIDIA's Data Center Drivers documentation, read 2026-12-07; the sources and the
# quoted lines are in roles/nvidia_driver/README.md). LTSB = long-term support branch, PB =
# production branch, NFB = new feature branch. Only entries whose end of life was read there are
# listed; an unlisted branch reports "unknown" and passes.
#   535: the R615 page, "R535 ... Long Term Support Branch ... June 2026".
#   550: Debian 13's packaged branch. No page gives it a month of its own: the R580 page (last
#        updated Aug 04, 2025) lists it among "All other previous driver branches not listed ...
#        are end of life", so 2025-08 is the latest month it can have ended in.
#   580: the R620 page says June 2028; the R580 page said August 2028 (this table's value until
#        2026-12). The newer page and the earlier month win: a fleet is told two months sooner.
#   595: the R620 page, Production Branch, March 2027.
#   610: the R615 page, New Feature Branch, August 2026.
#   620: the R620 page, Long Term Support Branch, September 2029.
BRANCH_LIFECYCLE: dict[str, dict[str, str]] = {
    "535": {"kind": "LTSB", "end_of_life": "2026-06"},
    "550": {"kind": "PB", "end_of_life": "2025-08"},
    "580": {"kind": "LTSB", "end_of_life": "2028-06"},
    "595": {"kind": "PB", "end_of_life": "2027-03"},
    "610": {"kind": "NFB", "end_of_life": "2026-08"},
    "620": {"kind": "LTSB", "end_of_life": "2029-09"},
}
# The branch the policy points a fleet at (the role's default on Ubuntu and RHEL).
POLICY_BRANCH = "580"
# The branch each Debian release packages in non-free (nvidia-driver, nvidia-kernel-dkms):
# bookworm 535.261.03, trixie 550.163.01 (Debian's Packages indexes, read 2026-12-07).
DEBIAN_PACKAGED_BRANCH: dict[str, str] = {"12": "535", "13": "550"}


def supported_branches(today: str) -> list[str]:
    """The listed LTSB and PB branches not past their end of life on ``today``."""
    return sorted(
        b
        for b, e in BRANCH_LIFECYCLE.items()
        if e["kind"] in ("LTSB", "PB") and str(today)[:7] <= e["end_of_life"]
    )


def branch_policy(
    branch: str,
    today: str,
    distribution: str = "",
    distribution_major: str = "",
    source: str = "distribution",
) -> dict[str, Any]:
    """Lifecycle of a driver branch on ``today`` (YYYY-MM or YYYY-MM-DD): kind, end of life,
    whether it has passed, and a message naming the way out. On Debian with the distribution's
    own packages (``source`` "distribution"), a branch past its end of life that is the one the
    release packages is named as such, with NVIDIA's CUDA repository as the way out."""
    if not re.match(r"^\d{3}$", str(branch)):
        raise NvidiaPlanError(
            f"nvidia_driver_branch must be three digits such as '580', got {branch!r}"
        )
    supported = ", ".join(
        f"{b} ({BRANCH_LIFECYCLE[b]['kind']} until {BRANCH_LIFECYCLE[b]['end_of_life']})"
        for b in supported_branches(today)
    )
    entry = BRANCH_LIFECYCLE.get(str(branch))
    if entry is None:
        return {
            "branch": branch, "kind": "unknown", "end_of_life": "", "expired": False,
            "message": (
                f"branch {branch}: no lifecycle recorded; the role's policy is LTSB "
                f"{POLICY_BRANCH} (supported today: {supported})"
            ),
        }  # fmt: skip
    expired = str(today)[:7] > entry["end_of_life"]
    message = f"branch {branch} ({entry['kind']}) reaches end of life in {entry['end_of_life']}"
    if expired:
        head = (
            f"branch {branch} ({entry['kind']}) reached end of life in {entry['end_of_life']}: "
            f"no more security fixes"
        )
        packaged = DEBIAN_PACKAGED_BRANCH.get(str(distribution_major), "")
        if distribution == "Debian" and source == "distribution" and str(branch) == packaged:
            message = (
                f"{head}. It is the branch Debian {distribution_major} packages (non-free "
                f"nvidia-driver {branch}.x), so Debian's own packages cannot give this host a "
                f"supported driver. Take one from NVIDIA's CUDA repository: "
                f'nvidia_driver_debian_source: cuda_repo with nvidia_driver_branch: "{POLICY_BRANCH}" '
                f"(supported today: {supported}) and nvidia_driver_cuda_keyring_sha256; or keep "
                f"Debian's {branch} knowingly with nvidia_driver_allow_eol_branch: true"
            )
        else:
            message = (
                f'{head}; move to a supported branch (nvidia_driver_branch: "{POLICY_BRANCH}"; '
                f"supported today: {supported}) or keep it knowingly with "
                f"nvidia_driver_allow_eol_branch: true"
            )
    return {"branch": branch, **entry, "expired": expired, "message": message}
