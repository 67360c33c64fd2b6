"""The tfserving_lb filters (servers per container, model checks) and the runtime-API parsers."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tfs_fleet.common.plugins.filter.lb import (
    lb_model_checks,
    lb_runtime_pairs,
    lb_servers,
)
from ansible_collections.tfs_fleet.common.plugins.module_utils import haproxy_runtime as hr

REACHABLE = {"tfserving_bind_address": "0.0.0.0"}


def test_one_server_per_host_at_its_lb_address() -> None:
    hv = {
        "gpu1": {**REACHABLE, "ansible_host": "127.0.0.1",
                 "tfserving_lb_server_address": "gpu1.lan"},
        "gpu2": {"ansible_host": "10.0.0.2", "tfserving_bind_address": "10.0.0.2",
                 "tfserving_grpc_port": 9500, "tfserving_rest_port": 9501},
    }  # fmt: skip
    servers = lb_servers(hv, ["gpu1", "gpu2"], "lb1")
    assert [(s["name"], s["address"], s["grpc_port"], s["rest_port"]) for s in servers] == [
        ("gpu1", "gpu1.lan", 8500, 8501),
        ("gpu2", "10.0.0.2", 9500, 9501),
    ]


def test_servers_come_in_host_name_order_whatever_the_inventorys() -> None:
    """The same backends listed in another order (a dynamic inventory's next answer) give the
    same servers, so HAProxy's file does not change and the LB is not reloaded on a re-run."""
    hv = {f"gpu-{n}": dict(REACHABLE) for n in (1, 2, 10)}
    first = lb_servers(hv, ["gpu-10", "gpu-2", "gpu-1"], "lb1")
    assert first == lb_servers(hv, ["gpu-2", "gpu-1", "gpu-10"], "lb1")
    assert [s["name"] for s in first] == ["gpu-1", "gpu-2", "gpu-10"]


def test_per_gpu_containers_are_servers_of_their_own() -> None:
    hv = {
        "gpu1": {**REACHABLE, "tfserving_per_gpu_containers": True, "tfserving_gpu_count": 0,
                 "ansible_local": {"nvidia_driver": {"gpus_pci": ["01:00.0", "02:00.0"]}}},
        "gpu2": {**REACHABLE, "tfserving_per_gpu_containers": True, "tfserving_gpu_count": 3,
                 "tfserving_per_gpu_port_stride": 100, "tfserving_container_name": "tfs"},
    }  # fmt: skip
    servers = lb_servers(hv, ["gpu1", "gpu2"], "lb1")
    assert [(s["name"], s["container"], s["grpc_port"], s["rest_port"]) for s in servers] == [
        ("gpu1-gpu0", "tfserving-gpu0", 8500, 8501),
        ("gpu1-gpu1", "tfserving-gpu1", 8510, 8511),
        ("gpu2-gpu0", "tfs-gpu0", 8500, 8501),
        ("gpu2-gpu1", "tfs-gpu1", 8600, 8601),
        ("gpu2-gpu2", "tfs-gpu2", 8700, 8701),
    ]
    with pytest.raises(AnsibleFilterError, match="tfserving_gpu_count for the host"):
        lb_servers({"g": {**REACHABLE, "tfserving_per_gpu_containers": True}}, ["g"], "lb1")


@pytest.mark.parametrize("value", ["false", "False", "no", "off", "0", False, 0])
def test_per_gpu_containers_false_as_a_string_is_one_server(value: object) -> None:
    """-e tfserving_per_gpu_containers=false arrives as a string: one server, as the role runs
    one container (Ansible's boolean rules, module_utils/booleans.py)."""
    hv = {"gpu1": {**REACHABLE, "tfserving_per_gpu_containers": value, "tfserving_gpu_count": 2}}
    assert [s["name"] for s in lb_servers(hv, ["gpu1"], "lb1")] == ["gpu1"]


@pytest.mark.parametrize("value", ["true", "True", "yes", "on", "1", True, 1])
def test_per_gpu_containers_true_as_a_string_is_a_server_per_gpu(value: object) -> None:
    hv = {"gpu1": {**REACHABLE, "tfserving_per_gpu_containers": value, "tfserving_gpu_count": 2}}
    names = [s["name"] for s in lb_servers(hv, ["gpu1"], "lb1")]
    assert names == ["gpu1-gpu0", "gpu1-gpu1"]


@pytest.mark.parametrize("value", ["flase", 2, "y", ""], ids=repr)
def test_per_gpu_containers_not_a_boolean_fails_naming_host_and_variable(value: object) -> None:
    hv = {"gpu1": {**REACHABLE, "tfserving_per_gpu_containers": value}}
    with pytest.raises(AnsibleFilterError, match=r"gpu1: tfserving_per_gpu_containers: .* boolean"):
        lb_servers(hv, ["gpu1"], "lb1")


def test_unreachable_backends_fail_naming_the_variable() -> None:
    with pytest.raises(AnsibleFilterError, match=r"gpu1: .*tfserving_bind_address"):
        lb_servers({"gpu1": {"ansible_host": "10.0.0.1"}}, ["gpu1"], "lb1")  # loopback default
    with pytest.raises(AnsibleFilterError, match="tfserving_lb_server_address"):
        lb_servers({"gpu1": {**REACHABLE, "ansible_host": "127.0.0.1"}}, ["gpu1"], "lb1")
    # The LB on the serving host itself may use loopback.
    assert lb_servers({"gpu1": {"ansible_host": "127.0.0.1"}}, ["gpu1"], "gpu1")[0]["address"]
    with pytest.raises(AnsibleFilterError, match="same HAProxy server name"):
        lb_servers({"a b": REACHABLE, "a_b": REACHABLE}, ["a b", "a_b"], "lb1")


def test_model_checks() -> None:
    assert lb_model_checks([], [{"name": "a"}, {"name": "b", "versions": [3]}]) == [
        {"name": "a", "version": None, "uri": "/v1/models/a"},
        {"name": "b", "version": None, "uri": "/v1/models/b"},
    ]
    assert lb_model_checks(["a", {"name": "b", "version": "2"}], [])[1]["uri"] == (
        "/v1/models/b/versions/2"
    )
    for bad, match in [
        ([{"name": "a/../x"}], "model name"),
        ([{"name": "a", "version": 0}], "1 or more"),
        ([{"name": "a", "versoin": 1}], "unknown keys"),
        (["a", "a"], "twice"),
    ]:
        with pytest.raises(AnsibleFilterError, match=match):
            lb_model_checks(bad, [])
    with pytest.raises(AnsibleFilterError, match="tfserving_models_list"):
        lb_model_checks([], [])


def test_runtime_pairs() -> None:
    servers = [{"name": "h1"}, {"name": "h2"}]
    assert lb_runtime_pairs(servers, ["r", "g"]) == [
        {"backend": "r", "server": "h1"}, {"backend": "r", "server": "h2"},
        {"backend": "g", "server": "h1"}, {"backend": "g", "server": "h2"},
    ]  # fmt: skip


def test_runtime_parsers_and_admin_flags() -> None:
    stat = "# pxname,svname,scur,status,\ntfs_rest,h1,0,UP,\ntfs_rest,BACKEND,0,UP,\n"
    assert hr.parse_stat(stat)[0] == {"pxname": "tfs_rest", "svname": "h1", "scur": "0",
                                      "status": "UP", "": ""}  # fmt: skip
    state = (
        "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state\n"
        "3 tfs_rest 1 h1 10.0.0.1 2 8\n"
    )
    rows = hr.parse_servers_state(state)
    assert rows[0]["srv_name"] == "h1" and rows[0]["srv_admin_state"] == "8" and len(rows) == 1
    drained = hr.admin_flags(rows[0])
    assert not hr.needs_change(drained, "drain") and hr.needs_change(drained, "ready")
    assert hr.needs_change(0, "drain") and not hr.needs_change(0, "ready")
    assert hr.needs_change(hr.ADMF_FMAINT, "drain") and not hr.needs_change(hr.ADMF_FMAINT, "maint")
    assert not hr.needs_change(hr.ADMF_IDRAIN, "ready")  # inherited: cleared with the tracked one
    with pytest.raises(hr.RuntimeError_):
        hr.parse_stat("Unknown command\n")
