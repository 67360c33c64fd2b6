# Copyright: tfs-fleet developers
# Apache License 2.0
"""The sandbox fleets' inventory: community.docker.docker_containers, asking the engine for the
containers of one fleet only (a label filter in the list call)."""

from __future__ import annotations

import json
from typing import Any

from ansible_collections.community.docker.plugins.inventory.docker_containers import (
    InventoryModule as DockerContainersInventory,
)
from ansible_collections.tfs_fleet.common.plugins.module_utils.host_order import host_key

DOCUMENTATION = r"""
name: sandbox_containers
short_description: The containers of one tfs-fleet sandbox fleet, as SSH hosts
description:
  - The inventory of C(inventories/sandbox) (C(playbooks/sandbox.yml) makes the fleets). It is
    P(community.docker.docker_containers#inventory) with one difference, the list call asks the
    engine only for the containers labelled C(tfs-fleet.sandbox=<fleet>), and takes them in name
    order (the engine lists the newest first), so groups list their hosts the same on every run.
  - C(docker_containers) lists every container of the engine and then inspects each. Where
    other fleets and test hosts come and go on the same engine (the lanes of C(make test)), a
    container removed between the two calls fails the whole inventory ("Error inspecting
    container ... 404"), and the play runs with no hosts. Listing one fleet's containers leaves
    the other fleets out of it and spares an inspect per foreign container.
  - Uses a YAML configuration file whose name ends with C(docker.yml) or C(docker.yaml).
extends_documentation_fragment:
  - ansible.builtin.constructed
  - community.docker.docker.api_documentation
  - community.library_inventory_filtering_v1.inventory_filter
options:
  plugin:
    description: The name of this plugin.
    type: str
    required: true
    choices: [tfs_fleet.common.sandbox_containers]
  fleet:
    description: The fleet's name (the label C(tfs-fleet.sandbox) of its containers).
    type: str
    default: sandbox
    env:
      - name: TFS_FLEET_SANDBOX
  connection_type:
    description: As in P(community.docker.docker_containers#inventory).
    type: str
    default: docker-api
    choices: [ssh, docker-cli, docker-api]
  configure_docker_daemon:
    description: As in P(community.docker.docker_containers#inventory).
    type: bool
    default: true
  verbose_output:
    description: As in P(community.docker.docker_containers#inventory).
    type: bool
    default: false
  default_ip:
    description: As in P(community.docker.docker_containers#inventory).
    type: str
    default: 127.0.0.1
  private_ssh_port:
    description: As in P(community.docker.docker_containers#inventory).
    type: int
    default: 22
  add_legacy_groups:
    description: As in P(community.docker.docker_containers#inventory).
    type: bool
    default: false
"""

EXAMPLES = r"""
# inventories/sandbox/sandbox.docker.yml
plugin: tfs_fleet.common.sandbox_containers
connection_type: ssh
"""

LABEL = "tfs-fleet.sandbox"


class _OneFleetClient:
    """The Docker client, with the container list restricted to one fleet's label and in name
    order (the engine answers newest first), so that the groups list their hosts as a static
    inventory would, the same on every run."""

    def __init__(self, client: Any, label: str) -> None:
        self._client = client
        self._label = label

    def get_json(self, path: str, *args: Any, **kwargs: Any) -> Any:
        if path == "/containers/json":
            params = dict(kwargs.pop("params", None) or {})
            params["filters"] = json.dumps({"label": [self._label]})
            kwargs["params"] = params
            listed = self._client.get_json(path, *args, **kwargs)
            return sorted(listed or [], key=lambda c: host_key((c.get("Names") or [""])[0]))
        return self._client.get_json(path, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class InventoryModule(DockerContainersInventory):
    NAME = "tfs_fleet.common.sandbox_containers"

    def _create_client(self) -> Any:
        fleet = self.get_option("fleet") or "sandbox"
        return _OneFleetClient(super()._create_client(), f"{LABEL}={fleet}")
