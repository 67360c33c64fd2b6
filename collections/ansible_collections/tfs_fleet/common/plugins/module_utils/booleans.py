# Copyright: tfs-fleet developers
# Apache License 2.0
"""The one answer to "is this value a boolean, and which one", by Ansible's own rules.

Values of ``type: bool`` options arrive as YAML booleans, or as strings (``-e key=value``,
INI inventories): ``"false"`` is a true value to Python and to Jinja. Every role reads such an
option through Ansible's ``| bool`` filter, and the Python side (the preflight, the filters)
through ``as_bool`` here, so that a value means the same everywhere.

Ansible has two sets of rules: argument specs' ``type: bool`` (``convert_bool.boolean``, the
spellings of ``BOOLEANS_TRUE``/``BOOLEANS_FALSE``) and the Jinja ``bool`` filter, which knows
fewer spellings (ansible-core 2.19 reads ``y``, ``t``, ``n``, ``f``, whitespace-padded strings
and floats as false, with a deprecation warning). A value is a boolean here only where both
agree, so a value the preflight lets through can never flip in a role.
"""

from __future__ import annotations

from typing import Any

from ansible.module_utils.parsing.convert_bool import BOOLEANS_FALSE, BOOLEANS_TRUE, boolean

# The spellings of convert_bool that the Jinja `bool` filter reads the same way.
_FILTER_UNKNOWN = frozenset({"y", "t", "n", "f"})
SPELLINGS = frozenset(
    s for s in BOOLEANS_TRUE | BOOLEANS_FALSE if isinstance(s, str) and s not in _FILTER_UNKNOWN
)
ACCEPTS = "a boolean: true or false (also yes/no, on/off, 1/0, any case)"


def as_bool(value: Any) -> bool | None:
    """True or False when ``value`` is a boolean by Ansible's rules (a bool, the integers 0 and
    1, or the strings true/false, yes/no, on/off, 1/0 in any case); None when it is not one
    (``"flase"``, ``2``, ``None``, ``" true"``, a list)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value.lower() not in SPELLINGS:
            return None
    elif not isinstance(value, int) or value not in (0, 1):
        return None
    return boolean(value, strict=True)
