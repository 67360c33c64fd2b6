#!/usr/bin/python
# Copyright: tfs-fleet developers
# Apache License 2.0
"""Documentation of the preflight_check action (the work is done on the controller)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: preflight_check
short_description: Check the roles' variables before any host changes
version_added: "0.1.0"
description:
  - Runs on the controller (an action plugin). For each role named in O(roles) it takes the
    effective value of every option of the role's C(meta/argument_specs.yml) (the host's value,
    else the role default) and checks what an argument spec cannot express - port ranges and
    collisions, model names, duplicate models, retention counts, overlapping directories,
    absolute paths, listen addresses, image version and digest, registry credentials in pairs,
    labels on versions the version policy does not load.
  - Reads the controller's file system where a value points there - golden files, and the
    versions in C(tfserving_models_export_base) (found as TF Serving finds them). Every version
    label must point at a version that was exported and that its model entry serves.
  - Every variable the host sees that carries a role's prefix (C(docker_), C(tfserving_), ...)
    but is neither an option nor a fact of a role is reported, with a "did you mean".
  - Fails with one line per problem, naming the variable, the value and what it accepts.
options:
  roles_dir:
    description: The project's roles directory (every role's argument spec is read from it).
    type: path
    required: true
  roles:
    description: Roles whose variables are checked.
    type: list
    elements: str
    required: true
attributes:
  check_mode:
    support: full
author:
  - tfs-fleet developers
"""

EXAMPLES = r"""
- name: Check every role's variables
  tfs_fleet.common.preflight_check:
    roles_dir: "{{ playbook_dir }}/../roles"
    roles: [docker, tfserving_models, tfserving]
"""

RETURN = r"""
problems:
  description: One sentence per problem found.
  returned: always
  type: list
  elements: str
"""
