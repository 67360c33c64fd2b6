#!/usr/bin/python
# Copyright: tfs-fleet developers
# Apache License 2.0
"""Verify a staged SavedModel version against its manifest, then publish it atomically."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_version_publish
short_description: Verify a staged model version against its manifest and publish it atomically
version_added: "0.1.0"
description:
  - A model version is transferred into a staging directory whose name is not a number, so
    TensorFlow Serving (which loads only numeric directories) never sees it half-written.
  - This module checks every file of the staging directory against the version's manifest
    (C(tfs_fleet_manifest.json), written by scripts/export_model.py) - same set of files, same
    sizes, same sha256. Only then it renames the staging directory to its numeric name on the
    same filesystem, which is atomic.
  - An existing published version is never replaced.
options:
  staging:
    description: The staging directory holding the transferred version.
    type: path
    required: true
  dest:
    description: The published directory, C(<models dir>/<model>/<version>).
    type: path
    required: true
  manifest_sha256:
    description:
      - sha256 of the manifest on the controller. When given, the staged manifest must match it,
        so a stale or foreign manifest in the staging directory is refused.
    type: str
  manifest_name:
    description: File name of the manifest inside the version directory.
    type: str
    default: tfs_fleet_manifest.json
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
author:
  - tfs-fleet developers
"""

EXAMPLES = r"""
- name: Publish version 3 of half_plus_two
  tfs_fleet.common.model_version_publish:
    staging: /srv/tfserving/models/half_plus_two/.tfs-fleet-incoming-3
    dest: /srv/tfserving/models/half_plus_two/3
"""

RETURN = r"""
verified_files:
  description: Number of files checked against the manifest.
  returned: when the version was published (or would be, in check mode)
  type: int
"""

import hashlib
import json
import os

from ansible.module_utils.basic import AnsibleModule


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def staged_files(root: str, manifest_name: str) -> set[str]:
    found = set()
    for directory, _dirs, files in os.walk(root):
        for name in files:
            rel = os.path.relpath(os.path.join(directory, name), root)
            if rel != manifest_name:
                found.add(rel.replace(os.sep, "/"))
    return found


def verify(staging: str, manifest_name: str, manifest_sha256: str | None) -> tuple[int, list[str]]:
    """Return (files verified, problems); no problems means the staging copy is exact."""
    manifest_path = os.path.join(staging, manifest_name)
    if not os.path.isfile(manifest_path):
        return 0, [f"{manifest_path} is missing"]
    if manifest_sha256 and sha256_file(manifest_path) != manifest_sha256:
        return 0, [f"{manifest_path} differs from the controller's manifest"]
    with open(manifest_path, encoding="utf-8") as handle:
        manifest = json.load(handle)
    expected: dict = manifest.get("files") or {}
    if not expected:
        return 0, [f"{manifest_path} lists no files"]
    problems = []
    present = staged_files(staging, manifest_name)
    for rel in sorted(set(expected) - present):
        problems.append(f"missing: {rel}")
    for rel in sorted(present - set(expected)):
        problems.append(f"not in the manifest: {rel}")
    for rel in sorted(set(expected) & present):
        path = os.path.join(staging, rel)
        entry = expected[rel]
        if "size" in entry and os.path.getsize(path) != entry["size"]:
            problems.append(f"size differs: {rel}")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"sha256 differs: {rel}")
    return len(expected), problems


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "staging": {"type": "path", "required": True},
            "dest": {"type": "path", "required": True},
            "manifest_sha256": {"type": "str"},
            "manifest_name": {"type": "str", "default": "tfs_fleet_manifest.json"},
        },
        supports_check_mode=True,
    )
    staging: str = module.params["staging"]
    dest: str = module.params["dest"]
    if os.path.basename(staging).isdigit():
        module.fail_json(msg=f"staging {staging} has a numeric name: TF Serving would load it")
    if os.path.dirname(staging.rstrip("/")) != os.path.dirname(dest.rstrip("/")):
        module.fail_json(msg=f"staging {staging} and dest {dest} must share a parent directory")
    if os.path.exists(dest):
        module.exit_json(changed=False, msg=f"{dest} is already published")
    if not os.path.isdir(staging):
        module.fail_json(msg=f"staging directory {staging} does not exist: transfer it first")

    count, problems = verify(
        staging, module.params["manifest_name"], module.params["manifest_sha256"]
    )
    if problems:
        shown = "; ".join(problems[:10]) + (
            f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""
        )
        module.fail_json(
            msg=f"{staging} does not match its manifest, so {dest} was not published: {shown}",
            problems=problems,
        )
    if not module.check_mode:
        os.rename(staging, dest)
    module.exit_json(changed=True, verified_files=count, dest=dest)


if __name__ == "__main__":
    main()
