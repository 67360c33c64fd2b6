# Copyright: tfs-fleet developers
# Apache License 2.0
"""The order in which rendered files list a fleet's hosts: by name, digits compared as numbers.

A group's host order is the inventory's: a static file's lines, but a dynamic inventory's API
answer (a cloud's instance list, community.docker's container list), which can change between
two runs over the same hosts. A file rendered in that order (HAProxy's servers, Prometheus's
scrape targets) would then change on a re-run and reload its service although no host did. The
filters that render such files list hosts in this order instead, so the same hosts always render
the same text (``host-2`` before ``host-10``)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_DIGITS = re.compile(r"(\d+)")


def host_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key of a host name: its runs of digits compare as numbers, the rest as text."""
    return tuple(
        (1, int(part)) if part.isdigit() else (0, part) for part in _DIGITS.split(str(name)) if part
    )


def in_host_order(hosts: Iterable[str]) -> list[str]:
    """The hosts, each once, in host_key order."""
    return sorted(dict.fromkeys(str(h) for h in hosts), key=host_key)
