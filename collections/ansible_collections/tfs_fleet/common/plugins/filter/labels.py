# Copyright: tfs-fleet developers
# Apache License 2.0
"""Filters for the tfserving_models role: version labels deployed the way TF Serving needs them."""

from __future__ import annotations

import re
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: label_steps
short_description: Split a models.config change into "load the version" and "move the label"
description:
  - TF Serving sets version labels before it updates the models of a new config
    (server_core.cc, UpdateModelVersionLabelMap before AddModelsViaModelConfigList), and moving
    an existing label onto a version that is not AVAILABLE is refused, with or without
    --allow_version_labels_for_unavailable_models. g3doc/serving_config.md prescribes loading the
    version first, then pointing the label at it.
  - Takes the role's model plan, the text of the models.config the server runs with, and the
    server's REST status of each model (registered ansible.builtin.uri results). Returns
    C(first), the plan with every label that would move onto a version the server does not
    report AVAILABLE kept on its current version, and C(wait), the [model, version] pairs to
    wait for before the final config (the plan itself) may be written. C(wait) is empty when no
    label moves onto a version still loading, or when the server does not answer (a start reads
    every label as new, which the allow flag permits).
positional: old_config, status_results
options:
  _input:
    description: The role's plan (tfs_fleet.common.model_plan), entries with name and labels.
    type: list
    required: true
  old_config:
    description: Text of the models.config now on the host ("" when there is none).
    type: str
    required: true
  status_results:
    description: Registered ansible.builtin.uri results of GET /v1/models/<name>, with item.name.
    type: list
    required: true
"""

_NAME_RE = re.compile(r'\bname\s*:\s*"((?:[^"\\]|\\.)*)"')
_LABEL_RE = re.compile(
    r'version_labels\s*:?\s*\{\s*key\s*:\s*"((?:[^"\\]|\\.)*)"\s*value\s*:\s*(-?\d+)\s*\}'
)


def config_labels(text: str) -> dict[str, dict[str, int]]:
    """{model: {label: version}} of a model_config_list text proto (key before value, as the
    role's template and TF Serving's documentation write them)."""
    if not isinstance(text, str):
        raise AnsibleFilterError(f"config_labels: expected the models.config text, got {text!r}")
    labels: dict[str, dict[str, int]] = {}
    names = list(_NAME_RE.finditer(text))
    for index, match in enumerate(names):
        end = names[index + 1].start() if index + 1 < len(names) else len(text)
        found = {k: int(v) for k, v in _LABEL_RE.findall(text, match.end(), end)}
        if found:
            labels[match.group(1)] = found
    return labels


def _available(results: list[dict[str, Any]]) -> dict[str, set[int]]:
    """{model: AVAILABLE versions} for the models the server answered 200 for."""
    available: dict[str, set[int]] = {}
    for result in results:
        item = result.get("item") or {}
        name = item.get("name") if isinstance(item, dict) else None
        if not name or result.get("status") != 200:
            continue
        states = (result.get("json") or {}).get("model_version_status") or []
        available[name] = {
            int(entry["version"]) for entry in states if entry.get("state") == "AVAILABLE"
        }
    return available


def label_steps(
    plan: list[dict[str, Any]], old_config: str, status_results: list[dict[str, Any]]
) -> dict[str, Any]:
    old = config_labels(old_config or "")
    available = _available(status_results or [])
    first: list[dict[str, Any]] = []
    wait: list[list[Any]] = []
    for model in plan:
        name = model["name"]
        labels = dict(model.get("labels") or {})
        before = old.get(name, {})
        ready = available.get(name)
        step = dict(labels)
        for label, version in labels.items():
            current = before.get(label)
            moves = current is not None and current != version
            if moves and ready is not None and version not in ready:
                step[label] = current
                if [name, version] not in wait:
                    wait.append([name, version])
        first.append({**model, "labels": step})
    return {"first": first, "wait": wait}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"label_steps": label_steps, "config_labels": config_labels}
