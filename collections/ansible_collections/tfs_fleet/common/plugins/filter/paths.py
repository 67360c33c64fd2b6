# Copyright: tfs-fleet developers
# Apache License 2.0
"""Filters on paths of the controller."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from typing import Any

DOCUMENTATION = r"""
name: missing_executables
short_description: The names that are not executables on the controller's PATH
description:
  - Returns the names in a list (or one name) that are not executables on the controller's
    PATH (filters run on the controller), in their order and without repeats, for preflight
    checks.
positional: path
options:
  _input:
    description: The program names (a list, or one name).
    type: list
    required: true
  path:
    description: A PATH to search instead of the controller's.
    type: str
"""


def missing_executables(names: Iterable[str], path: str | None = None) -> list[str]:
    """The names that are not executables on PATH (of the controller: filters run there)."""
    if isinstance(names, str):
        names = [names]
    return [name for name in dict.fromkeys(names) if shutil.which(name, path=path) is None]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"missing_executables": missing_executables}
