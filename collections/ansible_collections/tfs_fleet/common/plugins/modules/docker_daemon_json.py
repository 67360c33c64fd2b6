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
  - An existing file that is not a JSON object (or holds C(NaN)/C(Infinity), which dockerd
    refuses) is never overwritten; the module fails and names the file instead.
  - Values are compared with their JSON types, so C(1) replaces C(true) and C(1.0) replaces C(1).
  - Before anything is written (and in check mode too), the file this run would write is
    validated, so that a value dockerd rejects never reaches the engine. Where the host's
    dockerd has C(--validate) (Docker 23 and later; detected from C(dockerd --version) and the
    flag's answer, never assumed) the whole merged file goes to a temporary file beside O(path)
    and C(dockerd --validate --config-file) checks it. Elsewhere (Docker 20.10, or no dockerd
    yet) the keys of O(settings) are checked against the schema of dockerd's keys that the
    preflight uses. A rejected file fails the task with a message naming O(settings_name) (and
    the key when dockerd names it) and dockerd's own words; nothing is written.
  - Before the first change, the previous file is kept as C(<path>.tfs-fleet-previous) (see
    O(keep_previous)), for the restart handler of the C(docker) role to restore when the engine
    does not come back.
  - The module also says in RV(engine_action) what the running engine needs to apply the file,
    nothing, a reload (SIGHUP, C(systemctl reload docker); containers and dockerd's PID stay) or
    a restart, from the top-level keys that differ between the file the engine runs on
    (C(<path>.tfs-fleet-previous) while a change is pending, else the file as it was) and the
    file this run writes, and from the keys the engine's version reloads (C(dockerd --version);
    module_utils/docker_reload.py lists them per version, read from moby's daemon/reload.go).
  - Concurrent runs on one host are serialized by a lock file next to O(path)
    (C(.<name>.tfs-fleet.lock)); the new content goes to a unique temporary file in the same
    directory (created exclusively, so a planted link is never followed), is flushed to disk and
    renamed over O(path), so readers always see a complete file.
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
  validate:
    description:
      - How the file is checked before it is written.
      - V(auto) runs C(dockerd --validate) where the host's dockerd has it, else the schema.
      - V(schema) checks the keys of O(settings) against the schema of dockerd's keys only.
      - V(none) checks nothing.
    type: str
    choices: [auto, schema, none]
    default: auto
  settings_name:
    description: Name of the variable O(settings) comes from, for the messages.
    type: str
    default: settings
  keep_previous:
    description:
      - Before the file changes, copy it to C(<path>.tfs-fleet-previous) (C({}) where there was
        no file), unless that copy exists already. The copy stands for the file the engine last
        started with, so a change written before its restart happened does not replace it. The
        C(docker) role's restart handler restores it when the engine does not come back and
        removes it once the engine answers.
    type: bool
    default: true
  mode:
    description:
      - Octal file mode of the file (for example C("0600")), applied to a new file and enforced
        on an existing one (a different mode is a change).
      - Not given, a new file gets C(0644) and an existing file keeps its mode.
    type: raw
extends_documentation_fragment:
  - tfs_fleet.common.attributes
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
validated_with:
  description:
    - How the new file was checked - C(dockerd --validate) or C(schema), each followed by the
      engine or the reason in parentheses, or C(none); empty when the content did not change.
  returned: always
  type: str
previous_file:
  description: The copy of the file the engine last started with (O(keep_previous)).
  returned: when the content changed and O(keep_previous) is set
  type: str
engine_action:
  description:
    - What the running engine needs to run on the file - V(none), V(reload) (every changed key is
      one dockerd re-reads on SIGHUP) or V(restart).
    - Compared with C(<path>.tfs-fleet-previous) where that copy exists (a change not yet
      applied, such as one whose handler never ran), else with the file before this run; so a
      pending change is reported although the file itself does not change.
  returned: always
  type: str
  choices: [none, reload, restart]
restart_keys:
  description: The changed top-level keys that need a restart (a nested key counts as its
    top-level key), sorted.
  returned: always
  type: list
  elements: str
reload_keys:
  description: The changed top-level keys a reload applies, sorted.
  returned: always
  type: list
  elements: str
engine_version:
  description: The first line of C(dockerd --version) on the host; empty without a dockerd, or
    when nothing changed (dockerd is not asked then). An unknown version counts only the keys
    every supported version reloads.
  returned: always
  type: str
"""

import copy
import math
import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tfs_fleet.common.plugins.module_utils.daemon_json_validate import (
    Dockerd,
    Unsupported,
    keys_named,
    schema_problems,
)
from ansible_collections.tfs_fleet.common.plugins.module_utils.docker_reload import (
    NONE,
    RESTART,
    Decision,
    decide,
)
from ansible_collections.tfs_fleet.common.plugins.module_utils.json_file import (
    JsonFileError,
    file_diff,
    lock,
    read,
    render,
    same,
    write_atomically,
)
from ansible_collections.tfs_fleet.common.plugins.module_utils.json_file import (
    parse_object as parse,
)

DEFAULT_NEW_MODE = 0o644
# The copy of the file the engine last started with (keep_previous).
PREVIOUS_SUFFIX = ".tfs-fleet-previous"

# Problems with the file or the settings; the message names it and the fix.
DaemonJsonError = JsonFileError


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


def check_finite(value: Any, where: str) -> None:
    """Refuse NaN and infinities in the settings: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        raise DaemonJsonError(f"settings: {where} is {value}, which JSON cannot hold")
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_finite(item, f"{where}[{index}]")


def parse_mode(mode: str | None) -> int | None:
    if mode is None:
        return None
    try:
        value = int(str(mode), 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o7777:
        raise DaemonJsonError(f"mode {mode!r} is not an octal file mode such as '0644'")
    return value


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/etc/docker/daemon.json"},
            "settings": {"type": "dict", "default": {}},
            "remove": {"type": "list", "elements": "str", "default": []},
            "backup": {"type": "bool", "default": False},
            "mode": {"type": "raw"},
            "validate": {
                "type": "str",
                "choices": ["auto", "schema", "none"],
                "default": "auto",
            },
            "settings_name": {"type": "str", "default": "settings"},
            "keep_previous": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    path: str = module.params["path"]
    settings: dict = module.params["settings"]
    remove: list[str] = module.params["remove"]

    both = sorted(set(settings) & set(remove))
    if both:
        module.fail_json(msg=f"keys {both} are both in settings and in remove: choose one")
    try:
        mode = parse_mode(module.params["mode"])
        check_finite(settings, "")
        result = run(module, path, settings, remove, mode)
    except DaemonJsonError as err:
        module.fail_json(msg=str(err), path=path)
    module.exit_json(**result)


def run(
    module: AnsibleModule, path: str, settings: dict, remove: list[str], mode: int | None
) -> dict:
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        if module.check_mode:
            return finish(module, path, "", {}, settings, remove, mode, None)
        os.makedirs(directory, mode=0o755, exist_ok=True)

    def merge() -> dict:
        before_text, current_mode = read(path)
        current = parse(before_text, path)
        return finish(module, path, before_text, current, settings, remove, mode, current_mode)

    if module.check_mode:
        return merge()
    # Read, merge and write under one lock: concurrent runs on a host serialize here.
    fd = lock(path)
    try:
        return merge()
    finally:
        os.close(fd)


def finish(
    module: AnsibleModule,
    path: str,
    before_text: str,
    current: dict,
    settings: dict,
    remove: list[str],
    mode: int | None,
    current_mode: int | None,
) -> dict:
    wanted = apply(current, settings, remove)
    changed_keys = sorted(
        k
        for k in set(current) | set(wanted)
        if k not in current or k not in wanted or not same(current[k], wanted[k])
    )
    exists = current_mode is not None
    target_mode: int = (
        mode
        if mode is not None
        else (current_mode if current_mode is not None else DEFAULT_NEW_MODE)
    )
    mode_changed = exists and current_mode != target_mode
    content_changed = bool(changed_keys) or not exists
    result: dict[str, Any] = {
        "changed": content_changed or mode_changed,
        "config": wanted,
        "changed_keys": changed_keys,
        "path": path,
        "mode": f"{target_mode:04o}",
    }
    if module._diff:
        result["diff"] = file_diff(
            path, before_text, render(wanted) if content_changed else before_text
        )
    engine = Engine(module)
    result["validated_with"] = (
        validate(module, engine, path, before_text, wanted, settings) if content_changed else ""
    )
    decision = engine_decision(module, engine, path, current, wanted)
    result.update(
        engine_action=decision.action,
        restart_keys=decision.restart_keys,
        reload_keys=decision.reload_keys,
        engine_version=engine.version_text if engine.asked else "",
    )
    if module.check_mode or not result["changed"]:
        return result
    if content_changed:
        if module.params["keep_previous"]:
            result["previous_file"] = keep_previous(path, before_text, target_mode)
        if module.params["backup"] and exists:
            result["backup_file"] = module.backup_local(path)
        write_atomically(path, render(wanted), target_mode)
    else:
        os.chmod(path, target_mode)
    return result


def keep_previous(path: str, before_text: str, mode: int) -> str:
    """Copy the file as it is to <path>.tfs-fleet-previous, unless a copy is there already."""
    previous = path + PREVIOUS_SUFFIX
    if not os.path.lexists(previous):
        write_atomically(previous, before_text if before_text.strip() else "{}\n", mode)
    return previous


class Engine:
    """The host's dockerd, looked up and asked for its version at most once."""

    def __init__(self, module: AnsibleModule) -> None:
        self._module = module
        self._dockerd: Dockerd | None = None
        self.asked = False

    @property
    def dockerd(self) -> Dockerd | None:
        if not self.asked:
            self.asked = True
            path = self._module.get_bin_path("dockerd")
            self._dockerd = Dockerd(path) if path else None
        return self._dockerd

    @property
    def version_text(self) -> str:
        return self.dockerd.version_text if self.dockerd else ""


def engine_decision(
    module: AnsibleModule, engine: Engine, path: str, current: dict, wanted: dict
) -> Decision:
    """What the running engine needs: the file it runs on is the previous copy while a change
    is pending (keep_previous), else the file as it was before this run."""
    running = current
    previous = path + PREVIOUS_SUFFIX
    unreadable = False
    if module.params["keep_previous"] and os.path.isfile(previous):
        try:
            running = parse(read(previous)[0], previous)
        except DaemonJsonError:
            unreadable = True  # what the engine runs on is unknown: restart
    if not unreadable and same(running, wanted):
        return Decision(NONE, [], [], "")
    decision = decide(running, wanted, engine.version_text)
    if unreadable and decision.action != RESTART:
        keys = decision.restart_keys + decision.reload_keys
        return Decision(RESTART, sorted(keys) or [os.path.basename(previous)], [], "")
    return decision


def validate(
    module: AnsibleModule,
    engine: Engine,
    path: str,
    before_text: str,
    wanted: dict,
    settings: dict,
) -> str:
    """Check the file this run would write; raise DaemonJsonError naming the variable where
    dockerd (or the schema) rejects it. Returns how it was checked."""
    how: str = module.params["validate"]
    name: str = module.params["settings_name"]
    if how == "none":
        return "none"
    why_schema = "validate: schema"
    if how == "auto":
        dockerd = engine.dockerd
        if dockerd is None:
            why_schema = "no dockerd on the host yet"
        else:
            try:
                complaint = dockerd.validate_text(render(wanted), os.path.dirname(path), path)
            except Unsupported:
                why_schema = f"{dockerd.label} has no --validate"
            else:
                if complaint is None:
                    return f"dockerd --validate ({dockerd.label})"
                raise DaemonJsonError(
                    rejected(dockerd, path, before_text, settings, name, complaint)
                )
    problems = schema_problems(settings, name)
    if problems:
        raise DaemonJsonError(
            " ".join(problems) + f" Checked against the schema of dockerd's keys ({why_schema}); "
            f"{path} was left unchanged. Fix {name} and run again."
        )
    return f"schema ({why_schema})"


def rejected(
    engine: Dockerd, path: str, before_text: str, settings: dict, name: str, complaint: str
) -> str:
    """The message for a file dockerd --validate rejects."""
    named = keys_named(complaint, settings)
    where = ", ".join(f"{name}.{key}" for key in named) if named else name
    note = ""
    if not named and before_text.strip():
        # Perhaps a key this run does not set: does dockerd reject the file as it is already?
        try:
            before = engine.validate_text(before_text, os.path.dirname(path), path)
        except Unsupported:  # pragma: no cover (it just answered --validate)
            before = None
        if before is not None:
            note = (
                f" dockerd rejects {path} as it is already (before this change), so the problem "
                "may be a key that another role or an admin set."
            )
    return (
        f"{where}: dockerd --validate ({engine.label}) rejects the daemon.json this run would "
        f"write: {complaint}.{note} {path} was left unchanged; fix {name} and run again."
    )


if __name__ == "__main__":
    main()
