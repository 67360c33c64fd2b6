"""The sandbox inventory (tfs_fleet.common.sandbox_containers) lists one fleet's containers: the
engine's list call carries the fleet's label filter, so a container of another lane that goes
away between the list and its inspect (a 404 that failed the whole inventory in make test)
is never listed."""

from __future__ import annotations

import json
from typing import Any

from ansible_collections.tfs_fleet.common.plugins.inventory.sandbox_containers import (
    _OneFleetClient,
)


class FakeClient:
    def __init__(self, listed: list[dict[str, Any]] | None = None) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.docker_host = "unix:///var/run/docker.sock"
        self.listed = listed or []

    def get_json(self, path: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((path, args, kwargs))
        return self.listed if path == "/containers/json" else {}


def test_the_list_call_asks_for_the_fleets_label_only() -> None:
    fake = FakeClient()
    client = _OneFleetClient(fake, "tfs-fleet.sandbox=rollout")
    client.get_json("/containers/json", params={"all": 1, "limit": -1})
    path, _, kwargs = fake.calls[0]
    assert path == "/containers/json"
    assert kwargs["params"]["all"] == 1 and kwargs["params"]["limit"] == -1
    assert json.loads(kwargs["params"]["filters"]) == {"label": ["tfs-fleet.sandbox=rollout"]}


def test_the_containers_come_in_name_order_not_the_engines() -> None:
    """The engine lists the newest container first; groups (and so the rollout's batches and
    every file rendered from a group) list hosts in name order, as a static inventory would."""
    names = ["/f-10", "/f-lb", "/f-2", "/f-1"]
    client = _OneFleetClient(FakeClient([{"Names": [n]} for n in names]), "tfs-fleet.sandbox=f")
    listed = client.get_json("/containers/json", params={"all": 1})
    assert [c["Names"][0] for c in listed] == ["/f-1", "/f-2", "/f-10", "/f-lb"]


def test_other_calls_and_attributes_pass_through() -> None:
    fake = FakeClient()
    client = _OneFleetClient(fake, "tfs-fleet.sandbox=x")
    client.get_json("/containers/{0}/json", "abc")
    assert fake.calls == [("/containers/{0}/json", ("abc",), {})]
    assert client.docker_host == "unix:///var/run/docker.sock"


def test_the_sandbox_inventory_names_the_plugin() -> None:
    from pathlib import Path

    import yaml

    config = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "inventories/sandbox/sandbox.docker.yml").read_text()
    )
    assert config["plugin"] == "tfs_fleet.common.sandbox_containers"
