#!/usr/bin/python
# Copyright: tfs-fleet developers
# Apache License 2.0
"""Documentation of the model_sources action (the work is done on the controller)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_sources
short_description: Find the model versions in the export base and hash the wanted ones (cached)
version_added: "0.1.0"
description:
  - Runs on the controller (an action plugin), reading only; nothing is written under
    O(export_base).
  - A version is what TensorFlow Serving loads - every child of C(<export_base>/<model>) whose
    name TF Serving's C(absl::SimpleAtoi) reads as a number, whatever wrote it
    (scripts/export_model.py, TF1 C(SavedModelBuilder), C(tf.saved_model.save), Keras 3
    C(model.export) method, TFX Pusher timestamps). Leading zeros are fine (C(007) is version 7);
    other children are ignored.
  - Refused, naming the directory and the fix - a name TF Serving would read as a version but
    that is not published (negative, a sign, leading or trailing whitespace, beyond int64), two
    names of one number (C(7) and C(007)), a version that is a file or holds none of
    C(saved_model.pb), C(saved_model.pbtxt), C(saved_model.cpb) (a half-written training
    output), a symbolic link or special file inside a version (the version directory itself may
    be a link), a missing export base or model directory.
  - With O(checksums), every regular file of every wanted version is hashed (sha256 and size).
    The wanted versions of an entry of O(models) are its C(versions), else the newest C(keep),
    else the newest O(default_keep) - the rule of the C(tfs_fleet.common.model_plan) filter (one
    function, module_utils/model_sources.py C(wanted_versions)); several entries of one model
    (the lists of several hosts) want the union of theirs. The other versions are found and
    checked as above but never opened - an export base with a hundred old versions costs their
    listing, not their bytes. An entry that rule refuses (a requested version not exported,
    C(keep) below 1, no version at all) adds nothing to hash and does not fail this task;
    C(tfs_fleet.common.model_plan) fails on it, naming C(tfserving_models_list[<model>]).
  - Hashes are cached in O(cache_dir), one JSON file per version directory, each file keyed by
    (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns) - an unchanged version is never opened
    again (only listed and stat'ed), a changed file is hashed again (its ctime moves even when
    its mtime is set back). A file changed within 2 seconds of its hashing is not cached.
  - A version with the export manifest of scripts/export_model.py (C(tfs_fleet_manifest.json))
    must match it (every other file, size and sha256), else the task fails naming the file. The
    manifest is an ordinary file of the table.
options:
  export_base:
    description: Controller directory, C(<export_base>/<model>/<version>/).
    type: path
    required: true
  models:
    description:
      - The models (C(tfserving_models_list)); each entry's C(name), C(versions) and C(keep) are
        read, the last two only with O(checksums) (which versions to hash).
      - One model may come in several entries (the lists of several hosts), its versions found
        once.
    type: list
    elements: dict
    required: true
  cache_dir:
    description:
      - Where the hashes are cached (created, mode 0700, if missing). Never inside
        O(export_base) or a model or version directory (refused).
      - Default C($XDG_CACHE_HOME/tfs-fleet/model-hashes), else
        C(~/.cache/tfs-fleet/model-hashes).
    type: path
  checksums:
    description: Hash the files. C(false) only finds and checks the versions, hashing nothing.
    type: bool
    default: true
  default_keep:
    description:
      - Versions wanted of an entry that sets neither C(versions) nor C(keep)
        (C(tfserving_models_keep)).
      - Left out, such an entry wants every version of its model (all are hashed).
    type: int
attributes:
  check_mode:
    support: full
author:
  - tfs-fleet developers
"""

EXAMPLES = r"""
- name: Find the exported versions on the controller and hash the ones to deploy
  tfs_fleet.common.model_sources:
    export_base: /srv/exports
    models: "{{ tfserving_models_list }}"
    default_keep: "{{ tfserving_models_keep }}"
    cache_dir: "{{ tfserving_models_hash_cache_dir }}"
  register: _sources
  run_once: true
  check_mode: false
"""

RETURN = r"""
models:
  description:
    - Per model, C(model_dir) and C(versions), version number (a string) -> C(path) (the
      version directory), C(dir_name) (its name, e.g. C(007)), C(format) (C(pb), C(pbtxt) or
      C(cpb)), C(export_manifest) (it has tfs_fleet_manifest.json).
    - With O(checksums), each wanted version also has C(files), relative path -> C(sha256) and
      C(size), and C(manifest_sha256), the sha256 of the canonical JSON of C(files) (sorted keys,
      no spaces). The versions no entry wants have neither.
  returned: success
  type: dict
stats:
  description: >-
    C(versions) (found), C(hashed_versions) (wanted, given a files table), C(files) (of the
    wanted versions), C(hashed_files), C(hashed_bytes), C(cached_files) (taken from the cache,
    not opened), C(seconds).
  returned: success
  type: dict
"""
