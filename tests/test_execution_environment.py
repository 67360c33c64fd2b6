"""execution-environment.yml (AWX / AAP) renders with ansible-builder, and its Python list covers
what the controller side imports: `ansible-builder create` writes the build context (no
container engine needed), which must carry the collection, requirements/ee.txt and the system
packages; requirements/ee.txt must name every third-party import of the collection's plugins and
of the scripts the roles run on the controller, at the lock's pins."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import yaml

from helpers import BIN, REPO

COLLECTION = REPO / "collections" / "ansible_collections" / "tfs_fleet" / "common"
EE_FILE = REPO / "execution-environment.yml"
EE_REQUIREMENTS = REPO / "requirements" / "ee.txt"
# What the roles run on the controller with the playbook's python (tfserving_verify,
# tfserving_rollout): their imports are followed through src/.
CONTROLLER_SCRIPTS = [REPO / "scripts" / "smoke_test.py", REPO / "scripts" / "rollout_report.py"]
LOCAL_PACKAGES = {"tfs_fleet", "tfs_wire"}
NOT_THIRD_PARTY = {"ansible", "ansible_collections", *LOCAL_PACKAGES}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[canonical(name)] = version
    return out


def top_imports(path: Path) -> set[str]:
    """Absolute imports of one file, as dotted names (``from a.b import c``: a.b and a.b.c)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def third_party(names: set[str]) -> set[str]:
    tops = {name.split(".")[0] for name in names}
    return {t for t in tops if t not in sys.stdlib_module_names and t not in NOT_THIRD_PARTY}


def plugin_imports() -> set[str]:
    return third_party(
        {name for path in (COLLECTION / "plugins").rglob("*.py") for name in top_imports(path)}
    )


def controller_script_imports() -> set[str]:
    """Third-party imports reachable from CONTROLLER_SCRIPTS through src/ (module level and
    function level alike: a function the script calls may import)."""
    seen: set[Path] = set()
    todo = list(CONTROLLER_SCRIPTS)
    found: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        names = top_imports(path)
        found |= third_party(names)
        for name in names:
            if name.split(".")[0] in LOCAL_PACKAGES:
                module = REPO / "src" / Path(*name.split("."))
                for candidate in (module.with_suffix(".py"), module / "__init__.py"):
                    if candidate.is_file():
                        todo.append(candidate)
    return found


def distribution(import_name: str) -> set[str]:
    dists = importlib.metadata.packages_distributions().get(import_name)
    assert dists, f"{import_name} is imported but no installed distribution provides it"
    return {canonical(d) for d in dists}


def test_ee_requirements_name_every_third_party_import_at_the_lock_pins() -> None:
    listed = pins(EE_REQUIREMENTS)
    imports = plugin_imports()
    assert "yaml" in imports, "the preflight action's YAML import is no longer seen"
    for name in sorted(imports | controller_script_imports()):
        assert distribution(name) & set(listed), f"{name}: not in {EE_REQUIREMENTS.name}"
    # tfs_fleet.protos imports the generated modules by name (not seen by ast): they live in
    # the tensorflow-cpu wheel and tensorflow-serving-api (installed without deps in the EE).
    assert {"tensorflow-cpu", "protobuf"} <= set(listed)
    lock = pins(REPO / "requirements" / "controller.lock")
    for name, version in listed.items():
        assert lock.get(name) == version, f"{name}=={version} but the lock pins {lock.get(name)}"
    for tool in ("ansible-core", "ansible-runner"):
        assert f"{tool}=={lock[tool]}" in EE_FILE.read_text(), f"{tool} not at the lock's pin"
    assert f"tensorflow-serving-api=={lock['tensorflow-serving-api']}" in EE_FILE.read_text()


def test_ee_base_image_is_a_local_tag_overridable_by_build_arg() -> None:
    ee = yaml.safe_load(EE_FILE.read_text())
    assert ee["version"] == 3
    name = ee["images"]["base_image"]["name"]
    first = name.split("/")[0]
    assert first == "localhost", f"{name}: the default must be a local tag, not a registry"


def test_ansible_builder_create_renders_the_context(tmp_path: Path) -> None:
    context = tmp_path / "context"
    proc = subprocess.run(
        [str(BIN / "ansible-builder"), "create", "--file", str(EE_FILE),
         "--context", str(context), "--output-filename", "Containerfile"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = (context / "Containerfile").read_text()
    build = context / "_build"

    # Base image: a build arg with the local default; nothing from Galaxy.
    assert 'ARG EE_BASE_IMAGE="localhost/tfs-fleet-ee-base:latest"' in containerfile
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile
    assert 'ARG ANSIBLE_GALAXY_CLI_COLLECTION_OPTS="--offline"' in containerfile
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS" in containerfile

    # The collection: requirements.yml names the copied directory, which holds every plugin.
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())
    (entry,) = galaxy["collections"]
    assert entry["type"] == "dir"
    copied = build / entry["name"]
    assert yaml.safe_load((copied / "galaxy.yml").read_text())["name"] == "common"
    source = {p.relative_to(COLLECTION) for p in (COLLECTION / "plugins").rglob("*.py")}
    assert source <= {p.relative_to(copied) for p in (copied / "plugins").rglob("*.py")}

    # Python: requirements/ee.txt as the user requirements, introspected in the builder stage.
    assert pins(build / "requirements.txt") == pins(EE_REQUIREMENTS)
    assert "COPY _build/requirements.txt requirements.txt" in containerfile
    assert "--user-pip=requirements.txt" in containerfile
    assert "ansible-core==" in containerfile and "ansible-runner==" in containerfile
    assert re.search(
        r"pip install --no-cache-dir --no-deps tensorflow-serving-api==", containerfile
    )

    # System packages through bindep.
    bindep = (build / "bindep.txt").read_text()
    for package in ("rsync", "openssh-clients [platform:rpm]", "openssh-client [platform:dpkg]"):
        assert package in bindep, bindep
    assert "--user-bindep=bindep.txt" in containerfile
    assert "install-from-bindep" in containerfile
