#!/usr/bin/python
# Copyright: tfs-fleet developers
# Apache License 2.0
"""Documentation of the action plugin tfs_fleet.common.lb_drain_plan (plugins/action)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lb_drain_plan
short_description: Decide which drained serving hosts a run may put back on the load balancers
version_added: "0.3.0"
description:
  - Runs on the controller (action plugin; logic in module_utils/lb_drain.py). Takes the servers'
    admin states read from each load balancer (module haproxy_server_state's C(admin)) and the
    drain note of each host's deployment record (module host_record's C(drained)).
  - A host is put back (C(undrain), then C(forget) its note) only when its note says tfs-fleet
    drained it and does not C(hold) it. A host drained without such a note (by hand), or held,
    is left drained (C(kept)), reported as a warning, and left out of C(wait).
  - With O(action=drain), C(record) lists the hosts whose drain is the tool's (note it before
    the drain); a host drained already by hand, or held, is kept as it is.
options:
  action:
    description: C(drain) (before a drain) or C(undrain) (before putting hosts back).
    type: str
    required: true
    choices: [drain, undrain]
  servers:
    description: The servers, as the filter lb_servers gives them (C(name), C(host)).
    type: list
    elements: dict
    required: true
  backends:
    description: The HAProxy backends each server is in (REST first).
    type: list
    elements: str
    required: true
  admin:
    description: One mapping per load balancer, C(<backend>/<server>) to C(ready), C(drain), C(maint).
    type: list
    elements: dict
    default: []
  records:
    description: Each host's drain note (C(by), C(reason), C(at), C(hold)); C({}) when none.
    type: dict
    default: {}
extends_documentation_fragment:
  - tfs_fleet.common.attributes.check_only
"""

EXAMPLES = r"""
- name: Decide which drained hosts to put back
  tfs_fleet.common.lb_drain_plan:
    action: undrain
    servers: "{{ _tfserving_lb_servers }}"
    backends: [tfs_rest, tfs_grpc]
    admin: ["{{ _seen.admin }}"]
    records: {gpu-a01: {by: tfs-fleet, reason: container change, at: "2026-01-02T03:04:05+00:00"}}
  register: _plan
"""

RETURN = r"""
record:
  description: Hosts whose drain is the tool's (action drain).
  returned: always
  type: list
  elements: str
undrain:
  description: Pairs (C({backend, server})) to set ready and wait UP.
  returned: always
  type: list
  elements: dict
forget:
  description: Hosts whose drain note to remove once they are back.
  returned: always
  type: list
  elements: str
wait:
  description: Pairs expected UP (every one but those of the kept hosts).
  returned: always
  type: list
  elements: dict
kept:
  description: Hosts left drained, C({host, servers, why}) (why - operator or hold).
  returned: always
  type: list
  elements: dict
"""
