#!/usr/bin/python
# Copyright: tfs-fleet developers
# Apache License 2.0
"""Drain / undrain HAProxy servers through the runtime API and wait for what HAProxy reports."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: haproxy_server_state
short_description: Set HAProxy servers to ready, drain or maint and wait for sessions or health
version_added: "0.1.0"
description:
  - Talks to HAProxy's runtime API on its unix socket (level admin). Sets the admin state of
    several servers with C(set server <backend>/<server> state ready|drain|maint), only where it
    differs (the flags of C(show servers state)), then optionally waits, bounded by O(timeout).
  - O(wait=idle) waits until every server has 0 current sessions (C(scur) of C(show stat)), as a
    drained server gets no new request, so its sessions end.
  - O(wait=up) waits until HAProxy's own health check reports every server C(UP) (a tracking
    server follows the server it tracks). A server that stays down fails the task, naming its
    check status.
  - community.general.haproxy's C(enabled) state sends C(enable server), which does not clear
    the drain state; this module sends C(state ready), which clears both drain and maintenance.
options:
  socket:
    description: Path of the runtime API socket (C(stats socket ... level admin)).
    type: path
    required: true
  servers:
    description: Servers as C({backend, server}) pairs.
    type: list
    elements: dict
    required: true
  state:
    description: Admin state to set; omitted, nothing is set (only the wait).
    type: str
    choices: [ready, drain, maint]
  wait:
    description: What to wait for after setting the state.
    type: str
    choices: [none, idle, up]
    default: none
  timeout:
    description: Seconds the wait may take before the task fails.
    type: float
    default: 60
  interval:
    description: Seconds between two reads of C(show stat).
    type: float
    default: 0.5
  mark_down:
    description:
      - Servers (C({backend, server}), the ones with a health check, not the tracking ones) whose
        health is forced DOWN after the wait (C(set server ... health down)). HAProxy then needs
        C(rise) passing checks in a row to report them UP again, so a later O(wait=up) sees a
        fresh result of the check, never the state from before a restart.
    type: list
    elements: dict
    default: []
  missing:
    description:
      - What to do when the socket does not exist (HAProxy not installed yet) or a server is not
        in its configuration (a host added since the LB was configured). V(skip) reports it and
        changes nothing; V(fail) fails.
    type: str
    choices: [fail, skip]
    default: fail
extends_documentation_fragment:
  - tfs_fleet.common.attributes.check_only
"""

EXAMPLES = r"""
- name: Drain a host's servers and wait until their sessions end
  tfs_fleet.common.haproxy_server_state:
    socket: /run/haproxy/admin.sock
    servers:
      - {backend: tfs_rest, server: gpu-a01}
      - {backend: tfs_grpc, server: gpu-a01}
    state: drain
    wait: idle
    timeout: 60
"""

