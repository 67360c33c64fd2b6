"""Every role documents its defaults twice, in sync: README table and meta/argument_specs.yml."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from helpers import REPO

ROLES = sorted(p.parent.parent.name for p in REPO.glob("roles/*/defaults/main.yml"))


def readme_table(role: str) -> dict[str, str]:
    text = (REPO / "roles" / role / "README.md").read_text()
    cell = r"((?:\\\||[^|])*?)"  # a table cell; `\|` is an escaped pipe inside it
    rows = re.findall(rf"^\|\s*`([a-z0-9_]+)`\s*\|\s*{cell}\s*\|", text, flags=re.MULTILINE)
    return dict(rows)


def spec_options(role: str) -> dict[str, Any]:
    spec = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return spec["argument_specs"]["main"]["options"]


@pytest.mark.parametrize("role", ROLES)
def test_defaults_specs_and_readme_agree(role: str) -> None:
    defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text()) or {}
    options = spec_options(role)
    table = readme_table(role)
    assert set(defaults) == set(options), "defaults/main.yml vs meta/argument_specs.yml"
    assert set(defaults) == set(table), "defaults/main.yml vs README table"
    for name, value in defaults.items():
        assert options[name].get("default") == value, f"{name}: argument_specs default"
        shown = table[name].strip("`").replace("\\|", "|")
        if isinstance(value, str) and "{{" in value:  # a template: compare the text
            assert shown == value, f"{name}: README default {shown!r}"
            continue
        assert yaml.safe_load(shown) == value or shown == str(value), (
            f"{name}: README default {shown!r}"
        )


def test_there_are_roles() -> None:
    assert "docker" in ROLES


@pytest.mark.parametrize("role", ROLES)
def test_internal_variables_are_prefixed(role: str) -> None:
    for path in (REPO / "roles" / role / "vars").glob("*.yml"):
        for name in yaml.safe_load(path.read_text()) or {}:
            assert name.startswith(f"_{role}_"), f"{path}: {name} lacks the _{role}_ prefix"
