# Copyright: tfs-fleet developers
# Apache License 2.0
"""HAProxy's runtime API on a unix socket (management.txt, section 9.3): commands, `show stat`
and `show servers state`, and the admin-state flags of a server."""

from __future__ import annotations

import csv
import socket
from typing import Any

# srv_admin_state bits (include/haproxy/server-t.h, enum srv_admin).
ADMF_FMAINT = 0x01  # forced maintenance (set server ... state maint / disable server)
ADMF_IMAINT = 0x02  # maintenance inherited from a tracked server
ADMF_CMAINT = 0x04  # maintenance from the configuration (server ... disabled)
ADMF_FDRAIN = 0x08  # forced drain (set server ... state drain)
ADMF_IDRAIN = 0x10  # drain inherited from a tracked server
ADMF_RMAINT = 0x20  # maintenance because the address did not resolve
ADMF_HMAINT = 0x40  # maintenance from `set server ... fqdn` / resolution

STATES = ("ready", "drain", "maint")


class RuntimeError_(Exception):
    """The socket is missing, refused the command or answered with an error."""


def command(path: str, line: str, timeout: float = 10.0) -> str:
    """Send one command line (several commands may be separated by ';'); return the answer.
    Non-interactive mode: HAProxy answers and closes the connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        except OSError as exc:
            raise RuntimeError_(f"HAProxy runtime socket {path}: {exc}") from exc
    return b"".join(chunks).decode(errors="replace")


def parse_stat(text: str) -> list[dict[str, str]]:
    """`show stat` CSV (its header starts with '# ')."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("# "):
        raise RuntimeError_(f"unexpected `show stat` answer: {text[:200]!r}")
    lines[0] = lines[0][2:]
    return [dict(row) for row in csv.DictReader(lines)]


def parse_servers_state(text: str) -> list[dict[str, str]]:
    """`show servers state`: a format version line, a '# ' header, then space-separated rows."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    header = next((ln for ln in lines if ln.startswith("# ")), None)
    if header is None:
        raise RuntimeError_(f"unexpected `show servers state` answer: {text[:200]!r}")
    names = header[2:].split()
    rows = []
    for line in lines:
        if line.startswith("#") or line.strip().isdigit():
            continue
        values = line.split()
        rows.append(dict(zip(names, values, strict=False)))
    return rows


def admin_flags(row: dict[str, str]) -> int:
    return int(row.get("srv_admin_state", "0"))


def needs_change(flags: int, state: str) -> bool:
    """Whether `set server ... state <state>` would change the server's forced admin state."""
    if state == "ready":
        return bool(flags & (ADMF_FMAINT | ADMF_FDRAIN))
    if state == "drain":
        return not flags & ADMF_FDRAIN or bool(flags & ADMF_FMAINT)
    if state == "maint":
        return not flags & ADMF_FMAINT
    raise ValueError(state)


ADMF_ANY_MAINT = ADMF_FMAINT | ADMF_IMAINT | ADMF_CMAINT | ADMF_RMAINT | ADMF_HMAINT
ADMF_ANY_DRAIN = ADMF_FDRAIN | ADMF_IDRAIN


def admin_state(flags: int) -> str:
    """What the server's admin state amounts to, forced or inherited from the server it tracks:
    maint, drain or ready."""
    if flags & ADMF_ANY_MAINT:
        return "maint"
    if flags & ADMF_ANY_DRAIN:
        return "drain"
    return "ready"


def describe(row: dict[str, Any]) -> str:
    return (
        f"{row.get('pxname')}/{row.get('svname')}: status {row.get('status')}, "
        f"sessions {row.get('scur')}, check {row.get('check_status') or '-'} "
        f"{row.get('last_chk') or ''}".rstrip()
    )
