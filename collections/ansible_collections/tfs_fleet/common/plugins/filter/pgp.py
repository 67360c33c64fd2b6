# Copyright: tfs-fleet contributors
# Apache-2.0
"""OpenPGP key filters: pgp_fingerprints (of a slurped key file) and pgp_fingerprint_normalize."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.tfs_fleet.common.plugins.module_utils import pgp_keys

DOCUMENTATION = r"""
name: pgp_fingerprints
short_description: The fingerprints of the OpenPGP keys in a key file
description:
  - Takes a key file's content (armored or binary; base64-encoded as C(ansible.builtin.slurp)
    returns it, unless O(encoded) is false) and returns the fingerprint of every primary key and
    subkey in it, upper-case hex, so that a role can check a repository key against pinned fingerprints
    before trusting it.
  - The same file holds C(pgp_fingerprint_normalize) (spaces and a C(0x) prefix removed, upper
    case).
positional: encoded
options:
  _input:
    description: The key file's content.
    type: str
    required: true
  encoded:
    description: Whether the content is base64 (as slurp returns it).
    type: bool
    default: true
"""


def pgp_fingerprints(content: str, encoded: bool = True) -> list[str]:
    """Fingerprints (upper-case hex) of the keys in a key file (base64, as slurp returns it)."""
    try:
        return pgp_keys.fingerprints(content, encoded=encoded)
    except pgp_keys.PgpKeyError as exc:
        raise AnsibleFilterError(f"tfs_fleet.common.pgp_fingerprints: {exc}") from exc


class FilterModule:
    """tfs_fleet.common OpenPGP filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "pgp_fingerprints": pgp_fingerprints,
            "pgp_fingerprint_normalize": pgp_keys.normalize,
        }
