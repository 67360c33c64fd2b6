# Copyright: tfs-fleet developers
# Apache License 2.0
"""Action plugin of tfs_fleet.common.lb_drain_plan (runs on the controller only)."""

from __future__ import annotations

from typing import Any

from ansible_collections.tfs_fleet.common.plugins.module_utils.lb_drain import ACTIONS, plan
from ansible_collections.tfs_fleet.common.plugins.plugin_utils.controller_action import (
    ActionError,
    ControllerAction,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "action": {"type": "str", "required": True, "choices": list(ACTIONS)},
    "servers": {"type": "list", "elements": "dict", "required": True},
    "backends": {"type": "list", "elements": "str", "required": True},
    "admin": {"type": "list", "elements": "dict", "default": []},
    "records": {"type": "dict", "default": {}},
}


class ActionModule(ControllerAction):
    NAME = "lb_drain_plan"
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def compute(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            found = plan(
                args["action"], args["servers"], args["backends"], args["admin"], args["records"]
            )
        except (KeyError, ValueError) as err:
            raise ActionError(f"lb_drain_plan: {err}") from err
        found["msg"] = (
            f"{len(found['undrain'])} server(s) to put back, "
            f"{sum(len(k['servers']) for k in found['kept'])} left drained"
        )
        return found