RETURN = r"""
servers:
  description: show stat rows of the servers at the end (pxname, svname, status, scur, check_status).
  returned: always
  type: list
  elements: dict
admin:
  description:
    - The admin state of each server in O(servers) before this task set any, as
      C({"<backend>/<server>": "ready|drain|maint"}) (forced or inherited from a tracked server).
      Empty when skipped (missing=skip). Without O(state) and O(wait), the task only reads it.
  returned: always
  type: dict
commands:
  description: The commands sent.
  returned: always
  type: list
  elements: str
waited_s:
  description: Seconds spent waiting.
  returned: always
  type: float
skipped_reason:
  description: Why nothing was done (missing=skip).
  returned: when skipped
  type: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tfs_fleet.common.plugins.module_utils import haproxy_runtime as hr

_KEEP = ("pxname", "svname", "status", "scur", "check_status", "last_chk", "chkfail", "lastchg")


def _rows(sock: str) -> dict[tuple[str, str], dict[str, str]]:
    rows = hr.parse_stat(hr.command(sock, "show stat"))
    return {(r["pxname"], r["svname"]): {k: r.get(k, "") for k in _KEEP} for r in rows}


def _done(row: dict[str, str], wait: str) -> bool:
    if wait == "idle":
        return row.get("scur") == "0"
    return row.get("status") == "UP"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "socket": {"type": "path", "required": True},
            "servers": {"type": "list", "elements": "dict", "required": True},
            "state": {"type": "str", "choices": list(hr.STATES)},
            "wait": {"type": "str", "choices": ["none", "idle", "up"], "default": "none"},
            "timeout": {"type": "float", "default": 60},
            "interval": {"type": "float", "default": 0.5},
            "mark_down": {"type": "list", "elements": "dict", "default": []},
            "missing": {"type": "str", "choices": ["fail", "skip"], "default": "fail"},
        },
        supports_check_mode=True,
    )
    p = module.params
    pairs: dict[str, list[tuple[str, str]]] = {"servers": [], "mark_down": []}
    for key, out in pairs.items():
        for item in p[key]:
            if set(item) != {"backend", "server"} or not all(
                isinstance(v, str) and v for v in item.values()
            ):
                module.fail_json(
                    msg=f"{key}: each entry needs exactly backend and server (got {item})"
                )
            out.append((item["backend"], item["server"]))
    wanted = pairs["servers"]
    result: dict = {
        "changed": False,
        "servers": [],
        "admin": {},
        "commands": [],
        "waited_s": 0.0,
    }
    if not os.path.exists(p["socket"]):
        if p["missing"] == "skip":
            module.exit_json(skipped_reason=f"no HAProxy runtime socket at {p['socket']}", **result)
        module.fail_json(
            msg=f"no HAProxy runtime socket at {p['socket']} (is the tfserving_lb role applied?)",
            **result,
        )
    try:
        states = {
            (r.get("be_name"), r.get("srv_name")): r
            for r in hr.parse_servers_state(hr.command(p["socket"], "show servers state"))
        }
        absent = [f"{b}/{s}" for b, s in wanted + pairs["mark_down"] if (b, s) not in states]
        if absent:
            if p["missing"] == "skip":
                module.exit_json(
                    skipped_reason=f"not in the HAProxy configuration: {', '.join(absent)}",
                    **result,
                )
            module.fail_json(msg=f"not in the HAProxy configuration: {', '.join(absent)}", **result)
        result["admin"] = {
            f"{b}/{s}": hr.admin_state(hr.admin_flags(states[(b, s)])) for b, s in wanted
        }
        if p["state"]:
            for backend, server in wanted:
                if hr.needs_change(hr.admin_flags(states[(backend, server)]), p["state"]):
                    result["commands"].append(f"set server {backend}/{server} state {p['state']}")
        result["changed"] = bool(result["commands"])
        if module.check_mode:
            result["servers"] = [v for k, v in _rows(p["socket"]).items() if k in wanted]
            module.exit_json(**result)
        for cmd in result["commands"]:
            answer = hr.command(p["socket"], cmd).strip()
            if answer:
                module.fail_json(msg=f"HAProxy refused `{cmd}`: {answer}", **result)
        start = time.monotonic()
        rows = _rows(p["socket"])
        if p["wait"] != "none":
            deadline = start + p["timeout"]
            while not all(_done(rows.get(key, {}), p["wait"]) for key in wanted):
                if time.monotonic() >= deadline:
                    result["servers"] = [rows.get(key, {}) for key in wanted]
                    result["waited_s"] = round(time.monotonic() - start, 2)
                    what = "0 sessions" if p["wait"] == "idle" else "UP (HAProxy's health check)"
                    late = [
                        hr.describe(rows.get(k, {"pxname": k[0], "svname": k[1]}))
                        for k in wanted
                        if not _done(rows.get(k, {}), p["wait"])
                    ]
                    module.fail_json(
                        msg=f"not {what} after {p['timeout']} s: {'; '.join(late)}", **result
                    )
                time.sleep(p["interval"])
                rows = _rows(p["socket"])
        result["waited_s"] = round(time.monotonic() - start, 2)
        for backend, server in pairs["mark_down"]:
            if not rows.get((backend, server), {}).get("status", "").startswith(("DOWN", "MAINT")):
                cmd = f"set server {backend}/{server} health down"
                answer = hr.command(p["socket"], cmd).strip()
                if answer:
                    module.fail_json(msg=f"HAProxy refused `{cmd}`: {answer}", **result)
                result["commands"].append(cmd)
                result["changed"] = True
        if pairs["mark_down"]:
            rows = _rows(p["socket"])
        result["servers"] = [rows.get(key, {}) for key in wanted]
    except hr.RuntimeError_ as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
