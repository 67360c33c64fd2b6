#!/usr/bin/python
# Copyright: tfs-fleet developers
# Apache License 2.0
"""Check the published versions of a model against the controller's files tables, stage the
ones that no longer match for a re-sync, tidy what no run will use, render the repair metrics."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: published_versions
short_description: Check published model versions, stage damaged ones for re-sync, tidy leftovers
version_added: "0.2.0"
description:
  - Works on one model's directory on the host (C(<models dir>/<model>)), where
    tfs_fleet.common.model_version_publish publishes versions and writes a publish record for
    each (C(.tfs-fleet-published-<v>.json), outside the version; the controller's sha256 and
    size and the stat of every file as published).
  - O(step=check) - with O(retired_dir), first makes sure that O(model_dir), O(retired_dir) and
    their parents are directories (mode 0755, owned by the user running the module), and
    returns C(found), the versions published in O(model_dir), moved aside in O(retired_dir) and
    staged in O(model_dir) (links are not versions).
  - O(step=check) - every published version of O(sources) is checked against the controller's
    files table - exactly those files, sizes and sha256. With O(verify=stat) every file is
    C(lstat)ed and only the files whose size, mtime, ctime or inode differ from the record (or
    that the record lacks) are read and hashed, so an unchanged version costs its listing.
    With O(verify=full) every file is hashed. A version without a usable record is hashed in
    full once and recorded.
  - A version that no longer matches (a changed byte, a changed size, an extra or a missing
    file, a link or special file) is reported as changed, with a warning naming the model, the
    version and the files, and is copied into its staging directory with hard links (no data
    is copied and the served version is left as it is; directories owned by O(owner)). The
    transfer repairs that copy by content (rsync C(--checksum --delete), which replaces files
    and never writes into them) and model_version_publish with C(replace) swaps it in.
  - O(step=tidy) - removes, at the end of a model's sync, the staging directories of versions
    that are not in O(wanted) (withdrawn, or failed and withdrawn) or that are published, the
    copies a swap left, the records of versions that are not published and their temporary
    files. Reports the names and the bytes freed.
  - O(step=metrics) - reads the records of O(models) under O(models_dir) and returns
    C(metrics), Prometheus text of C(tfs_fleet_model_version_repairs_total) (every wanted
    version) and C(tfs_fleet_model_version_last_repair_timestamp_seconds) (repaired ones).
    Changes nothing.
  - In check mode nothing is written, copied or removed; what would be is reported.
options:
  step:
    description: What to do (see the description).
    type: str
    choices: [check, tidy, metrics]
    default: check
  model_dir:
    description: The model's directory on the host. Required by O(step=check) and O(step=tidy);
      when it is missing (a new model in check mode), nothing is published there.
    type: path
  sources:
    description:
      - O(step=check) - the wanted versions, version -> an entry with C(files), the controller's
        files table (relative path -> C(sha256) and C(size)); the role's plan C(sources).
        Versions not published in O(model_dir) are skipped (the transfer brings them).
    type: dict
    default: {}
  retired_dir:
    description: O(step=check) - the model's directory of versions moved aside; given, the
      directories are created as needed and C(found) is returned.
    type: path
  verify:
    description: O(step=check) - C(stat) hashes only files whose stat changed, C(full) every file.
    type: str
    choices: [stat, full]
    default: stat
  owner:
    description: O(step=check) - the user who owns the directories of a staged copy (the user
      the transfer runs as); empty for the user running the module.
    type: str
    default: ""
  wanted:
    description: O(step=tidy) - the versions the model serves.
    type: list
    elements: int
    default: []
  models_dir:
    description: O(step=metrics) - the directory holding the models' directories.
    type: path
  models:
    description: O(step=metrics) - model name -> the wanted versions.
    type: dict
    default: {}
  staging_prefix:
    description: Name prefix of the staging directories (not a number, so TF Serving skips them).
    type: str
    default: .tfs-fleet-incoming-
  record_prefix:
    description: Name prefix of the publish records.
    type: str
    default: .tfs-fleet-published-
extends_documentation_fragment:
  - tfs_fleet.common.attributes.check_only
"""

EXAMPLES = r"""
- name: Check the published versions of half_plus_two
  tfs_fleet.common.published_versions:
    model_dir: /srv/tfserving/models/half_plus_two
    sources: "{{ plan_entry.sources }}"
    owner: ops
  register: checked

- name: Remove staging directories no run will use
  tfs_fleet.common.published_versions:
    step: tidy
    model_dir: /srv/tfserving/models/half_plus_two
    wanted: [2, 3]
"""

