"""Every filter name of the collection is defined once (a second definition silently replaces
the first: Ansible loads the filter files one after the other)."""

from __future__ import annotations

import importlib
from collections import Counter

from helpers import REPO

FILTERS = (
    REPO / "collections" / "ansible_collections" / "tfs_fleet" / "common" / "plugins" / "filter"
)


def test_no_filter_name_is_defined_twice() -> None:
    names: Counter[str] = Counter()
    for path in sorted(FILTERS.glob("*.py")):
        module = importlib.import_module(
            f"ansible_collections.tfs_fleet.common.plugins.filter.{path.stem}"
        )
        names.update(list(module.FilterModule().filters()))
    assert [n for n, c in names.items() if c > 1] == []
