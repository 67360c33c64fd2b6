"""docs/ports.md, the one table of every port the fleet listens on, stays complete: every port
variable of the roles (an argument spec option ending in _port) is in it, with its default."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from helpers import REPO

DOC = REPO / "docs" / "ports.md"


def port_options() -> dict[str, Any]:
    """Every option ending in _port of every entry point of roles/*/meta/argument_specs.yml,
    with its default."""
    found: dict[str, Any] = {}
    for path in sorted(REPO.glob("roles/*/meta/argument_specs.yml")):
        specs = yaml.safe_load(path.read_text())["argument_specs"]
        for entry in specs.values():
            for name, spec in (entry.get("options") or {}).items():
                if name.endswith("_port"):
                    found[name] = (spec or {}).get("default")
    return found


def table_rows() -> list[str]:
    return [line for line in DOC.read_text().splitlines() if line.startswith("| ")]


def test_there_are_port_variables() -> None:
    assert {"tfserving_grpc_port", "tfserving_monitoring_node_exporter_port"} <= set(port_options())


@pytest.mark.parametrize("name", sorted(port_options()))
def test_every_port_variable_is_in_the_table_with_its_default(name: str) -> None:
    rows = [row for row in table_rows() if f"`{name}`" in row]
    assert rows, f"{name} is not in the table of docs/ports.md"
    default = port_options()[name]
    if isinstance(default, int):
        assert any(re.search(rf"\b{default}\b", row) for row in rows), (
            f"{name}: no row of docs/ports.md shows its default {default}"
        )


def test_every_listen_address_variable_is_in_the_table() -> None:
    """The address variables of the listeners (bind/listen/stats/metrics/node exporter)."""
    names = set()
    for path in REPO.glob("roles/*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(path.read_text())["argument_specs"].values():
            names |= {
                n
                for n in entry.get("options") or {}
                if re.search(r"_(bind|listen|stats|metrics|node_exporter)_address$", n)
            }
    assert "tfserving_monitoring_node_exporter_address" in names
    text = DOC.read_text()
    assert not [n for n in sorted(names) if f"`{n}`" not in text]


def test_the_readme_links_the_table() -> None:
    assert "(docs/ports.md)" in (REPO / "README.md").read_text()
