# Copyright: tfs-fleet developers
# Apache License 2.0
"""Filters over what a host serves: the served versions found on disk, and the rollout's
decisions (settings, the change to the containers, the result, the rollback's model list)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: served_versions
short_description: The model versions published under a served directory
description:
  - Takes the C(files) of an C(ansible.builtin.find) for directories under O(base_dir) (depth
    2) and returns a dict of model name to sorted versions, the versions sorted, for the entries that are
    C(<base_dir>/<model>/<digits>). Anything else (staging directories, files) is ignored.
  - The same file holds the rollout's filters; see their docstrings in the source
    (C(rollout_batches), C(rollout_containers), C(rollout_container_change),
    C(rollout_result), C(rollout_models_list), C(hosts_flagged)).
positional: base_dir
options:
  _input:
    description: The C(files) list of the find result.
    type: list
    required: true
  base_dir:
    description: The served directory (absolute).
    type: str
    required: true
"""

BATCH_RE = re.compile(r"^([1-9][0-9]*|[1-9][0-9]?%|100%)$")


def served_versions(found: Iterable[Mapping[str, Any]], base_dir: str) -> dict[str, list[int]]:
    if not isinstance(base_dir, str) or not base_dir.startswith("/"):
        raise AnsibleFilterError(f"served_versions: base_dir must be absolute (got {base_dir!r})")
    base = posixpath.normpath(base_dir)
    served: dict[str, set[int]] = {}
    for entry in found:
        path = posixpath.normpath(str(entry["path"]))
        model_dir, version = posixpath.split(path)
        if posixpath.dirname(model_dir) == base and version.isdigit():
            served.setdefault(posixpath.basename(model_dir), set()).add(int(version))
    return {model: sorted(versions) for model, versions in sorted(served.items())}


def rollout_batches(serial: Any, name: str = "tfserving_rollout_serial") -> list[str]:
    """The batch sizes of tfserving_rollout_serial (or the variable ``name``) as strings; an
    error names the variable and the fix."""
    sizes = serial if isinstance(serial, list) else [serial]
    bad = [s for s in sizes if isinstance(s, bool) or not BATCH_RE.match(str(s))]
    if not sizes or bad:
        raise AnsibleFilterError(
            f"{name} must be a batch size or a non-empty list of them (whole "
            f"numbers from 1 or percentages such as '25%', up to '100%'); got {serial!r}"
        )
    return [str(s) for s in sizes]


def rollout_containers(infos: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """{name: {id, started, image, image_id}} of the containers that exist, from the results
    of community.docker.docker_container_info (looped over the container names)."""
    containers = {}
    for info in infos:
        if not info.get("exists"):
            continue
        c = info.get("container") or {}
        name = str(c.get("Name", "")).lstrip("/") or str(info.get("item", ""))
        containers[name] = {
            "id": c.get("Id", ""),
            "started": (c.get("State") or {}).get("StartedAt", ""),
            "image": (c.get("Config") or {}).get("Image", ""),
            "image_id": c.get("Image", ""),
        }
    return dict(sorted(containers.items()))


def rollout_container_change(
    before: Mapping[str, Mapping[str, str]], after: Mapping[str, Mapping[str, str]]
) -> str:
    """recreated (a container is new, gone or has a new ID), restarted (same IDs, a new start
    time) or kept."""
    if set(before) != set(after) or any(before[n]["id"] != after[n]["id"] for n in before):
        return "recreated"
    if any(before[n]["started"] != after[n]["started"] for n in before):
        return "restarted"
    return "kept"


def rollout_result(before: Mapping[str, Any], after: Mapping[str, Any], change: str) -> str:
    """unchanged when image, models, labels and containers are as before; else updated."""
    same = (
        before.get("image_id") == after.get("image_id")
        and before.get("models") == after.get("models")
        and before.get("labels", {}) == after.get("labels", {})
        and change == "kept"
    )
    return "unchanged" if same else "updated"


def rollout_models_list(
    models_list: Iterable[Mapping[str, Any]], before: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """tfserving_models_list for the rollback: each model pinned to the versions the host served
    before (and the labels it had), so that the models role converges back to them. A model the
    host did not serve before is left out (its versions are retired by nobody: nothing is lost,
    and it is reported)."""
    served = before.get("models") or {}
    labels = before.get("labels") or {}
    result = []
    for model in models_list:
        name = model["name"]
        versions = served.get(name)
        if not versions:
            continue
        entry = {k: v for k, v in model.items() if k not in ("versions", "labels", "keep")}
        entry["versions"] = sorted(int(v) for v in versions)
        entry["keep"] = len(entry["versions"])
        # A record written before labels were recorded: the list's labels that still fit.
        wanted_labels = (labels.get(name) if "labels" in before else model.get("labels")) or {}
        entry["labels"] = {
            k: int(v) for k, v in wanted_labels.items() if int(v) in entry["versions"]
        }
        result.append(entry)
    return result


def hosts_flagged(hosts: Iterable[str], hostvars: Mapping[str, Any], fact: str) -> list[str]:
    """The hosts whose ``fact`` is true (for example: the rollout's failed gates)."""
    return [h for h in hosts if bool((hostvars.get(h) or {}).get(fact, False))]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {f.__name__: f for f in (served_versions, rollout_batches, rollout_containers, rollout_container_change, rollout_result, rollout_models_list, hosts_flagged)}  # fmt: skip
