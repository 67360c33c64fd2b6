# Copyright: tfs-fleet developers
# Apache License 2.0
"""Filters for the tfserving_models role: which model versions a host should serve."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.tfs_fleet.common.plugins.module_utils.model_sources import (
    PlanError,
    wanted_versions,
)
from ansible_collections.tfs_fleet.common.plugins.module_utils.preflight import label_problems

DOCUMENTATION = r"""
name: model_plan
short_description: Plan the model versions a host serves from what the controller exported
description:
  - Takes the C(tfserving_models_list) list and the C(models) result of the
    C(tfs_fleet.common.model_sources) action (the versions under the export base, with the files
    table of each), and returns one entry per model - the versions wanted on the host, the
    pinned ones, and per wanted version C(sources) (C(source), the version directory to rsync
    from, its C(dir_name), its C(files) table and C(manifest_sha256)) and C(manifests) (version
    -> manifest_sha256).
  - The versions wanted are the model's C(versions), else the newest C(keep) (else
    O(default_keep)) exported ones - the same rule (module_utils/model_sources.py
    C(wanted_versions)) that decides which versions C(tfs_fleet.common.model_sources) hashes.
  - Fails, naming the model, the version and the model's directory, when a requested version was
    not exported, when a model has no version, or when a label points at a version that is not
    served.
positional: sources, default_keep
options:
  _input:
    description: The tfserving_models_list list.
    type: list
    required: true
  sources:
    description: The C(models) result of tfs_fleet.common.model_sources (with checksums).
    type: dict
    required: true
  default_keep:
    description: Versions kept when a model does not set C(keep).
    type: int
    required: true
"""


def _exported(name: str, sources: dict[str, Any]) -> tuple[str, dict[int, dict[str, Any]]]:
    """(model directory, version -> what model_sources found) for one model."""
    found = sources.get(name)
    if not isinstance(found, dict) or not isinstance(found.get("versions"), dict):
        raise AnsibleFilterError(
            f"model_plan: model_sources found nothing for model {name} (is it in the models "
            "given to tfs_fleet.common.model_sources?)"
        )
    return str(found.get("model_dir", "the export base")), {
        int(v): entry for v, entry in found["versions"].items()
    }


def _source(name: str, version: int, entry: dict[str, Any]) -> dict[str, Any]:
    if not entry.get("files") or not entry.get("manifest_sha256"):
        raise AnsibleFilterError(
            f"model_plan: version {version} of model {name} has no files table: "
            "tfs_fleet.common.model_sources hashes only with checksums: true, and only the "
            "versions its models (name, versions, keep) and default_keep want: give it this "
            "host's model entries and tfserving_models_keep"
        )
    return {
        "source": entry["path"],
        "dir_name": entry["dir_name"],
        "files": entry["files"],
        "manifest_sha256": entry["manifest_sha256"],
    }


def model_plan(
    models: list[dict[str, Any]], sources: dict[str, Any], default_keep: int
) -> list[dict[str, Any]]:
    if not isinstance(sources, dict):
        raise AnsibleFilterError(
            "model_plan: sources must be the models result of tfs_fleet.common.model_sources"
        )
    plan = []
    for index, model in enumerate(models):
        name = model["name"]
        base, exported = _exported(name, sources)
        try:
            wanted, keep = wanted_versions(model, exported, default_keep, base)
        except PlanError as err:
            raise AnsibleFilterError(str(err)) from err
        pinned = sorted({int(v) for v in model.get("pinned") or []})
        labels = {str(k): int(v) for k, v in (model.get("labels") or {}).items()}
        policy = model.get("version_policy") or "latest"
        latest_count = int(model.get("latest_count") or 1)
        # The preflight's rule, the one home of it (it refuses the same before any change).
        problems = label_problems(
            f"tfserving_models_list[{index}]", model, exported, default_keep, base
        )
        if problems:
            raise AnsibleFilterError(" ".join(problems))
        chosen = {str(v): _source(name, v, exported[v]) for v in wanted}
        plan.append(
            {
                "name": name,
                "wanted": wanted,
                "pinned": pinned,
                "keep": keep,
                "sources": chosen,
                "manifests": {v: entry["manifest_sha256"] for v, entry in chosen.items()},
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