RETURN = r"""
found:
  description: O(step=check) with O(retired_dir) - C(served), C(retired) and C(staged), sorted
    version numbers (empty where a directory does not exist yet, in check mode).
  returned: step is check and retired_dir is given
  type: dict
repair:
  description: O(step=check) - versions that no longer match and were staged for a re-sync.
  returned: step is check
  type: list
  elements: int
problems:
  description: O(step=check) - version -> what differs (at most 50 entries each).
  returned: step is check
  type: dict
hashed_files:
  description: O(step=check) - files read and hashed (0 on an unchanged host with verify=stat).
  returned: step is check
  type: int
hashed_bytes:
  description: O(step=check) - bytes read and hashed.
  returned: step is check
  type: int
recorded:
  description: O(step=check) - versions whose record was written again (missing, or stats that
    moved on files whose content matches; not a change of the version).
  returned: step is check
  type: list
  elements: int
removed:
  description: O(step=tidy) - names removed (or that would be, in check mode).
  returned: step is tidy
  type: list
  elements: str
freed_bytes:
  description: O(step=tidy) - bytes of the removed staging directories.
  returned: step is tidy
  type: int
metrics:
  description: O(step=metrics) - Prometheus text.
  returned: step is metrics
  type: str
"""

import os
import pwd
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tfs_fleet.common.plugins.module_utils.model_manifest import (
    ManifestError,
    check_files_table,
)
from ansible_collections.tfs_fleet.common.plugins.module_utils.published_versions import (
    check_version,
    ensure_dirs,
    human_size,
    last_repair_of,
    leftovers,
    link_copy,
    make_record,
    metrics_text,
    read_record,
    record_path,
    remove_tree,
    repairs_of,
    summary,
    tree_size,
    version_dirs,
    write_record,
)


def plain_prefix(module: AnsibleModule, option: str) -> str:
    value: str = module.params[option]
    if not value.startswith(".") or "/" in value or value.rstrip(".") == "":
        module.fail_json(msg=f"{option} {value!r} must be a hidden name prefix without '/'")
    return value


def tables(module: AnsibleModule) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for key, entry in (module.params["sources"] or {}).items():
        where = f"sources[{key!r}]"
        if not str(key).isdigit():
            module.fail_json(msg=f"{where}: a version is a number")
        files = entry.get("files") if isinstance(entry, dict) else None
        try:
            found[int(key)] = check_files_table(files, f"{where}.files", require_size=True)
        except ManifestError as err:
            module.fail_json(
                msg=f"{err}: give the role plan's sources (tfs_fleet.common.model_plan)"
            )
    return found


def owner_uid(module: AnsibleModule) -> int:
    name: str = module.params["owner"]
    if not name:
        return -1
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        module.fail_json(msg=f"owner {name!r} is not a user on this host")
    return -1  # pragma: no cover (fail_json exits)


def found_versions(module: AnsibleModule, model_dir: str, staging_prefix: str) -> dict[str, Any]:
    """With retired_dir: the directories made sure of, and the versions found in them."""
    retired_dir = (module.params["retired_dir"] or "").rstrip("/")
    if not retired_dir:
        return {}
    paths = [os.path.dirname(model_dir), model_dir, os.path.dirname(retired_dir), retired_dir]
    try:
        made = ensure_dirs(list(dict.fromkeys(paths)), dry_run=module.check_mode)
    except OSError as err:
        module.fail_json(
            msg=f"cannot make the model's directories ({model_dir}, {retired_dir}): {err}"
        )
    return {
        "made": made,
        "found": {
            "served": version_dirs(model_dir),
            "retired": version_dirs(retired_dir),
            "staged": version_dirs(model_dir, staging_prefix),
        },
    }


