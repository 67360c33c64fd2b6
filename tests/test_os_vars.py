"""Every supported OS rendered from the roles' own data (vars/, defaults/, templates and the driver
plan), without a host: Debian 12 and 13 (also installed for real: molecule, the sandbox and
tests/deb13) and Ubuntu 22.04, 24.04 and 26.04 (no Ubuntu archive is reachable here, so these
renders are all that runs for them). The Debian package names are checked against Debian's own
Packages indexes (tests/data/debian_archive.json, from scripts/debian_archive_snapshot.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible_collections.tfs_fleet.common.plugins.module_utils import nvidia_hardware as nh

REPO = Path(__file__).resolve().parents[1]
ROLES = REPO / "roles"
ARCHIVE = json.loads((REPO / "tests/data/debian_archive.json").read_text())

# (distribution, major, version, release): the facts the roles key their data on.
OSES = {
    "Debian-12": ("Debian", "12", "12", "bookworm"),
    "Debian-13": ("Debian", "13", "13", "trixie"),
    "Ubuntu-22": ("Ubuntu", "22", "22.04", "jammy"),
    "Ubuntu-24": ("Ubuntu", "24", "24.04", "noble"),
    "Ubuntu-26": ("Ubuntu", "26", "26.04", "resolute"),
}
SUITE = {"Debian-12": "bookworm", "Debian-13": "trixie"}


def facts(key: str) -> dict[str, Any]:
    distribution, major, version, release = OSES[key]
    return {
        "distribution": distribution, "distribution_major_version": major,
        "distribution_version": version, "distribution_release": release,
        "os_family": "Debian", "architecture": "x86_64", "kernel": "6.12.57+deb13-amd64",
        "system": "Linux",
    }  # fmt: skip


def trusted(value: Any) -> Any:
    """Variables as Ansible trusts the role's own files: every string may be a template."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [trusted(v) for v in value]
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    return value


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) or {}
    assert isinstance(data, dict), path
    return {k: trusted(v) for k, v in data.items()}


def first_found(role: str, names: list[str]) -> Path | None:
    """The OS vars file the role's tasks would load; None for a role without per-OS data (the
    toolkit: one generic repository for every Debian-derived OS)."""
    for name in names:
        path = ROLES / role / "vars" / name
        if path.exists():
            return path
    if role == "nvidia_container_toolkit":
        return None
    raise AssertionError(f"{role}: none of {names} in vars/")


def role_vars(role: str, key: str, extra: dict[str, Any] | None = None) -> Templar:
    """A templar over the role's defaults, vars/main.yml and its OS vars file, chosen as the
    role's own tasks choose it (first_found: <Distribution>-<major>, <Distribution>, os family)."""
    distribution, major = OSES[key][:2]
    variables: dict[str, Any] = {}
    defaults = ROLES / role / "defaults/main.yml"
    if defaults.exists():
        variables |= load(defaults)
    main = ROLES / role / "vars/main.yml"
    if main.exists():
        variables |= load(main)
    os_file = first_found(
        role, [f"{distribution}-{major}.yml", f"{distribution}.yml", "Debian.yml"]
    )
    if os_file is not None:
        variables |= load(os_file)
    variables |= extra or {}
    variables["ansible_facts"] = facts(key)
    return Templar(loader=DataLoader(), variables=variables)


def render(templar: Templar, name: str) -> Any:
    return templar.template(templar.available_variables[name])


def render_file(templar: Templar, path: Path) -> str:
    return str(templar.template(trust_as_template(path.read_text())))


# ---- docker


@pytest.mark.parametrize("key", sorted(OSES))
def test_docker_role_supports_and_renders(key: str) -> None:
    templar = role_vars("docker", key)
    assert key in render(templar, "_docker_supported")
    names = render(templar, "_docker_install_names")
    expected = ["docker.io", "docker-cli"] if key == "Debian-13" else ["docker.io"]
    assert names == expected
    pinned = role_vars("docker", key, {"docker_version": "26.1.5+dfsg1-9+deb13u1+b1"})
    assert all(
        n.endswith("=26.1.5+dfsg1-9+deb13u1+b1") for n in render(pinned, "_docker_install_names")
    )


