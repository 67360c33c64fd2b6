#!/usr/bin/python
# Copyright: tfs-fleet developers
# Apache License 2.0
"""Ask a registry for a manifest's digest before anything is pulled (module_utils/registry_probe)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: registry_manifest
short_description: Read an image manifest's digest from a registry, or say why it cannot be read
version_added: "0.1.0"
description:
  - Sends C(HEAD /v2/<repository>/manifests/<reference>) to the registry (Docker Registry HTTP
    API v2) from the host, with HTTP Basic credentials, or a Bearer token got with them from the
    registry's realm, trusting O(ca) (PEM content, held in memory; nothing is written) or else
    the system's CAs. Nothing is pulled and nothing changes on the host, in check mode too.
  - On failure it returns C(reason) (V(unreachable), V(tls), V(auth), V(not_found),
    V(digest_mismatch) or V(error)) and C(failed), so that a role can name the variable to fix
    before anything on the host changes.
extends_documentation_fragment: [tfs_fleet.common.attributes.check_only]
options:
  registry:
    description: The registry as C(host[:port]).
    type: str
    required: true
  scheme:
    description: V(https), or V(http) for a loopback registry without TLS.
    type: str
    choices: [https, http]
    default: https
  repository:
    description: The repository path inside the registry (C(ml/tensorflow-serving)).
    type: str
    required: true
  reference:
    description: A tag, or a digest C(sha256:<64 hex>) that the answer must carry.
    type: str
    required: true
  username:
    description: Registry user; empty, no credentials.
    type: str
    default: ""
  password:
    description: Its password.
    type: str
    default: ""
  ca:
    description: PEM content of the CA to trust; empty, the system's CAs.
    type: str
    default: ""
  timeout:
    description: Seconds per request.
    type: float
    default: 10
"""

EXAMPLES = r"""
- name: Check that the pinned image is in the registry
  tfs_fleet.common.registry_manifest:
    registry: registry.internal:5000
    repository: ml/tensorflow-serving
    reference: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    username: puller
    password: "{{ vault_puller_password }}"
    ca: "{{ lookup('ansible.builtin.file', 'fleet-ca.crt') }}"
  register: manifest
"""

RETURN = r"""
digest:
  description: The manifest's digest (C(Docker-Content-Digest)).
  returned: success
  type: str
media_type:
  description: Its media type.
  returned: success
  type: str
reason:
  description: Why the manifest could not be read (empty on success).
  returned: always
  type: str
url:
  description: The URL asked.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tfs_fleet.common.plugins.module_utils.registry_probe import (
    ProbeError,
    manifest_url,
    probe,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "registry": {"type": "str", "required": True},
            "scheme": {"type": "str", "choices": ["https", "http"], "default": "https"},
            "repository": {"type": "str", "required": True},
            "reference": {"type": "str", "required": True},
            "username": {"type": "str", "default": ""},
            "password": {"type": "str", "default": "", "no_log": True},
            "ca": {"type": "str", "default": ""},
            "timeout": {"type": "float", "default": 10.0},
        },
        supports_check_mode=True,
    )
    p = module.params
    url = manifest_url(p["scheme"], p["registry"], p["repository"], p["reference"])
    try:
        found = probe(
            url,
            p["repository"],
            p["reference"],
            p["username"],
            p["password"],
            p["ca"],
            p["timeout"],
        )
    except ProbeError as exc:
        module.fail_json(msg=f"{url}: {exc.detail}", reason=exc.reason, url=url)
    module.exit_json(changed=False, reason="", url=url, **found)


if __name__ == "__main__":
    main()
