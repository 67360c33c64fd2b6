#!/usr/bin/python
# Copyright: tfs-fleet developers
# Apache License 2.0
"""Bring several small files and directories of a role to their state in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_files
short_description: Several small files and directories brought to their state in one module run
version_added: "0.1.0"
description:
  - Takes a list of paths, each a directory to make, a file with its content, or a file to
    remove, with its mode and owner, and brings them to that state in order, in one module run
    (what C(ansible.builtin.file), C(ansible.builtin.copy) and C(ansible.builtin.template) do in
    one run each).
  - A file is written through a temporary file in its directory, renamed over it, so a reader
    sees the old file or the new one. An unchanged file is not written. Its directory must
    exist or be listed before it (state C(directory)).
  - Every entry is checked before anything changes; a bad entry fails the task naming the
    entry and the fix.
  - Supports check mode and diff mode (a diff per changed file).
  - Not for secrets, since the content of a changed file is in the diff. The serving role writes
    its TLS configuration with a task of its own (no_log).
options:
  files:
    description: The paths, in order.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      state:
        description: C(file) (O(files[].content) at the path), C(directory) (made with its
          parents), or C(absent) (a file removed; a directory there fails the task).
        type: str
        choices: [file, directory, absent]
        default: file
      content:
        description: The file's content (state C(file) only).
        type: str
      mode:
        description: Octal mode; C(0644) for a file and C(0755) for a directory when not given.
        type: str
      owner:
        description: Owner's user name; left as it is (or the running user's, on a new path)
          when not given.
        type: str
      group:
        description: Group name; as for O(files[].owner).
        type: str
extends_documentation_fragment:
  - tfs_fleet.common.attributes
"""

EXAMPLES = r"""
- name: Write the serving configuration
  tfs_fleet.common.host_files:
    files:
      - {path: /etc/tfserving, state: directory, owner: root, group: root}
      - path: /etc/tfserving/monitoring.config
        content: "{{ lookup('ansible.builtin.template', 'monitoring.config.j2') }}"
        owner: root
        group: root
      - {path: /etc/tfserving/ssl.config, state: absent}
"""

RETURN = r"""
changed_paths:
  description: The paths that changed (or would, in check mode), in the order given.
  returned: always
  type: list
  elements: str
files:
  description: Per path, what was done (C(none), C(create), C(update), C(attributes), C(remove)).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tfs_fleet.common.plugins.module_utils.host_files import (
    HostFilesError,
    converge,
)
from ansible_collections.tfs_fleet.common.plugins.module_utils.json_file import file_diff


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "files": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "path": {"type": "path", "required": True},
                    "state": {
                        "type": "str",
                        "choices": ["file", "directory", "absent"],
                        "default": "file",
                    },
                    "content": {"type": "str"},
                    "mode": {"type": "str"},
                    "owner": {"type": "str"},
                    "group": {"type": "str"},
                },
            },
        },
        supports_check_mode=True,
    )
    try:
        plans = converge(module.params["files"], module.check_mode)
    except (HostFilesError, OSError) as err:
        module.fail_json(msg=f"host_files: {err}")
    changed = [p["path"] for p in plans if p["action"] != "none"]
    diff = [file_diff(p["path"], p["before"], p.get("after", "")) for p in plans if "before" in p]
    module.exit_json(
        changed=bool(changed),
        changed_paths=changed,
        files=[{"path": p["path"], "action": p["action"]} for p in plans],
        diff=diff,
    )


if __name__ == "__main__":
    main()
