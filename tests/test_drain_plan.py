"""Issue 23: a failed change must never lose capacity silently. The drain note of the deployment
record (module_utils/host_record.py), the plan that decides which drained hosts a run puts back
(module_utils/lb_drain.py, action lb_drain_plan), the admin state read from HAProxy's flags
(module_utils/haproxy_runtime.py) and the image reference check done before any drain
(filter image_reference_problem)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.tfs_fleet.common.plugins.filter.image_ref import image_reference_problem
from ansible_collections.tfs_fleet.common.plugins.module_utils import haproxy_runtime as hr
from ansible_collections.tfs_fleet.common.plugins.module_utils import host_record
from ansible_collections.tfs_fleet.common.plugins.module_utils.lb_drain import plan

from helpers import BIN, REPO, run_collection_module

MODULE = REPO / "collections/ansible_collections/tfs_fleet/common/plugins/modules/host_record.py"
BACKENDS = ["tfs_rest", "tfs_grpc"]
SERVERS = [{"name": "gpu-a", "host": "gpu-a"}, {"name": "gpu-b", "host": "gpu-b"}]
OURS = {"by": "tfs-fleet", "reason": "container change", "at": "2026-01-02T03:04:05+00:00"}
AT = "2026-01-02T03:04:05+00:00"


def admin(**states: str) -> dict[str, str]:
    """{"tfs_rest/gpu-a": state, "tfs_grpc/gpu-a": state, ...} from gpu_a=state."""
    return {f"{b}/{h.replace('_', '-')}": s for h, s in states.items() for b in BACKENDS}


def pairs(host: str) -> list[dict[str, str]]:
    return [{"backend": b, "server": host} for b in BACKENDS]


# ---- the drain note ----------------------------------------------------------------------------
def test_the_drain_note_is_set_kept_and_cleared_without_touching_the_state() -> None:
    record, _ = host_record.apply({}, {"image": "x"}, {"recorded_utc": AT, "recorded_by": "t"}, 10)
    noted, changed = host_record.set_drained(record, {"reason": "rollout 1"}, AT)
    assert changed and noted["drained"] == {
        "by": "tfs-fleet",
        "reason": "rollout 1",
        "hold": False,
        "at": AT,
    }
    assert noted["current"] == record["current"] and noted["history"] == record["history"]
    again, changed = host_record.set_drained(noted, {"reason": "rollout 1"}, "2030-01-01")
    assert not changed and again["drained"]["at"] == AT  # a re-run keeps the note as it was
    held, changed = host_record.set_drained(noted, {"reason": "rollout 1", "hold": True}, AT)
    assert changed and held["drained"]["hold"] is True
    assert host_record.drained_by_us(held) == held["drained"]
    cleared, changed = host_record.set_drained(held, {}, AT)
    assert changed and "drained" not in cleared
    _, changed = host_record.set_drained(cleared, {}, AT)
    assert not changed


def test_a_state_change_keeps_the_drain_note() -> None:
    stamp = {"recorded_utc": AT, "recorded_by": "t"}
    record, _ = host_record.apply({}, {"image": "x"}, stamp, 10)
    record, _ = host_record.set_drained(record, {"reason": "r"}, AT)
    record, changed = host_record.apply(record, {"image": "y"}, stamp, 10)
    assert changed and record["drained"]["reason"] == "r"
    assert host_record.normalise(json.loads(json.dumps(record)))["drained"]["reason"] == "r"


def test_a_note_by_someone_else_is_not_ours_and_a_note_needs_a_reason() -> None:
    assert host_record.drained_by_us({"drained": {"by": "operator", "reason": "x"}}) == {}
    with pytest.raises(ValueError, match="reason"):
        host_record.set_drained({}, {"hold": True}, AT)
    with pytest.raises(ValueError, match="unknown"):
        host_record.set_drained({}, {"reason": "r", "by": "me"}, AT)


def run_module(args: dict[str, Any], tmp_path: Path, check: bool = False) -> dict[str, Any]:
    return run_collection_module("host_record", args, tmp_path, check)[1]


def test_the_module_notes_and_clears_the_drain_idempotently(tmp_path: Path) -> None:
    path = tmp_path / "serving-state.json"
    run_module({"path": str(path), "update": {"image": "x"}, "by": "t"}, tmp_path)
    checked = run_module({"path": str(path), "drained": {"reason": "r"}}, tmp_path, check=True)
    assert checked["changed"] and "drained" not in json.loads(path.read_text())
    noted = run_module({"path": str(path), "drained": {"reason": "r"}}, tmp_path)
    assert noted["changed"] and noted["drained"]["by"] == "tfs-fleet"
    assert json.loads(path.read_text())["current"]["image"] == "x"
    assert not run_module({"path": str(path), "drained": {"reason": "r"}}, tmp_path)["changed"]
    read = run_module({"path": str(path)}, tmp_path)
    assert not read["changed"] and read["drained"]["reason"] == "r"
    # The serving role's record of what runs keeps the note.
    run_module({"path": str(path), "update": {"image": "y"}, "by": "t"}, tmp_path)
    assert json.loads(path.read_text())["drained"]["reason"] == "r"
    cleared = run_module({"path": str(path), "drained": {}}, tmp_path)
    assert cleared["changed"] and cleared["drained"] == {}
    assert "drained" not in json.loads(path.read_text())
    assert not run_module({"path": str(path), "drained": {}}, tmp_path)["changed"]


# ---- HAProxy's admin flags -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "state"),
    [
        (0, "ready"),
        (hr.ADMF_FDRAIN, "drain"),
        (hr.ADMF_IDRAIN, "drain"),  # a gRPC server tracking a drained REST server
        (hr.ADMF_FMAINT, "maint"),
        (hr.ADMF_FMAINT | hr.ADMF_FDRAIN, "maint"),
        (hr.ADMF_IMAINT, "maint"),
    ],
)
def test_admin_state(flags: int, state: str) -> None:
    assert hr.admin_state(flags) == state


# ---- the plan --------------------------------------------------------------------------------
def test_a_host_the_tool_drained_goes_back_and_its_note_is_removed() -> None:
    """The re-run after a failed change: nothing changes, yet the host the tool left drained is
    put back (then waited UP) and its note removed."""
    found = plan(
        "undrain", SERVERS, BACKENDS, [admin(gpu_a="drain", gpu_b="ready")], {"gpu-a": OURS}
    )
    assert found["undrain"] == pairs("gpu-a")
    assert found["forget"] == ["gpu-a"]
    assert found["wait"] == pairs("gpu-a") + pairs("gpu-b")
    assert found["kept"] == [] and found["warnings"] == []


def test_a_host_drained_by_hand_stays_drained_is_reported_and_not_waited_for() -> None:
    """`set server tfs_rest/gpu-a state drain` by an operator: gRPC tracks it (drain too)."""
    found = plan("undrain", SERVERS, BACKENDS, [admin(gpu_a="drain", gpu_b="ready")], {})
    assert found["undrain"] == [] and found["forget"] == []
    assert found["wait"] == pairs("gpu-b")
    assert found["kept"] == [
        {"host": "gpu-a", "servers": ["tfs_rest/gpu-a", "tfs_grpc/gpu-a"], "why": "operator"}
    ]
    assert len(found["warnings"]) == 1
    assert "gpu-a" in found["warnings"][0] and "by hand" in found["warnings"][0]


def test_a_host_held_drained_after_a_failed_change_stays_drained_and_is_reported() -> None:
    held = {**OURS, "hold": True, "reason": "rollout 7: gate failed"}
    found = plan("undrain", SERVERS, BACKENDS, [admin(gpu_a="maint")], {"gpu-a": held})
    assert found["undrain"] == [] and found["forget"] == []
    assert found["kept"][0]["why"] == "hold" and found["kept"][0]["reason"] == held["reason"]
    assert found["wait"] == pairs("gpu-b")
    assert "rollout 7" in found["warnings"][0] and "held" in found["warnings"][0]


def test_a_stale_note_is_removed_and_any_balancer_counts() -> None:
    """Two balancers: drained on one is drained. A note whose host is in service everywhere
    (someone put it back by hand) is removed."""
    lbs = [admin(gpu_a="ready", gpu_b="ready"), admin(gpu_a="drain", gpu_b="ready")]
    found = plan("undrain", SERVERS, BACKENDS, lbs, {"gpu-a": OURS, "gpu-b": OURS})
    assert found["undrain"] == pairs("gpu-a") + pairs("gpu-b")
    assert found["forget"] == ["gpu-a", "gpu-b"]
    assert plan("undrain", SERVERS, BACKENDS, lbs, {})["kept"][0]["host"] == "gpu-a"


def test_drain_notes_only_the_tools_own_drain() -> None:
    lbs = [admin(gpu_a="drain", gpu_b="ready")]
    found = plan("drain", SERVERS, BACKENDS, lbs, {})
    assert found["record"] == ["gpu-b"]  # gpu-a was drained by hand: not noted as ours
    assert found["kept"][0]["host"] == "gpu-a" and "for the change" in found["warnings"][0]
    again = plan("drain", SERVERS, BACKENDS, lbs, {"gpu-a": OURS})
    assert again["record"] == ["gpu-a", "gpu-b"] and again["warnings"] == []
    held = plan("drain", SERVERS, BACKENDS, [], {"gpu-b": {**OURS, "hold": True}})
    assert held["record"] == ["gpu-a"] and held["kept"][0]["why"] == "hold"


def test_a_balancer_without_the_server_says_nothing_of_it() -> None:
    found = plan("undrain", SERVERS, BACKENDS, [{}], {})
    assert found["wait"] == pairs("gpu-a") + pairs("gpu-b") and found["kept"] == []


def test_per_gpu_servers_are_grouped_by_host() -> None:
    servers = [{"name": "gpu-a-gpu0", "host": "gpu-a"}, {"name": "gpu-a-gpu1", "host": "gpu-a"}]
    state = {"tfs_rest/gpu-a-gpu1": "drain"}
    found = plan("undrain", servers, BACKENDS, [state], {"gpu-a": OURS})
    assert {p["server"] for p in found["undrain"]} == {"gpu-a-gpu0", "gpu-a-gpu1"}
    assert plan("undrain", servers, BACKENDS, [state], {})["kept"][0]["servers"] == [
        "tfs_rest/gpu-a-gpu1"
    ]


def test_the_action_plugin_warns_through_ansible(tmp_path: Path) -> None:
    """The warning reaches the run's output (ansible's WARNING), the plan its result."""
    play = tmp_path / "plan.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - tfs_fleet.common.lb_drain_plan:\n        action: undrain\n"
        f"        servers: {json.dumps(SERVERS)}\n        backends: {json.dumps(BACKENDS)}\n"
        f"        admin: [{json.dumps(admin(gpu_a='drain'))}]\n"
        "      register: p\n"
        "    - ansible.builtin.assert:\n        that: p.kept | length == 1 and not p.changed\n"
    )
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(play)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120, check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "[WARNING]: gpu-a: tfs_rest/gpu-a, tfs_grpc/gpu-a drained" in " ".join(out.split()), out


# ---- the image reference, checked before any drain ---------------------------------------------
@pytest.mark.parametrize(
    "ref",
    [
        "tensorflow/serving:2.19.0-gpu",
        "tfs-fleet/serving-standin:latest",
        "ubuntu",
        "a/b__c/d-e.f:v1_2",
        "tensorflow/serving@sha256:" + "a" * 64,
        "sha256:" + "0" * 64,
    ],
)
def test_valid_image_references(ref: str) -> None:
    assert image_reference_problem(ref) == ""


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("tensorflow/serving:2.19.0;touch /tmp/x", "white space"),
        ("tensorflow/serving:$(id)", "not a Docker tag"),
        ("tensorflow/serving:2.19.0|x", "not a Docker tag"),
        ("tensorflow/serving:", "not a Docker tag"),
        ("tensorflow/serving:-x", "not a Docker tag"),
        ("tensorflow/Serving:1", "not a Docker repository"),
        ("tensorflow//serving", "not a Docker repository"),
        ("tensorflow/serving@sha256:xyz", "digest"),
        ("", "empty"),
    ],
)
def test_invalid_image_references_are_named(ref: str, why: str) -> None:
    assert why in image_reference_problem(ref)
