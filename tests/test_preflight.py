"""The preflight play validates every role's variables before any host changes."""

from __future__ import annotations

import yaml

from helpers import REPO


def test_preflight_lists_every_role_with_an_argument_spec() -> None:
    play = yaml.safe_load((REPO / "playbooks/preflight.yml").read_text())[0]
    listed = set(play["vars"]["_preflight_roles"])
    roles = {p.parent.parent.name for p in REPO.glob("roles/*/meta/argument_specs.yml")}
    assert listed == roles


def test_site_runs_preflight_first() -> None:
    site = yaml.safe_load((REPO / "site.yml").read_text())
    assert site[0]["ansible.builtin.import_playbook"] == "playbooks/preflight.yml"
