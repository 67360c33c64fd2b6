# Copyright: tfs-fleet developers
# Apache License 2.0
"""Filters for the tfserving_models role: which model versions a host should serve."""

from __future__ import annotations

import os
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: model_plan
short_description: Plan the model versions a host serves from what the controller exported
description:
  - Takes the C(tfserving_models_list) list and the results of a C(find) for the per-version
    manifests under the export base (one result per model, in the same order), and returns one
    entry per model with the versions wanted on the host, the pinned ones and the sha256 of each
    wanted version's manifest.
  - Fails, naming the model, the version and the export base, when a requested version was not
    exported, or when a label points at a version that is not served.
positional: found, default_keep
options:
  _input:
    description: The tfserving_models_list list.
    type: list
    required: true
  found:
    description: Registered results of ansible.builtin.find (get_checksum, sha256), one per model.
    type: list
    required: true
  default_keep:
    description: Versions kept when a model does not set C(keep).
    type: int
    required: true
"""


def _exported(result: dict[str, Any]) -> dict[int, str]:
    """Map version -> manifest sha256 from one find result (<base>/<name>/<v>/manifest)."""
    versions: dict[int, str] = {}
    for entry in result.get("files", []):
        version_dir = os.path.basename(os.path.dirname(entry["path"]))
        if version_dir.isdigit():
            versions[int(version_dir)] = entry.get("checksum", "")
    return versions


def model_plan(
    models: list[dict[str, Any]], found: list[dict[str, Any]], default_keep: int
) -> list[dict[str, Any]]:
    if len(models) != len(found):
        raise AnsibleFilterError("model_plan: one find result per model is needed")
    plan = []
    for model, result in zip(models, found, strict=True):
        name = model["name"]
        exported = _exported(result)
        keep = int(model.get("keep") or default_keep)
        if keep < 1:
            raise AnsibleFilterError(
                f"tfserving_models_list[{name}].keep must be at least 1 (got {keep})"
            )
        requested = sorted({int(v) for v in model.get("versions") or []})
        base = (
            result.get("invocation", {}).get("module_args", {}).get("paths", ["the export base"])[0]
        )
        if requested:
            missing = [v for v in requested if v not in exported]
            if missing:
                raise AnsibleFilterError(
                    f"tfserving_models_list[{name}].versions asks for {missing}, but {base} holds "
                    f"{sorted(exported) or 'no exported versions'}: export them first "
                    "(scripts/export_model.py) or fix the list"
                )
            wanted = requested
        else:
            if not exported:
                raise AnsibleFilterError(
                    f"model {name}: no exported version under {base} (each version needs its "
                    "tfs_fleet_manifest.json): run scripts/export_model.py --export-base "
                    "<tfserving_models_export_base> first"
                )
            wanted = sorted(exported)[-keep:]
        pinned = sorted({int(v) for v in model.get("pinned") or []})
        labels = {str(k): int(v) for k, v in (model.get("labels") or {}).items()}
        policy = model.get("version_policy") or "latest"
        latest_count = int(model.get("latest_count") or 1)
        for label, version in labels.items():
            if version not in wanted:
                raise AnsibleFilterError(
                    f"tfserving_models_list[{name}].labels.{label} points at version {version}, "
                    f"which is not among the served versions {wanted}"
                )
        if labels and policy == "latest" and latest_count < len(set(labels.values())):
            raise AnsibleFilterError(
                f"tfserving_models_list[{name}]: labels {labels} need their versions loaded; use "
                "version_policy: all or specific (or raise latest_count)"
            )
        plan.append(
            {
                "name": name,
                "wanted": wanted,
                "pinned": pinned,
                "keep": keep,
                "manifests": {str(v): exported.get(v, "") for v in wanted},
                "version_policy": policy,
                "latest_count": latest_count,
                "labels": labels,
            }
        )
    return plan


def needs_model_config(plan: list[dict[str, Any]], force: bool = False) -> bool:
    """models.config is needed for several models, labels or a non-default version policy."""
    return bool(
        force
        or len(plan) > 1
        or any(
            m["labels"] or m["version_policy"] != "latest" or m["latest_count"] != 1 for m in plan
        )
    )


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"model_plan": model_plan, "needs_model_config": needs_model_config}
