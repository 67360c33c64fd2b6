#!/usr/bin/python
# Copyright: tfs-fleet developers
# Apache License 2.0
"""Read or update the host's deployment record (module_utils/host_record.py)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_record
short_description: Read or update the host's deployment record (serving-state.json)
version_added: "0.2.0"
description:
  - The one record of what a host serves. C(current) (image reference and ID, containers,
    model versions, labels), C(previous) (the current before its last change) and a bounded
    C(history), newest first.
  - With O(update), sets those keys of C(current); every other key is kept. When the state is
    unchanged nothing is written (a re-run reports no change); a changed state moves the old
    C(current) to the front of the history and stamps the new one with the time and O(by).
  - With O(drained), sets the record's drain note (C(drained) - C(by) tfs-fleet, C(reason),
    C(at), C(hold)) or, with an empty O(drained), removes it. The roles that drain a host on the
    load balancers write it before they drain and remove it after they undrain; a normal run
    puts back only hosts whose note says the tool drained them and not to hold them.
  - Without O(update) and O(drained), only reads (a missing file is an empty record).
  - Concurrent writers on one host are serialized by a lock file next to O(path); the new
    content replaces the file atomically.
options:
  path:
    description: The record file.
    type: path
    default: /etc/tfs-fleet/serving-state.json
  update:
    description: Keys of C(current) to set (for example C(models), C(image_id)).
    type: dict
    default: {}
  by:
    description: Who records the change (a role name), kept in C(current.recorded_by).
    type: str
    default: ""
  drained:
    description:
      - The drain note to set, C({reason, hold}) (C(hold) true - left drained on purpose, e.g.
        after a failed change, so no run puts it back), or V({}) to remove it. Omitted, the note
        is left as it is. A note with the same reason and hold is not rewritten.
    type: dict
  history:
    description: How many earlier states to keep.
    type: int
    default: 10
extends_documentation_fragment:
  - tfs_fleet.common.attributes
"""

EXAMPLES = r"""
- name: Record the served model versions
  tfs_fleet.common.host_record:
    update:
      models: {half_plus_two: [1, 2]}
    by: tfserving_models

- name: Read the record
  tfs_fleet.common.host_record:
  register: record

- name: Note that the tool drained the host (before the drain)
  tfs_fleet.common.host_record:
    drained:
      reason: rollout 20260102T030405Z
"""

RETURN = r"""
record:
  description: The whole record as it is (or, in check mode, would be) after the call.
  returned: always
  type: dict
current:
  description: The record's current state.
  returned: always
  type: dict
previous:
  description: The state before the last change (empty when there is none).
  returned: always
  type: dict
drained:
  description: The record's drain note (C(by), C(reason), C(at), C(hold)); empty when none.
  returned: always
  type: dict
"""

import datetime
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tfs_fleet.common.plugins.module_utils.host_record import (
    apply,
    normalise,
    set_drained,
)
from ansible_collections.tfs_fleet.common.plugins.module_utils.json_file import (
    JsonFileError,
    file_diff,
    lock,
    parse_object,
    read,
    render,
    write_atomically,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/etc/tfs-fleet/serving-state.json"},
            "update": {"type": "dict", "default": {}},
            "by": {"type": "str", "default": ""},
            "history": {"type": "int", "default": 10},
            "drained": {"type": "dict"},
        },
        supports_check_mode=True,
    )
    path: str = module.params["path"]
    update: dict = module.params["update"]
    drained: dict | None = module.params["drained"]
    try:
        if not update and drained is None:
            text, _ = read(path)
            record = normalise(parse_object(text, path))
            module.exit_json(changed=False, record=record, **_parts(record))
        directory = os.path.dirname(path) or "."
        fd = None
        if not module.check_mode:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            fd = lock(path)
        try:
            text, mode = read(path)
            now = datetime.datetime.now(datetime.timezone.utc).isoformat()  # noqa: UP017 (Python 3.8 hosts)
            stamp = {"recorded_utc": now, "recorded_by": module.params["by"]}
            record, changed = normalise(parse_object(text, path)), False
            if update:
                record, changed = apply(record, update, stamp, module.params["history"])
            if drained is not None:
                record, noted = set_drained(record, drained, now)
                changed = changed or noted
            result = {"changed": changed, "record": record, **_parts(record)}
            if module._diff:
                result["diff"] = file_diff(path, text, render(record) if changed else text)
            if changed and not module.check_mode:
                write_atomically(path, render(record), mode if mode is not None else 0o644)
        finally:
            if fd is not None:
                os.close(fd)
    except (JsonFileError, ValueError) as err:
        module.fail_json(msg=f"{path}: {err}", path=path)
    module.exit_json(**result)


def _parts(record: dict) -> dict:
    return {
        "current": record["current"],
        "previous": record["previous"],
        "drained": record.get("drained", {}),
    }


if __name__ == "__main__":
    main()