@pytest.mark.parametrize("key", sorted(OSES))
def test_docker_ce_repository_path(key: str) -> None:
    templar = role_vars(
        "docker", key, {"docker_install_source": "docker_ce", "ansible_managed": "x"}
    )
    templar.available_variables = {
        **templar.available_variables,
        "_docker_ce_repo_url": render(templar, "_docker_ce_repo_url"),
        "_docker_ce_suite": render(templar, "_docker_ce_suite"),
    }
    source = render_file(templar, ROLES / "docker/templates/docker.sources.j2")
    distribution, _, _, release = OSES[key]
    assert f"URIs: https://download.docker.com/linux/{distribution.lower()}\n" in source
    assert f"Suites: {release}\n" in source
    assert "Architectures: amd64\n" in source
    assert render(templar, "_docker_ce_packages")[:3] == [
        "docker-ce",
        "docker-ce-cli",
        "containerd.io",
    ]
    conflicts = render(templar, "_docker_conflicting_packages")["docker_ce"]
    assert "docker.io" in conflicts
    if key == "Debian-13":
        assert "docker-cli" in conflicts  # trixie's split CLI goes too


# ---- NVIDIA driver and toolkit


@pytest.mark.parametrize(
    ("key", "default_branch", "repo_distro"),
    [("Debian-12", "535", "debian12"), ("Debian-13", "550", "debian13"),
     ("Ubuntu-22", "580", "ubuntu2204"), ("Ubuntu-24", "580", "ubuntu2404"),
     ("Ubuntu-26", "580", "ubuntu2604")],
)  # fmt: skip
def test_nvidia_driver_default_branch_and_repository(
    key: str, default_branch: str, repo_distro: str
) -> None:
    templar = role_vars("nvidia_driver", key)
    assert key in render(templar, "_nvidia_driver_supported")
    assert render(templar, "_nvidia_driver_default_branch") == default_branch
    assert render(templar, "_nvidia_driver_source") == "distribution"
    repo = render(templar, "_nvidia_driver_cuda_repo")
    assert repo == f"https://developer.download.nvidia.com/compute/cuda/repos/{repo_distro}/x86_64"
    if key.startswith("Debian"):
        assert render(templar, "_nvidia_driver_install_tasks") == "install_debian.yml"
        cuda = role_vars("nvidia_driver", key, {"nvidia_driver_debian_source": "cuda_repo"})
        assert render(cuda, "_nvidia_driver_default_branch") == "580"
        assert render(cuda, "_nvidia_driver_source") == "cuda_repo"
        assert render(cuda, "_nvidia_driver_install_tasks") == "install_ubuntu.yml"
    else:
        assert render(templar, "_nvidia_driver_install_tasks") == "install_ubuntu.yml"


@pytest.mark.parametrize("key", ["Debian-12", "Debian-13"])
def test_debians_default_branch_is_refused_today_naming_the_way_out(key: str) -> None:
    templar = role_vars("nvidia_driver", key)
    branch = render(templar, "_nvidia_driver_default_branch")
    assert nh.DEBIAN_PACKAGED_BRANCH[OSES[key][1]] == branch
    policy = nh.branch_policy(branch, "2026-12-07", "Debian", OSES[key][1])
    assert policy["expired"]
    assert "nvidia_driver_debian_source: cuda_repo" in policy["message"]


@pytest.mark.parametrize("key", sorted(OSES))
def test_toolkit_supports_every_docker_os_with_one_generic_repository(key: str) -> None:
    templar = role_vars("nvidia_container_toolkit", key)
    assert key in render(templar, "_nvidia_container_toolkit_supported")
    assert render(templar, "nvidia_container_toolkit_version") == "1.20.0-1"
    assert render(templar, "nvidia_container_toolkit_repo_url") == (
        "https://nvidia.github.io/libnvidia-container/stable"
    )


