# Copyright: tfs-fleet developers
# Apache License 2.0
"""Which drained servers a run of tfs-fleet may put back on the load balancers, and which it must
leave alone (issue 23).

The tool notes in the serving host's deployment record (module_utils/host_record.py, key
``drained``) that it drained the host, and why, before it drains it. A run puts a drained host
back only when that note says the tool drained it and does not hold it (``hold``: left drained on
purpose after a failed change). A server drained without such a note (an operator's
``set server ... state drain``) stays drained; so does a held host. Both are reported, and no
task waits for them to come UP. Pure Python (the action plugin lb_drain_plan runs it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# module_utils/host_record.py: DRAINED_BY (kept here too: this file is imported on the controller
# without the record's helpers).
DRAINED_BY = "tfs-fleet"
DRAINED_STATES = ("drain", "maint")
ACTIONS = ("drain", "undrain")


def host_pairs(
    servers: Sequence[Mapping[str, Any]], backends: Sequence[str]
) -> dict[str, list[dict[str, str]]]:
    """Runtime-API pairs per serving host, from the filter lb_servers' entries (name, host)."""
    hosts: dict[str, list[dict[str, str]]] = {}
    for entry in servers:
        name = str(entry["name"])
        host = str(entry.get("host") or name)
        hosts.setdefault(host, []).extend({"backend": b, "server": name} for b in backends)
    return hosts


def _note(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _since(note: Mapping[str, Any]) -> str:
    return f"since {note['at']}" if note.get("at") else "(no time noted)"


def plan(
    action: str,
    servers: Sequence[Mapping[str, Any]],
    backends: Sequence[str],
    admin: Sequence[Mapping[str, str]],
    records: Mapping[str, Any],
) -> dict[str, Any]:
    """The plan for ``action`` (drain: about to drain; undrain: about to put hosts back).

    ``admin``: one mapping per load balancer, ``"<backend>/<server>"`` to ready, drain or maint
    (module haproxy_server_state's ``admin``); a balancer that lacks a server says nothing of
    it. ``records``: the drain note of each host's deployment record ({} when none).

    Returns ``record`` (drain: hosts whose drain is the tool's, to note before draining),
    ``undrain`` (pairs to set ready, then wait UP), ``forget`` (hosts whose note to remove once
    they are back), ``wait`` (pairs expected UP: every pair but the kept ones), ``kept`` (hosts
    left drained: host, servers, why - operator or hold -, reason, at) and ``warnings``."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)} (got {action!r})")
    out: dict[str, Any] = {
        "record": [],
        "undrain": [],
        "forget": [],
        "wait": [],
        "kept": [],
        "warnings": [],
    }
    for host, pairs in host_pairs(servers, backends).items():
        keys = [f"{p['backend']}/{p['server']}" for p in pairs]
        drained = [k for k in keys if any(a.get(k) in DRAINED_STATES for a in admin)]
        note = _note(records.get(host))
        ours = note.get("by") == DRAINED_BY
        hold = ours and bool(note.get("hold"))
        if hold:
            kept = {"host": host, "servers": drained or keys, "why": "hold"}
            out["kept"].append({**kept, "reason": note.get("reason", ""), "at": note.get("at", "")})
            state = "left drained" if drained else "in service although the note holds it"
            out["warnings"].append(
                f"{host}: held drained by tfs-fleet {_since(note)} ({note.get('reason', '')}): "
                f"{state} ({', '.join(drained or keys)}). Fix the host, then remove the note "
                "(tfs_fleet.common.host_record with drained: {}) for a run to put it back."
            )
            if not drained and action == "undrain":
                out["wait"].extend(pairs)
            continue
        if drained and not ours:
            out["kept"].append({"host": host, "servers": drained, "why": "operator"})
            out["warnings"].append(
                f"{host}: {', '.join(drained)} drained on the load balancer without a tfs-fleet "
                "note in the host's deployment record (drained by hand): "
                + ("drained for the change and " if action == "drain" else "")
                + "left drained; put it back with `set server <backend>/<server> state ready` "
                "on HAProxy's runtime API."
            )
            continue
        if action == "drain":
            out["record"].append(host)
        elif ours:
            # The tool's own drain (this run's, or one a failed run left): back once UP.
            out["undrain"].extend(pairs)
            out["wait"].extend(pairs)
            out["forget"].append(host)
        else:
            out["wait"].extend(pairs)
    return out
