# Copyright: tfs-fleet developers
# Apache License 2.0
"""What a host-setup run would do to a serving host (issue 24, docs/live-fleet.md): the roles'
plans (found in check mode) become one decision, drain the host for the change or apply it at
full speed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: host_change_plan
short_description: Whether a host-setup change disrupts a serving host, and why
description:
  - Takes the plans of the host-setup roles (each role's C(<role>_change) fact, set by its
    C(plan) entry point in check mode) and says whether the change disrupts what the host runs,
    that is an engine restart (docker C(restart)), or a toolkit install or upgrade or a change of its
    daemon.json runtime keys (nvidia_container_toolkit C(install), C(upgrade), C(restart)), or a
    driver install, upgrade or activation (nvidia_driver C(install), C(upgrade), C(activate), after
    which its kernel modules are reloaded or the host rebooted).
  - A reload (dockerd re-reads the keys on SIGHUP), no change, or a first install of the engine
    (nothing runs yet) disrupts nothing.
  - C(drain) is true when the change disrupts and the host serves (its deployment record names
    models); such a host goes through the drained, host-by-host path.
positional: serving
options:
  _input:
    description: Role name to its plan (C(action), C(detail)); a role that did not plan is left out.
    type: dict
    required: true
  serving:
    description: Whether the host serves models now.
    type: bool
    required: true
"""

# The actions of each role's plan, and the ones that disrupt the containers a host runs.
ACTIONS: dict[str, tuple[set[str], set[str]]] = {
    "docker": ({"none", "reload", "install", "restart"}, {"restart"}),
    "nvidia_container_toolkit": (
        {"none", "skip", "install", "upgrade", "restart"},
        {"install", "upgrade", "restart"},
    ),
    # A driver install, upgrade or activation ends in a module reload or a reboot.
    "nvidia_driver": (
        {"none", "skip", "install", "upgrade", "activate"},
        {"install", "upgrade", "activate"},
    ),
}


def host_change_plan(changes: Mapping[str, Any], serving: Any) -> dict[str, Any]:
    """{drain, disrupts: [role: action (detail)], summary} of the roles' planned changes."""
    if not isinstance(changes, Mapping):
        raise AnsibleFilterError(
            f"host_change_plan: expected a dict of role plans, got {changes!r}"
        )
    disrupts, quiet = [], []
    for role, plan in sorted(changes.items()):
        if role not in ACTIONS:
            raise AnsibleFilterError(
                f"host_change_plan: no plan rules for role {role!r} (known: {', '.join(sorted(ACTIONS))})"
            )
        known, disrupting = ACTIONS[role]
        action = str((plan or {}).get("action", ""))
        if action not in known:
            raise AnsibleFilterError(
                f"host_change_plan: {role} planned {action!r}; expected one of {', '.join(sorted(known))}"
            )
        detail = str((plan or {}).get("detail", "")).strip()
        line = f"{role}: {action}" + (f" ({detail})" if detail else "")
        if action in disrupting:
            disrupts.append(line)
        elif action not in ("none", "skip"):
            quiet.append(line)
    drain = bool(disrupts) and bool(serving)
    if disrupts:
        summary = "; ".join(disrupts) + ("" if serving else " - the host serves nothing yet")
    else:
        summary = "; ".join(quiet) or "no change"
    return {"drain": drain, "disrupts": disrupts, "summary": summary}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"host_change_plan": host_change_plan}
