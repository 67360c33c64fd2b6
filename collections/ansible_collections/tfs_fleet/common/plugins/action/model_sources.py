# Copyright: tfs-fleet developers
# Apache License 2.0
"""Action plugin of tfs_fleet.common.model_sources (runs on the controller only)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.tfs_fleet.common.plugins.module_utils.model_sources import (
    SourceError,
    scan_models,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "export_base": {"type": "path", "required": True},
    "models": {"type": "list", "elements": "dict", "required": True},
    "cache_dir": {"type": "path"},
    "checksums": {"type": "bool", "default": True},
    "default_keep": {"type": "int"},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        try:
            _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        except AnsibleActionFail as err:
            return {**result, "failed": True, "msg": f"model_sources: {err}"}
        for index, model in enumerate(args["models"]):
            if "name" not in model:
                return {**result, "failed": True, "msg": f"models[{index}] has no name"}
        try:
            models, stats, warnings = scan_models(
                args["export_base"],
                args["models"],
                args["cache_dir"],
                args["checksums"],
                default_keep=args["default_keep"],
            )
        except SourceError as err:
            return {**result, "failed": True, "changed": False, "msg": str(err)}
        result.update(changed=False, models=models, stats=stats)
        if warnings:
            result["warnings"] = warnings
        found = sum(len(m["versions"]) for m in models.values())
        result["msg"] = f"{found} version(s) of {len(models)} model(s)" + (
            f"; {stats['hashed_versions']} wanted: {stats['hashed_files']} file(s) hashed "
            f"({stats['hashed_bytes']} bytes), {stats['cached_files']} from the cache"
            if args["checksums"]
            else ""
        )
        return result