def step_check(module: AnsibleModule, model_dir: str) -> None:
    wanted = tables(module)
    staging_prefix = plain_prefix(module, "staging_prefix")
    record_prefix = plain_prefix(module, "record_prefix")
    dirs = found_versions(module, model_dir, staging_prefix)
    uid = owner_uid(module)
    full = module.params["verify"] == "full"
    model = os.path.basename(model_dir)
    repair: list[int] = []
    problems: dict[str, list[str]] = {}
    recorded: list[int] = []
    hashed_files = hashed_bytes = 0
    for version in sorted(wanted):
        dest = os.path.join(model_dir, str(version))
        if os.path.islink(dest) or not os.path.isdir(dest):
            continue
        files = wanted[version]
        record_file = record_path(model_dir, version, record_prefix)
        result = check_version(dest, files, read_record(record_file), full)
        hashed_files += result.hashed_files
        hashed_bytes += result.hashed_bytes
        if not result.problems:
            if result.record_stale:
                recorded.append(version)
                if not module.check_mode:
                    write_record(record_file, make_record(dest, files, *_kept(record_file)))
            continue
        repair.append(version)
        problems[str(version)] = result.problems[:50]
        module.warn(
            f"model {model} version {version} on this host no longer matches the controller's "
            f"copy ({summary(result.problems)}): it is re-synced from the controller and "
            "published again (it stays served until the verified copy replaces it)"
        )
        if not module.check_mode:
            staging = os.path.join(model_dir, f"{staging_prefix}{version}")
            try:
                if os.path.lexists(staging):
                    remove_tree(staging)
                link_copy(dest, staging, files, uid)
            except OSError as err:
                module.fail_json(
                    msg=f"model {model} version {version} no longer matches the controller's "
                    f"copy, and staging it for a re-sync in {staging} failed: {err}",
                    problems=result.problems[:50],
                )
    parts = [f"{len(wanted)} wanted, hashed {hashed_files} files ({human_size(hashed_bytes)})"]
    if dirs.get("made"):
        parts.insert(0, "made " + ", ".join(dirs["made"]))
    if repair:
        parts.append(
            "re-syncing " + ", ".join(f"{model} {v} ({summary(problems[str(v)])})" for v in repair)
        )
    if recorded:
        parts.append(f"recorded {', '.join(str(v) for v in recorded)}")
    module.exit_json(
        changed=bool(repair) or bool(dirs.get("made")),
        **({"found": dirs["found"]} if dirs else {}),
        repair=repair,
        problems=problems,
        hashed_files=hashed_files,
        hashed_bytes=hashed_bytes,
        recorded=recorded,
        msg=f"{model}: " + "; ".join(parts),
    )


def _kept(record_file: str) -> tuple[int, int | None]:
    """The repair count and time of an existing record (a record written again keeps them)."""
    old = read_record(record_file)
    return repairs_of(old), last_repair_of(old)


def step_tidy(module: AnsibleModule, model_dir: str) -> None:
    staging_prefix = plain_prefix(module, "staging_prefix")
    record_prefix = plain_prefix(module, "record_prefix")
    wanted = sorted({int(v) for v in module.params["wanted"]})
    names = leftovers(model_dir, wanted, staging_prefix, record_prefix)
    freed = 0
    for name in names:
        path = os.path.join(model_dir, name)
        freed += tree_size(path)
        if not module.check_mode:
            try:
                remove_tree(path)
            except OSError as err:
                module.fail_json(msg=f"cannot remove {path}: {err}", removed=names)
    model = os.path.basename(model_dir)
    module.exit_json(
        changed=bool(names),
        removed=names,
        freed_bytes=freed,
        msg=f"{model}: "
        + (f"removed {', '.join(names)} ({human_size(freed)})" if names else "nothing to remove"),
    )


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "step": {"type": "str", "choices": ["check", "tidy", "metrics"], "default": "check"},
            "model_dir": {"type": "path"},
            "sources": {"type": "dict", "default": {}},
            "retired_dir": {"type": "path"},
            "verify": {"type": "str", "choices": ["stat", "full"], "default": "stat"},
            "owner": {"type": "str", "default": ""},
            "wanted": {"type": "list", "elements": "int", "default": []},
            "models_dir": {"type": "path"},
            "models": {"type": "dict", "default": {}},
            "staging_prefix": {"type": "str", "default": ".tfs-fleet-incoming-"},
            "record_prefix": {"type": "str", "default": ".tfs-fleet-published-"},
        },
        required_if=[
            ("step", "check", ("model_dir",)),
            ("step", "tidy", ("model_dir",)),
            ("step", "metrics", ("models_dir",)),
        ],
        supports_check_mode=True,
    )
    step: str = module.params["step"]
    if step == "metrics":
        models: dict[str, list[int]] = {}
        for name, versions in (module.params["models"] or {}).items():
            if not isinstance(versions, list) or not all(str(v).isdigit() for v in versions):
                module.fail_json(msg=f"models[{name!r}] must be a list of version numbers")
            models[str(name)] = [int(v) for v in versions]
        text = metrics_text(
            module.params["models_dir"], models, plain_prefix(module, "record_prefix")
        )
        module.exit_json(changed=False, metrics=text)
    model_dir: str = module.params["model_dir"].rstrip("/")
    if os.path.lexists(model_dir) and not os.path.isdir(model_dir):
        module.fail_json(msg=f"model_dir {model_dir} is not a directory")
    if step == "tidy":
        step_tidy(module, model_dir)
    step_check(module, model_dir)


if __name__ == "__main__":
    main()
