# Copyright: tfs-fleet developers
# Apache License 2.0
"""The attributes the collection's modules share (extends_documentation_fragment)."""

from __future__ import annotations


class ModuleDocFragment:
    # Full check mode and diff mode: tfs_fleet.common.attributes
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
author:
  - tfs-fleet developers
"""

    # Full check mode, no diff: tfs_fleet.common.attributes.check_only
    CHECK_ONLY = r"""
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
author:
  - tfs-fleet developers
"""
