"""requirements.yml names the collections at the versions the pinned ansible package bundles."""

from __future__ import annotations

import json
import re
from pathlib import Path

import ansible_collections
import yaml

from helpers import REPO


def bundled_version(fqcn: str) -> str:
    namespace, name = fqcn.split(".")
    for root in ansible_collections.__path__:
        manifest = Path(root) / namespace / name / "MANIFEST.json"
        if manifest.exists():
            return json.loads(manifest.read_text())["collection_info"]["version"]
    raise AssertionError(f"{fqcn} is not bundled in the installed ansible package")


def test_requirements_yml_matches_bundled_collections() -> None:
    wanted = yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]
    assert wanted, "requirements.yml lists no collections"
    for entry in wanted:
        assert entry["version"] == bundled_version(entry["name"]), entry["name"]


def test_every_used_collection_is_listed() -> None:
    listed = {
        c["name"] for c in yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]
    }
    used: set[str] = set()
    patterns = ["roles/**/*.yml", "playbooks/*.yml", "molecule/**/*.yml", "inventories/**/*.yml"]
    for path in [*(p for pattern in patterns for p in REPO.glob(pattern)), REPO / "site.yml"]:
        for match in re.finditer(r"\b([a-z_]+\.[a-z_]+)\.[a-z_]+(?=:|\b)", path.read_text()):
            if match.group(1) in {"community.docker", "community.general", "ansible.posix"}:
                used.add(match.group(1))
    assert used <= listed, f"used but not in requirements.yml: {sorted(used - listed)}"


def test_lock_pins_the_ansible_package_requirements_yml_was_checked_against() -> None:
    lock = (REPO / "requirements/controller.lock").read_text()
    pins = dict(line.split("==") for line in lock.splitlines() if "==" in line)
    import importlib.metadata as md

    assert pins["ansible"] == md.version("ansible")
    assert pins["ansible-core"] == md.version("ansible-core")
