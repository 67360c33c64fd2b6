#!/usr/bin/python
# Copyright: tfs-fleet developers
# Apache License 2.0
"""Verify a staged SavedModel version against the controller's files table (or its manifest),
then publish it atomically."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_version_publish
short_description: Verify a staged model version against a files table and publish it atomically
version_added: "0.1.0"
description:
  - A model version is transferred into a staging directory whose name is not a number, so
    TensorFlow Serving (which loads only numeric directories) never sees it half-written.
  - This module checks every file of the staging directory against the table of the version -
    same set of files, same sizes, same sha256. Only then it renames the staging directory to
    its numeric name on the same filesystem, which is atomic.
  - The table is O(files), the controller's (tfs_fleet.common.model_sources hashes any
    SavedModel there; a tfs_fleet_manifest.json in the version is an ordinary file of it, nothing
    is needed in the staging directory). Without O(files), the table is the version's own
    manifest (C(tfs_fleet_manifest.json), written by scripts/export_model.py), itself checked
    against O(manifest_sha256) when given.
  - An existing published version is replaced only with O(replace). Without it, when O(dest)
    exists and matches the table, the version counts as published and a leftover staging
    directory is removed; when it does not match (an empty or foreign directory), the module
    fails and names it.
  - With O(record), a publish record is written (C(.tfs-fleet-published-<v>.json) beside the
    version) - each file's sha256 and size from the table and its size, mtime, ctime and inode
    as published - which tfs_fleet.common.published_versions compares each run without reading
    the files.
  - Refused before anything moves - a staging directory that is a symbolic link, any symbolic
    link or special file inside it (a linked directory would be published unverified), an empty
    O(files) or one whose entries lack a sha256 or a size, a manifest that is not JSON or whose
    entries lack a sha256, and an empty or malformed O(manifest_sha256).
options:
  staging:
    description: The staging directory holding the transferred version.
    type: path
    required: true
  dest:
    description: The published directory, C(<models dir>/<model>/<version>).
    type: path
    required: true
  files:
    description:
      - The version's files table from the controller, relative path -> C(sha256) (64 hex
        digits) and C(size) (bytes); the staged directory must hold exactly these files.
      - Given, it must list at least one file. Not together with O(manifest_sha256).
    type: dict
  manifest_sha256:
    description:
      - Without O(files) - sha256 of the manifest on the controller. When given, the staged
        manifest must match it, so a stale or foreign manifest in the staging directory is
        refused.
      - Given, it must be 64 hex digits; an empty string is refused (it would skip the check).
    type: str
  manifest_name:
    description: Without O(files) - file name of the manifest inside the version directory.
    type: str
    default: tfs_fleet_manifest.json
  record:
    description:
      - Path of the publish record to write once the version is published (or found
        published), beside the version, not inside it. Needs O(files). Empty - no record.
    type: path
  replace:
    description:
      - When O(dest) exists (a published version that no longer matches, staged again by
        tfs_fleet.common.published_versions and repaired by the transfer), the verified staging
        directory takes its place - swapped atomically where the filesystem can (Linux
        renameat2), else two renames a moment apart - and the old copy is removed. The
        record's repair count goes up by one. O(dest) is not read.
    type: bool
    default: false
extends_documentation_fragment:
  - tfs_fleet.common.attributes.check_only
"""

EXAMPLES = r"""
- name: Publish version 3 of half_plus_two (the table from tfs_fleet.common.model_sources)
  tfs_fleet.common.model_version_publish:
    staging: /srv/tfserving/models/half_plus_two/.tfs-fleet-incoming-3
    dest: /srv/tfserving/models/half_plus_two/3
    files:
      saved_model.pb:
        sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        size: 4
"""

RETURN = r"""
verified_files:
  description: Number of files checked against the table.
  returned: when the version was published (or would be, in check mode)
  type: int
replaced:
  description: Whether a published O(dest) was replaced (O(replace)).
  returned: when the version was published (or would be, in check mode)
  type: bool
"""

import os
import shutil
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tfs_fleet.common.plugins.module_utils.model_manifest import (
    MANIFEST_NAME,
    SHA256_RE,
    ManifestError,
    check_files_table,
    verify,
    verify_files,
)
from ansible_collections.tfs_fleet.common.plugins.module_utils.published_versions import (
    last_repair_of,
    make_record,
    read_record,
    repairs_of,
    replace_dir,
    write_record,
)


