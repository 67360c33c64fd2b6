# Copyright: tfs-fleet developers
# Apache License 2.0
"""Action plugin of tfs_fleet.common.lb_drain_plan (runs on the controller only)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.tfs_fleet.common.plugins.module_utils.lb_drain import ACTIONS, plan

ARGUMENT_SPEC: dict[str, Any] = {
    "action": {"type": "str", "required": True, "choices": list(ACTIONS)},
    "servers": {"type": "list", "elements": "dict", "required": True},
    "backends": {"type": "list", "elements": "str", "required": True},
    "admin": {"type": "list", "elements": "dict", "default": []},
    "records": {"type": "dict", "default": {}},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        try:
            _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        except AnsibleActionFail as err:
            return {**result, "failed": True, "msg": f"lb_drain_plan: {err}"}
        try:
            found = plan(
                args["action"], args["servers"], args["backends"], args["admin"], args["records"]
            )
        except (KeyError, ValueError) as err:
            return {**result, "failed": True, "changed": False, "msg": f"lb_drain_plan: {err}"}
        warnings = found.pop("warnings")
        result.update(changed=False, **found)
        if warnings:
            result["warnings"] = warnings
        result["msg"] = (
            f"{len(found['undrain'])} server(s) to put back, "
            f"{sum(len(k['servers']) for k in found['kept'])} left drained"
        )
        return result
