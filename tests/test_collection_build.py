"""The project-local collection packages and installs the way AWX / AAP would take it: built by
`ansible-galaxy collection build` from its galaxy.yml, installed offline from the tarball into a
collections path of its own, and documented by ansible-doc from there (nothing of the checkout on
the path). The expected files are read from the source tree, not listed here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from helpers import BIN, REPO

pytestmark = pytest.mark.slow

COLLECTION = REPO / "collections" / "ansible_collections" / "tfs_fleet" / "common"
# What the roles call and import: every plugin type the collection ships.
PLUGIN_DIRS = ("modules", "filter", "module_utils", "action", "lookup", "doc_fragments")


def source_plugins() -> set[str]:
    """plugins/<type>/<name>.py for every plugin file in the checkout (no caches)."""
    return {
        path.relative_to(COLLECTION).as_posix()
        for kind in PLUGIN_DIRS
        for path in (COLLECTION / "plugins" / kind).glob("*.py")
        if path.name != "__init__.py"
    }


def isolated_env(collections_path: Path, cfg: Path) -> dict[str, str]:
    """Only collections_path holds tfs_fleet.common: an empty ansible.cfg (not the project's,
    which points at the checkout) and no scan of the virtualenv beyond the bundled collections."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(cfg),
        ANSIBLE_COLLECTIONS_PATH=str(collections_path),
        ANSIBLE_HOME=str(cfg.parent / "ansible-home"),
        ANSIBLE_NOCOLOR="1",
    )
    return env


def run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=180, check=False
    )
    assert proc.returncode == 0, f"{argv} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
    return proc


def test_collection_builds_installs_offline_and_documents(tmp_path: Path) -> None:
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"]) == ("tfs_fleet", "common")
    assert galaxy["dependencies"] == {}, "the collection depends on nothing outside itself"
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    installed = tmp_path / "collections"
    env = isolated_env(installed, cfg)

    # Built from a copy with caches in it: build_ignore must keep them out of the tarball.
    source = tmp_path / "src" / "common"
    shutil.copytree(COLLECTION, source, ignore=shutil.ignore_patterns("*.tar.gz"))
    (source / "plugins" / "filter" / "__pycache__").mkdir(exist_ok=True)
    (source / "plugins" / "filter" / "__pycache__" / "gpu.cpython-311.pyc").write_bytes(b"x")
    (source / ".pytest_cache").mkdir(exist_ok=True)
    run(
        [str(BIN / "ansible-galaxy"), "collection", "build", str(source),
         "--output-path", str(tmp_path / "dist")],
        env, tmp_path,
    )  # fmt: skip
    tarball = tmp_path / "dist" / f"tfs_fleet-common-{galaxy['version']}.tar.gz"
    assert tarball.is_file(), sorted(p.name for p in (tmp_path / "dist").iterdir())

    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("MANIFEST.json"))  # type: ignore[arg-type]
        files = json.load(tar.extractfile("FILES.json"))  # type: ignore[arg-type]
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == (
        "tfs_fleet",
        "common",
        galaxy["version"],
    )
    listed = {entry["name"] for entry in files["files"] if entry["ftype"] == "file"}
    expected = source_plugins()
    assert {p for p in expected if p.startswith(("plugins/modules/", "plugins/filter/"))}
    assert any(p.startswith("plugins/module_utils/") for p in expected)
    assert expected <= listed, f"missing from FILES.json: {sorted(expected - listed)}"
    assert expected <= names, f"missing from the tarball: {sorted(expected - names)}"
    assert "meta/runtime.yml" in listed and "README.md" in listed
    cached = sorted(
        n for n in names if "__pycache__" in n or "_cache" in n or n.endswith((".pyc", ".tar.gz"))
    )
    assert not cached, f"caches in the tarball: {cached}"

    run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "--offline",
         "-p", str(installed), str(tarball)],
        env, tmp_path,
    )  # fmt: skip
    root = installed / "ansible_collections" / "tfs_fleet" / "common"
    assert expected <= {p.relative_to(root).as_posix() for p in root.rglob("*.py")}

    modules = {Path(p).stem for p in expected if p.startswith("plugins/modules/")}
    listing = run(
        [str(BIN / "ansible-doc"), "-t", "module", "-l", "-j", "tfs_fleet.common"], env, tmp_path
    )
    assert set(json.loads(listing.stdout)) == {f"tfs_fleet.common.{m}" for m in modules}

    doc = run(
        [str(BIN / "ansible-doc"), "-t", "module", "-j", "tfs_fleet.common.docker_daemon_json"],
        env,
        tmp_path,
    )
    entry = json.loads(doc.stdout)["tfs_fleet.common.docker_daemon_json"]["doc"]
    assert Path(entry["filename"]).resolve().is_relative_to(installed.resolve()), entry["filename"]
    assert entry["short_description"] and "path" in entry["options"]
