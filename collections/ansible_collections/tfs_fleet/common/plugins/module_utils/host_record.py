# Copyright: tfs-fleet developers
# Apache License 2.0
"""The host's deployment record (/etc/tfs-fleet/serving-state.json): what the host serves now
and the states before. One record per host, written by the roles that change the host
(tfserving_models: the model versions and labels, tfserving: the image and its containers) and
read by everyone else (the rollout's snapshot and rollback, the drift metrics).

    {"current":  {"image": ..., "image_id": ..., "containers": [...], "models": {name: [v, ...]},
                  "labels": {name: {label: v}}, "recorded_utc": ..., "recorded_by": ...},
     "previous": <the current before the last change>,
     "history":  [<previous>, <the one before>, ...],   (newest first, bounded)
     "drained":  {"by": "tfs-fleet", "reason": ..., "at": ..., "hold": false}}   (only while
                 the tool holds the host drained on the load balancers: set by its drain, gone
                 after its undrain; hold: left drained on purpose after a failed change)

Pure Python, for Python 3.8 and later (it runs on the managed hosts)."""

from __future__ import annotations

import copy
from typing import Any

from ansible_collections.tfs_fleet.common.plugins.module_utils.json_file import same

# Keys that say when and by whom a state was recorded; they are no part of the state.
STAMP_KEYS = ("recorded_utc", "recorded_by")
# Who drained a host, in the record's drain note: only the tool's own drains are undone by it.
DRAINED_BY = "tfs-fleet"


def state_of(entry: Any) -> dict[str, Any]:
    """A recorded state without its stamp."""
    if not isinstance(entry, dict):
        return {}
    return {k: v for k, v in entry.items() if k not in STAMP_KEYS}


def normalise(record: Any) -> dict[str, Any]:
    """A record in today's form from whatever the file held (older files lack history)."""
    if not isinstance(record, dict):
        record = {}
    current = record.get("current") if isinstance(record.get("current"), dict) else {}
    previous = record.get("previous") if isinstance(record.get("previous"), dict) else {}
    history = [h for h in record.get("history", []) if isinstance(h, dict)]
    if previous and not history:
        history = [previous]
    out = {"current": current, "previous": history[0] if history else {}, "history": history}
    drained = record.get("drained")
    if isinstance(drained, dict) and drained:
        out["drained"] = drained
    return out


def set_drained(record: Any, note: dict[str, Any] | None, at: str) -> tuple[dict[str, Any], bool]:
    """The record with its drain note set (``note``: reason, hold) or cleared (``note`` empty);
    (record, changed). The current state and the history are untouched. A note with the same
    reason and hold is kept as it was (its time too), so a re-run changes nothing."""
    out = normalise(record)
    old = out.get("drained", {})
    if not note:
        out.pop("drained", None)
        return out, bool(old)
    unknown = set(note) - {"reason", "hold"}
    if unknown:
        raise ValueError(f"drained: unknown key(s) {', '.join(sorted(unknown))} (reason, hold)")
    wanted = {"reason": str(note.get("reason") or ""), "hold": bool(note.get("hold", False))}
    if not wanted["reason"]:
        raise ValueError("drained: a reason is needed (why the host is drained)")
    if old.get("by") == DRAINED_BY and all(old.get(k) == v for k, v in wanted.items()):
        return out, False
    out["drained"] = {"by": DRAINED_BY, **wanted, "at": at}
    return out, True


def drained_by_us(record: Any) -> dict[str, Any]:
    """The record's drain note when the tool set it, else {}."""
    note = normalise(record).get("drained", {})
    return note if note.get("by") == DRAINED_BY else {}


def apply(
    record: Any, update: dict[str, Any], stamp: dict[str, str], keep: int
) -> tuple[dict[str, Any], bool]:
    """The record with ``update``'s keys set in ``current``; (record, changed).

    Unchanged state: the record as it was (no new stamp, so a re-run changes nothing). A
    changed state moves the old current to the front of the history (at most ``keep``)."""
    if keep < 1:
        raise ValueError(f"history must keep at least 1 state (got {keep})")
    old = normalise(record)
    wanted = state_of(old["current"])
    for key, value in update.items():
        if key in STAMP_KEYS:
            raise ValueError(f"update: {key} is set by the record itself")
        wanted[key] = copy.deepcopy(value)
    before = state_of(old["current"])
    if before and same(wanted, before):
        return old, False
    extra = {"drained": old["drained"]} if "drained" in old else {}
    history = old["history"]
    # A state that only gains keys it never had is being completed (the models role wrote its
    # part, the serving role adds the image): not a new state, no history entry.
    completed = all(k in wanted and same(wanted[k], v) for k, v in before.items())
    if before and not completed:
        history = [old["current"], *history]
    history = history[:keep]
    new_current = {**wanted, **stamp}
    return {
        "current": new_current,
        "previous": history[0] if history else {},
        "history": history,
        **extra,
    }, True