def summary(problems: list[str]) -> str:
    shown = "; ".join(problems[:10])
    return shown + (f" (+{len(problems) - 10} more)" if len(problems) > 10 else "")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "staging": {"type": "path", "required": True},
            "dest": {"type": "path", "required": True},
            "files": {"type": "dict"},
            "manifest_sha256": {"type": "str"},
            "manifest_name": {"type": "str", "default": MANIFEST_NAME},
            "record": {"type": "path"},
            "replace": {"type": "bool", "default": False},
        },
        mutually_exclusive=[("files", "manifest_sha256")],
        required_by={"record": ("files",)},
        supports_check_mode=True,
    )
    staging: str = module.params["staging"].rstrip("/")
    dest: str = module.params["dest"].rstrip("/")
    manifest_name: str = module.params["manifest_name"]
    files: dict[str, Any] | None = module.params["files"]
    manifest_sha256: str | None = module.params["manifest_sha256"]
    record: str | None = module.params["record"] or None
    replace: bool = module.params["replace"]
    if files is not None and not files:
        module.fail_json(
            msg="files is empty: a version has at least one file; give the controller's files "
            "table of the version (tfs_fleet.common.model_sources), or leave the option out"
        )
    if files is not None:
        try:
            check_files_table(files, "files", require_size=True)
        except ManifestError as err:
            module.fail_json(
                msg=f"{err}: give the controller's files table of the version "
                "(tfs_fleet.common.model_sources), or leave the option out"
            )
    if manifest_sha256 is not None:
        manifest_sha256 = manifest_sha256.strip().lower()
        if not SHA256_RE.match(manifest_sha256):
            module.fail_json(
                msg=f"manifest_sha256 {module.params['manifest_sha256']!r} is not a sha256 "
                "(64 hex digits); give the controller manifest's sha256, or leave the option out"
            )
    if "/" in manifest_name or manifest_name in {"", ".", ".."}:
        module.fail_json(msg=f"manifest_name {manifest_name!r} must be a plain file name")
    if os.path.basename(staging).isdigit():
        module.fail_json(msg=f"staging {staging} has a numeric name: TF Serving would load it")
    if os.path.dirname(staging) != os.path.dirname(dest):
        module.fail_json(msg=f"staging {staging} and dest {dest} must share a parent directory")
    if record is not None and (
        os.path.dirname(record) != os.path.dirname(dest) or os.path.basename(record).isdigit()
    ):
        module.fail_json(
            msg=f"record {record} must be a non-numeric file beside {dest} (not inside it)"
        )

    def write_the_record(repairs: int = 0, repaired_at: int | None = None) -> None:
        if record is not None and files is not None and not module.check_mode:
            write_record(record, make_record(dest, files, repairs, repaired_at))

    def check(root: str) -> tuple[int, list[str]]:
        if files is not None:
            return verify_files(root, files)
        return verify(root, manifest_name, manifest_sha256)

    replacing = replace and os.path.lexists(dest)
    if os.path.lexists(dest) and not replacing:
        count, problems = check(dest)
        if problems:
            module.fail_json(
                msg=f"{dest} exists but is not this version ({summary(problems)}); it was left "
                "alone: move it aside, then run again",
                problems=problems,
            )
        leftover = os.path.lexists(staging)
        if leftover and not module.check_mode:
            if os.path.islink(staging) or not os.path.isdir(staging):
                os.unlink(staging)
            else:
                shutil.rmtree(staging)
        if record is not None and files is not None:
            old = read_record(record)
            write_the_record(repairs_of(old), last_repair_of(old))
        module.exit_json(
            changed=leftover,
            verified_files=count,
            dest=dest,
            msg=f"{dest} is already published"
            + ("; the leftover staging directory was removed" if leftover else ""),
        )
    if os.path.islink(staging):
        module.fail_json(
            msg=f"staging {staging} is a symbolic link: refusing to publish a link out of the "
            "models directory"
        )
    if not os.path.isdir(staging):
        module.fail_json(msg=f"staging directory {staging} does not exist: transfer it first")

    count, problems = check(staging)
    if problems:
        table = "the controller's files table" if files is not None else "its manifest"
        module.fail_json(
            msg=f"{staging} does not match {table}, so {dest} was not published: "
            f"{summary(problems)}",
            problems=problems,
        )
    if replacing:
        repairs = repairs_of(read_record(record) if record is not None else None) + 1
        if not module.check_mode:
            try:
                replace_dir(staging, dest)
            except OSError as err:
                module.fail_json(msg=f"{staging} was verified but could not replace {dest}: {err}")
        write_the_record(repairs, int(time.time()))
        module.exit_json(
            changed=True,
            verified_files=count,
            dest=dest,
            replaced=True,
            msg=f"{dest} no longer matched: re-synced from the controller, verified "
            f"({count} files) and published again",
        )
    if not module.check_mode:
        os.rename(staging, dest)
    write_the_record()
    module.exit_json(changed=True, verified_files=count, dest=dest, replaced=False)


if __name__ == "__main__":
    main()