def test_the_toolkit_and_docker_roles_support_the_same_oses() -> None:
    for key in OSES:
        docker = set(render(role_vars("docker", key), "_docker_supported"))
        toolkit = set(
            render(
                role_vars("nvidia_container_toolkit", key), "_nvidia_container_toolkit_supported"
            )
        )
        assert docker == toolkit


# ---- the Debian archive: every package a role names exists in the release it is named for


def debian_packages(key: str) -> dict[str, list[str]]:
    """{role: packages} the roles install from Debian on this release (their data, rendered)."""
    docker = role_vars("docker", key)
    driver = role_vars("nvidia_driver", key)
    branch = render(driver, "_nvidia_driver_default_branch")
    plans = [
        nh.driver_plan("Debian", branch, flavor=f, kernel_module=m)
        for f in ("full", "headless") for m in ("open", "proprietary")
    ]  # fmt: skip
    return {
        "docker": [
            *render(docker, "_docker_install_names"),
            *render(docker, "_docker_python_packages"),
        ],
        "nvidia_driver": sorted({p for plan in plans for p in plan["packages"]}),
        "tfserving_lb": render(role_vars("tfserving_lb", key), "_tfserving_lb_packages"),
        "tfserving_registry": render(
            role_vars("tfserving_registry", key), "_tfserving_registry_packages"
        ),
        "tfserving_monitoring": ["prometheus", "prometheus-node-exporter"],
        "tfserving_models": ["rsync"],
    }  # fmt: skip


@pytest.mark.parametrize("key", ["Debian-12", "Debian-13"])
def test_debian_package_names_exist_in_the_archive(key: str) -> None:
    suite = ARCHIVE[SUITE[key]]
    for role, names in debian_packages(key).items():
        missing = [n for n in names if n not in suite]
        assert not missing, f"{role} names {missing}, which {SUITE[key]} does not have"


def test_monitoring_packages_are_the_ones_its_tasks_install() -> None:
    tasks = (ROLES / "tfserving_monitoring/tasks/main.yml").read_text()
    tasks += (ROLES / "tfserving_monitoring/tasks/exporters.yml").read_text()
    assert re.search(r"name: prometheus\n", tasks)
    assert "prometheus-node-exporter" in tasks


@pytest.mark.parametrize(
    ("suite", "package", "prefix", "component"),
    [("trixie", "docker.io", "26.1.5", "main"), ("trixie", "docker-registry", "2.8.3", "main"),
     ("trixie", "prometheus", "2.53.", "main"), ("trixie", "haproxy", "3.0.", "main"),
     ("trixie", "python3", "3.13.", "main"), ("trixie", "nvidia-driver", "550.163.01", "non-free"),
     ("trixie", "nvidia-kernel-dkms", "550.163.01", "non-free"),
     # Not non-free: the open modules and the persistence daemon are in contrib.
     ("trixie", "nvidia-open-kernel-dkms", "550.163.01", "contrib"),
     ("trixie", "nvidia-persistenced", "550.", "contrib"),
     ("bookworm", "nvidia-driver", "535.", "non-free"),
     ("bookworm", "docker.io", "20.10.", "main")],
)  # fmt: skip
def test_what_the_issue_says_debian_ships(
    suite: str, package: str, prefix: str, component: str
) -> None:
    entry = ARCHIVE[suite][package]
    assert entry["version"].startswith(prefix)
    assert entry["component"] == component


def test_the_nonfree_source_enables_contrib_too() -> None:
    # nvidia-open-kernel-dkms and nvidia-persistenced live in contrib (see above).
    source = (ROLES / "nvidia_driver/templates/debian-nonfree.sources.j2").read_text()
    assert "Components: contrib non-free non-free-firmware" in source


def test_snapshot_lists_what_the_roles_name() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "snap", REPO / "scripts/debian_archive_snapshot.py"
    )
    assert spec and spec.loader
    snap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(snap)
    named = {n for key in SUITE for names in debian_packages(key).values() for n in names}
    assert named <= set(snap.PACKAGES)
