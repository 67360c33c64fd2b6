"""Every filter and module of the collection documents itself for ansible-doc: its
DOCUMENTATION parses as YAML and names a plugin the file really provides."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import yaml

from helpers import REPO

PLUGINS = REPO / "collections/ansible_collections/tfs_fleet/common/plugins"
FILTER_FILES = sorted((PLUGINS / "filter").glob("*.py"))
MODULE_FILES = sorted((PLUGINS / "modules").glob("*.py"))


def documentation(path: Path) -> dict:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "DOCUMENTATION" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            doc = yaml.safe_load(value)
            assert isinstance(doc, dict), f"{path.name}: DOCUMENTATION is not a mapping"
            return doc
    raise AssertionError(f"{path.name} has no DOCUMENTATION: ansible-doc cannot show it")


def filter_names(path: Path) -> set[str]:
    """The names FilterModule().filters() gives Ansible."""
    module = importlib.import_module(
        f"ansible_collections.tfs_fleet.common.plugins.filter.{path.stem}"
    )
    return set(module.FilterModule().filters())


def test_there_are_plugins() -> None:
    assert len(FILTER_FILES) >= 5 and len(MODULE_FILES) >= 3


@pytest.mark.parametrize("path", FILTER_FILES, ids=lambda p: p.name)
def test_filter_file_documents_a_filter_it_provides(path: Path) -> None:
    doc = documentation(path)
    assert doc["name"] in filter_names(path), f"{path.name}: documents {doc['name']!r}"
    assert doc.get("short_description") and doc.get("description")
    assert "_input" in doc.get("options", {}), f"{path.name}: the input is not documented"


@pytest.mark.parametrize("path", MODULE_FILES, ids=lambda p: p.name)
def test_module_documents_itself(path: Path) -> None:
    doc = documentation(path)
    assert doc["module"] == path.stem
    assert doc.get("short_description") and doc.get("options") is not None
