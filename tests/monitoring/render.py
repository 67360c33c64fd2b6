"""Render the tfserving_monitoring role's templates as the role does (its defaults, the rules
template's << >> delimiters), for promtool and the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "tfserving_monitoring"


def defaults(**overrides: Any) -> dict[str, Any]:
    values = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    return {**values, "ansible_managed": "Ansible managed (test)", **overrides}


def render_rules(**overrides: Any) -> str:
    env = jinja2.Environment(
        variable_start_string="<<",
        variable_end_string=">>",
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    template = env.from_string((ROLE / "templates" / "tfs_fleet.rules.yml.j2").read_text())
    return template.render(**defaults(**overrides))
