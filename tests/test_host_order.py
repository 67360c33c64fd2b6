"""module_utils.host_order: the order rendered files list hosts in (digits as numbers)."""

from __future__ import annotations

from ansible_collections.tfs_fleet.common.plugins.module_utils.host_order import in_host_order


def test_digits_compare_as_numbers_and_duplicates_go() -> None:
    hosts = ["gpu-10", "gpu-2", "lb", "gpu-1", "gpu-2", "gpu-1b"]
    assert in_host_order(hosts) == ["gpu-1", "gpu-1b", "gpu-2", "gpu-10", "lb"]


def test_the_order_does_not_depend_on_the_input_order() -> None:
    hosts = ["10.0.0.12", "10.0.0.3", "node-a", "node-b", "10.0.0.100"]
    assert in_host_order(hosts) == in_host_order(reversed(hosts))
    assert in_host_order(hosts)[-3:] == ["10.0.0.3", "10.0.0.12", "10.0.0.100"]
