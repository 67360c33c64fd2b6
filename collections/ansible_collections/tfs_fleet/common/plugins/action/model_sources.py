# Copyright: tfs-fleet developers
# Apache License 2.0
"""Action plugin of tfs_fleet.common.model_sources (runs on the controller only)."""

from __future__ import annotations

from typing import Any

from ansible_collections.tfs_fleet.common.plugins.module_utils.model_sources import (
    SourceError,
    scan_models,
)
from ansible_collections.tfs_fleet.common.plugins.plugin_utils.controller_action import (
    ActionError,
    ControllerAction,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "export_base": {"type": "path", "required": True},
    "models": {"type": "list", "elements": "dict", "required": True},
    "cache_dir": {"type": "path"},
    "checksums": {"type": "bool", "default": True},
    "default_keep": {"type": "int"},
}


class ActionModule(ControllerAction):
    NAME = "model_sources"
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def compute(self, args: dict[str, Any]) -> dict[str, Any]:
        for index, model in enumerate(args["models"]):
            if "name" not in model:
                raise ActionError(f"models[{index}] has no name")
        try:
            models, stats, warnings = scan_models(
                args["export_base"],
                args["models"],
                args["cache_dir"],
                args["checksums"],
                default_keep=args["default_keep"],
            )
        except SourceError as err:
            raise ActionError(str(err)) from err
        found = sum(len(m["versions"]) for m in models.values())
        msg = f"{found} version(s) of {len(models)} model(s)" + (
            f"; {stats['hashed_versions']} wanted: {stats['hashed_files']} file(s) hashed "
            f"({stats['hashed_bytes']} bytes), {stats['cached_files']} from the cache"
            if args["checksums"]
            else ""
        )
        return {"models": models, "stats": stats, "warnings": warnings, "msg": msg}
