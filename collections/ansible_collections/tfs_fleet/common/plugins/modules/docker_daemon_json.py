#!/usr/bin/python
# Copyright: tfs-fleet developers
# Apache License 2.0
"""Merge settings into Docker's daemon.json without dropping keys owned by someone else."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: docker_daemon_json
short_description: Merge keys into Docker's daemon.json, keeping every other key
version_added: "0.1.0"
description:
  - Reads the existing daemon configuration file (if any), sets the given top-level keys and
    writes the result back only when something changed.
  - Dictionary values are merged recursively into the existing dictionary, so two roles can each
    own one entry of C(runtimes) (for example C(runtimes.nvidia)) without overwriting the other.
  - Keys that are not named in O(settings) or O(remove) are never touched, whoever wrote them.
  - An existing file that is not a JSON object is never overwritten; the module fails and names
    the file instead.
options:
  path:
    description: Path of the daemon configuration file.
    type: path
    default: /etc/docker/daemon.json
  settings:
    description:
      - Top-level keys to set. A dictionary value is merged recursively into an existing
        dictionary value; any other value replaces the existing one.
    type: dict
    default: {}
  remove:
    description: Top-level keys to delete when present.
    type: list
    elements: str
    default: []
  backup:
    description: Keep a timestamped copy of the previous file when it changes.
    type: bool
    default: false
  mode:
    description: File mode of a file the module creates.
    type: str
    default: "0644"
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
author:
  - tfs-fleet developers
"""

EXAMPLES = r"""
- name: Use the vfs storage driver and rotate container logs
  tfs_fleet.common.docker_daemon_json:
    settings:
      storage-driver: vfs
      log-opts:
        max-size: 50m

- name: Register the NVIDIA runtime next to whatever runtimes exist
  tfs_fleet.common.docker_daemon_json:
    settings:
      runtimes:
        nvidia:
          path: nvidia-container-runtime
          runtimeArgs: []
"""

RETURN = r"""
config:
  description: The configuration as it is (or, in check mode, would be) after the change.
  returned: always
  type: dict
changed_keys:
  description: Top-level keys whose value changed, sorted.
  returned: always
  type: list
  elements: str
"""

import copy
import json
import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule


def merge(existing: Any, wanted: Any) -> Any:
    """Return ``wanted`` merged into ``existing``: dicts recursively, anything else replaced."""
    if isinstance(existing, dict) and isinstance(wanted, dict):
        result = copy.deepcopy(existing)
        for key, value in wanted.items():
            result[key] = merge(result.get(key), value)
        return result
    return copy.deepcopy(wanted)


def apply(config: dict, settings: dict, remove: list[str]) -> dict:
    """Return a new configuration with ``settings`` merged in and ``remove`` keys dropped."""
    result = merge(config, settings)
    for key in remove:
        result.pop(key, None)
    return result


def render(config: dict) -> str:
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/etc/docker/daemon.json"},
            "settings": {"type": "dict", "default": {}},
            "remove": {"type": "list", "elements": "str", "default": []},
            "backup": {"type": "bool", "default": False},
            "mode": {"type": "str", "default": "0644"},
        },
        supports_check_mode=True,
    )
    path: str = module.params["path"]
    settings: dict = module.params["settings"]
    remove: list[str] = module.params["remove"]

    both = sorted(set(settings) & set(remove))
    if both:
        module.fail_json(msg=f"keys {both} are both in settings and in remove: choose one")

    before_text = ""
    current: dict = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            before_text = handle.read()
        if before_text.strip():
            try:
                current = json.loads(before_text)
            except ValueError as err:
                module.fail_json(
                    msg=f"{path} is not valid JSON ({err}); it was left unchanged. "
                    "Fix or remove the file, then run again.",
                )
            if not isinstance(current, dict):
                module.fail_json(
                    msg=f"{path} holds a JSON {type(current).__name__}, not an object; "
                    "it was left unchanged. Fix or remove the file, then run again.",
                )

    wanted = apply(current, settings, remove)
    changed_keys = sorted(k for k in set(current) | set(wanted) if current.get(k) != wanted.get(k))
    after_text = render(wanted)
    changed = bool(changed_keys) or not os.path.exists(path)
    result: dict[str, Any] = {
        "changed": changed,
        "config": wanted,
        "changed_keys": changed_keys,
        "path": path,
    }
    if module._diff:
        result["diff"] = {
            "before": before_text,
            "after": after_text,
            "before_header": path,
            "after_header": path,
        }
    if not changed or module.check_mode:
        module.exit_json(**result)

    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o755)
    if module.params["backup"] and os.path.exists(path):
        result["backup_file"] = module.backup_local(path)
    tmp_path = os.path.join(directory, f".{os.path.basename(path)}.tfs-fleet.tmp")
    with open(tmp_path, "w", encoding="utf-8") as handle:
        handle.write(after_text)
    if os.path.exists(path):
        module.atomic_move(tmp_path, path)
    else:
        os.chmod(tmp_path, int(module.params["mode"], 8))
        module.atomic_move(tmp_path, path)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
