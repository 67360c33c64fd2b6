"""The preflight play validates every role's variables before any host changes."""

from __future__ import annotations

import yaml

from helpers import REPO


def test_preflight_lists_every_role_with_an_argument_spec() -> None:
    """Every role is checked on the hosts that run it: site.yml's on the serving hosts, the
    others on their group's hosts."""
    play = yaml.safe_load((REPO / "playbooks/preflight.yml").read_text())[0]
    listed = set(play["vars"]["_preflight_roles"]).union(
        *play["vars"]["_preflight_group_roles"].values()
    )
    roles = {p.parent.parent.name for p in REPO.glob("roles/*/meta/argument_specs.yml")}
    assert listed == roles


def test_site_runs_preflight_first() -> None:
    site = yaml.safe_load((REPO / "site.yml").read_text())
    assert site[0]["ansible.builtin.import_playbook"] == "playbooks/preflight.yml"
