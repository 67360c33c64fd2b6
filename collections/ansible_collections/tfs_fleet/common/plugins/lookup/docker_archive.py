# Copyright: tfs-fleet contributors
# Apache-2.0
from __future__ import annotations

DOCUMENTATION = r"""
name: docker_archive
author: tfs-fleet contributors
short_description: Describe the image in a docker save tarball on the controller
description:
  - Reads C(manifest.json) and the config blob of a C(docker save) tarball (classic or OCI
    layout, optionally compressed) and returns the image ID (sha256 of the config blob), the
    image's tags and the reference to run, without a Docker engine on the controller.
  - Used by the tfserving_image role to ship nothing when a host already has that image ID.
options:
  _terms:
    description: Path of the tarball (absolute, or relative to the play's files search path).
    required: true
  reference:
    description: The image (repository:tag) to select when the tarball holds several; empty
      selects the only one.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Show the image ID of a saved image
  ansible.builtin.debug:
    msg: "{{ lookup('tfs_fleet.common.docker_archive', '/srv/images/serving.tar')['image_id'] }}"
"""

RETURN = r"""
_raw:
  description: One dictionary per path.
  type: list
  elements: dict
  contains:
    path: {description: Resolved path of the tarball., type: str}
    image_id: {description: "Image ID, sha256:<hex>.", type: str}
    repo_tags: {description: Tags of the selected image., type: list}
    reference: {description: The reference the image is known by after docker load., type: str}
    layers: {description: Number of layers., type: int}
"""

import os
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.tfs_fleet.common.plugins.module_utils.docker_archive import (
    DockerArchiveError,
    read_archive,
)


class LookupModule(LookupBase):
    """tfs_fleet.common.docker_archive lookup."""

    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list:
        self.set_options(var_options=variables, direct=kwargs)
        reference = self.get_option("reference") or ""
        results = []
        for term in terms:
            path = str(term)
            if not os.path.isabs(path):
                found = self.find_file_in_search_path(variables, "files", path, ignore_missing=True)
                path = found or path
            try:
                results.append(read_archive(path, reference))
            except DockerArchiveError as exc:
                raise AnsibleLookupError(f"tfs_fleet.common.docker_archive: {exc}") from exc
        return results
