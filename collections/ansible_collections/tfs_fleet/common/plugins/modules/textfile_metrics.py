#!/usr/bin/python
# Copyright: tfs-fleet developers
# Apache License 2.0
"""Write a node exporter textfile-collector file atomically, with a change timestamp."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: textfile_metrics
short_description: Write a .prom file for node exporter's textfile collector, atomically
version_added: "0.1.0"
description:
  - Writes O(content) (Prometheus text format) to O(path) through a temporary file in the same
    directory whose name does not end in C(.prom) (the collector reads only C(*.prom)), flushed
    and renamed over O(path), so a scrape sees the old file or the new one, never a part.
  - With O(timestamp_metric), the file also carries that gauge, set to the time of the write.
    It is left out when the file is compared, so the file (and its timestamp) changes only when
    O(content) does. An unchanged host reports no change, and the timestamp says when the
    last converge changed what the host serves.
  - A missing directory of O(path) is made (with its parents, mode 0755, owned by the user
    running the module); an existing one is left as it is (the monitoring role owns the
    collector's directory where it installs node exporter).
  - With O(files), several files in one module run (a module run costs a host about 0.2 s of
    CPU whatever it does), each as O(path), O(content), O(timestamp_metric) and O(mode) would
    make it.
options:
  path:
    description: The .prom file (required without O(files)).
    type: path
  content:
    description: Prometheus text (the tfs_fleet.common drift filters render it; required with
      O(path)).
    type: str
  timestamp_metric:
    description: Name of the gauge holding the Unix time of the last change; empty for none.
    type: str
    default: ""
  mode:
    description: Octal mode of the file.
    type: str
    default: "0644"
  files:
    description: Several files instead of O(path), in order, each with C(path), C(content) and,
      optionally, C(timestamp_metric) and C(mode) (defaults as above).
    type: list
    elements: dict
extends_documentation_fragment:
  - tfs_fleet.common.attributes
"""

EXAMPLES = r"""
- name: Publish what this host serves
  tfs_fleet.common.textfile_metrics:
    path: /var/lib/prometheus/node-exporter/tfs_fleet_models.prom
    content: "{{ plan | tfs_fleet.common.drift_models_text }}"
    timestamp_metric: tfs_fleet_models_last_change_timestamp_seconds
"""

RETURN = r"""
timestamp:
  description: The timestamp the file carries (0 without O(timestamp_metric)); with O(files), the
    first file's.
  returned: always
  type: float
timestamps:
  description: With O(files), the timestamp of each file, by path.
  returned: when O(files) is given
  type: dict
"""

import os
import re
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tfs_fleet.common.plugins.module_utils.json_file import (
    file_diff,
    write_atomically,
)


def strip_timestamp(text: str, metric: str) -> str:
    """The text without the timestamp gauge's HELP/TYPE lines and samples."""
    if not metric:
        return text
    pattern = re.compile(
        rf"^(# (HELP|TYPE) {re.escape(metric)} .*|{re.escape(metric)}(\{{.*\}})? .*)$"
    )
    return "".join(line for line in text.splitlines(True) if not pattern.match(line.rstrip("\n")))


def render(content: str, metric: str, now: float) -> str:
    body = content if content.endswith("\n") or not content else content + "\n"
    if not metric:
        return body
    return (
        body
        + f"# HELP {metric} Unix time of the last converge that changed this file.\n"
        + f"# TYPE {metric} gauge\n"
        + f"{metric} {now:.3f}\n"
    )


def read_timestamp(text: str, metric: str) -> float:
    match = re.search(rf"^{re.escape(metric)} (\S+)$", text, flags=re.MULTILINE) if metric else None
    try:
        return float(match.group(1)) if match else 0.0
    except ValueError:
        return 0.0


def make_dirs(directory: str) -> None:
    """Make directory and its missing parents, each with mode 0755 (not narrowed by the umask)."""
    parent = os.path.dirname(directory)
    if parent and parent != directory and not os.path.isdir(parent):
        make_dirs(parent)
    os.mkdir(directory, 0o755)
    os.chmod(directory, 0o755)


class TextfileError(Exception):
    """A problem with one file; the message names it."""


def converge_one(
    path: str, content: str, metric: str, mode_text: str, check_mode: bool
) -> dict[str, Any]:
    """Bring one .prom file to content: {changed, timestamp[, diff]}."""
    try:
        mode = int(mode_text, 8)
    except ValueError:
        raise TextfileError(f"mode {mode_text!r} of {path} is not an octal file mode") from None
    directory = os.path.dirname(path) or "."
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise TextfileError(f"{directory} is not a directory: cannot write {path} there")
    if not os.path.isdir(directory):
        if check_mode:
            return {"changed": True, "timestamp": None, "msg": f"would make {directory}"}
        try:
            make_dirs(directory)
        except OSError as err:
            raise TextfileError(f"cannot make {directory} for {path}: {err}") from err
    old = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as handle:
            old = handle.read()
    wanted_body = render(content, "", 0)
    same = os.path.exists(path) and strip_timestamp(old, metric) == wanted_body
    mode_ok = os.path.exists(path) and (os.stat(path).st_mode & 0o7777) == mode
    if same and mode_ok:
        return {"changed": False, "timestamp": read_timestamp(old, metric)}
    now = read_timestamp(old, metric) if same else round(time.time(), 3)
    new = render(content, metric, now)
    if not check_mode:
        if same:
            os.chmod(path, mode)
        else:
            write_atomically(path, new, mode)
    return {"changed": True, "timestamp": now, "diff": file_diff(path, old, new)}


# Options of each file, at the top level (one file) and in each entry of files.
PER_FILE = {
    "timestamp_metric": {"type": "str", "default": ""},
    "mode": {"type": "str", "default": "0644"},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path"},
            "content": {"type": "str"},
            **PER_FILE,
            "files": {
                "type": "list",
                "elements": "dict",
                "options": {
                    "path": {"type": "path", "required": True},
                    "content": {"type": "str", "required": True},
                    **PER_FILE,
                },
            },
        },
        mutually_exclusive=[["path", "files"]],
        required_one_of=[["path", "files"]],
        required_together=[["path", "content"]],
        supports_check_mode=True,
    )
    params = module.params
    entries = [params] if params["files"] is None else params["files"]
    results = []
    try:
        for entry in entries:
            results.append(
                converge_one(
                    entry["path"], entry["content"], entry["timestamp_metric"], entry["mode"],
                    module.check_mode,
                )
            )  # fmt: skip
    except (TextfileError, OSError) as err:
        module.fail_json(msg=str(err))
    out: dict[str, Any] = {
        "changed": any(r["changed"] for r in results),
        "timestamp": results[0]["timestamp"],
        "diff": [r["diff"] for r in results if "diff" in r],
    }
    if params["files"] is not None:
        out["timestamps"] = {e["path"]: r["timestamp"] for e, r in zip(entries, results)}  # noqa: B905
    module.exit_json(**out)


if __name__ == "__main__":
    main()
