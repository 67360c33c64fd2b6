"""The host's deployment record (module_utils/host_record.py, module host_record) and the
filters that read what a host serves and decide the rollout (filter/deployment.py, verify.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.tfs_fleet.common.plugins.filter import deployment, verify
from ansible_collections.tfs_fleet.common.plugins.module_utils import host_record

from helpers import REPO, run_collection_module

STAMP = {"recorded_utc": "2026-12-02T00:00:00+00:00", "recorded_by": "test"}
MODULE = REPO / "collections/ansible_collections/tfs_fleet/common/plugins/modules/host_record.py"


# ---- the record ----------------------------------------------------------------------------
def test_first_write_has_no_history() -> None:
    record, changed = host_record.apply({}, {"models": {"m": [1]}}, STAMP, 10)
    assert changed
    assert record == {"current": {"models": {"m": [1]}, **STAMP}, "previous": {}, "history": []}


def test_completing_a_state_adds_no_history_entry() -> None:
    record, _ = host_record.apply({}, {"models": {"m": [1]}}, STAMP, 10)
    record, changed = host_record.apply(record, {"image_id": "sha256:a"}, STAMP, 10)
    assert changed and record["history"] == []
    assert host_record.state_of(record["current"]) == {"models": {"m": [1]}, "image_id": "sha256:a"}


def test_unchanged_state_is_not_rewritten_nor_restamped() -> None:
    record, _ = host_record.apply({}, {"models": {"m": [1]}, "image_id": "a"}, STAMP, 10)
    later = {"recorded_utc": "2030-01-01T00:00:00+00:00", "recorded_by": "other"}
    again, changed = host_record.apply(record, {"models": {"m": [1]}}, later, 10)
    assert not changed and again == record


def test_a_change_moves_current_to_previous_and_the_history_is_bounded() -> None:
    record: dict[str, Any] = {}
    for version in range(1, 6):
        record, changed = host_record.apply(record, {"models": {"m": [version]}}, STAMP, 3)
        assert changed
    assert host_record.state_of(record["current"]) == {"models": {"m": [5]}}
    assert [h["models"]["m"] for h in record["history"]] == [[4], [3], [2]]
    assert record["previous"] == record["history"][0]


def test_other_keys_of_current_are_kept() -> None:
    record, _ = host_record.apply({}, {"image": "x", "models": {"m": [1]}}, STAMP, 10)
    record, _ = host_record.apply(record, {"models": {"m": [1, 2]}}, STAMP, 10)
    assert record["current"]["image"] == "x"
    assert record["previous"]["models"] == {"m": [1]}


def test_types_are_compared_as_json() -> None:
    record, _ = host_record.apply({}, {"n": 1}, STAMP, 10)
    _, changed = host_record.apply(record, {"n": True}, STAMP, 10)
    assert changed


def test_an_older_record_without_history_is_read() -> None:
    old = {"current": {"image_id": "b"}, "previous": {"image_id": "a"}}
    record = host_record.normalise(old)
    assert record["history"] == [{"image_id": "a"}] and record["previous"] == {"image_id": "a"}


def test_stamp_keys_cannot_be_set_by_a_role() -> None:
    with pytest.raises(ValueError, match="recorded_utc"):
        host_record.apply({}, {"recorded_utc": "x"}, STAMP, 10)


def run_module(args: dict[str, Any], tmp_path: Path, check: bool = False) -> dict[str, Any]:
    return run_collection_module("host_record", args, tmp_path, check)[1]


def test_module_writes_reads_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "serving-state.json"
    first = run_module({"path": str(path), "update": {"models": {"m": [1]}}, "by": "t"}, tmp_path)
    assert first["changed"] and path.is_file()
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    again = run_module({"path": str(path), "update": {"models": {"m": [1]}}}, tmp_path)
    assert not again["changed"]
    read = run_module({"path": str(path)}, tmp_path)
    assert not read["changed"] and read["current"]["models"] == {"m": [1]}
    assert read["current"]["recorded_by"] == "t"


def test_module_check_mode_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "serving-state.json"
    path.write_text('{"current": {"models": {"m": [1]}}}')
    result = run_module({"path": str(path), "update": {"models": {"m": [2]}}}, tmp_path, True)
    assert result["changed"] and result["previous"]["models"] == {"m": [1]}
    assert json.loads(path.read_text()) == {"current": {"models": {"m": [1]}}}


def test_module_refuses_a_file_that_is_not_a_json_object(tmp_path: Path) -> None:
    path = tmp_path / "serving-state.json"
    path.write_text("[1, 2]")
    result = run_module({"path": str(path), "update": {"models": {}}}, tmp_path)
    assert result["failed"] and str(path) in result["msg"] and "not an object" in result["msg"]
    assert path.read_text() == "[1, 2]"


# ---- what a host serves ----------------------------------------------------------------------
def test_served_versions_reads_only_version_directories() -> None:
    found = [
        {"path": "/srv/m/a/1"},
        {"path": "/srv/m/a/10"},
        {"path": "/srv/m/a/.tfs-fleet-incoming-3"},
        {"path": "/srv/m/b/2"},
        {"path": "/srv/other/c/1"},
    ]
    assert deployment.served_versions(found, "/srv/m") == {"a": [1, 10], "b": [2]}
    with pytest.raises(AnsibleFilterError, match="absolute"):
        deployment.served_versions(found, "srv/m")


# ---- the rollout's decisions -----------------------------------------------------------------
@pytest.mark.parametrize("serial", [1, "25%", [1, "25%", "100%"], ["3", 2]])
def test_rollout_batches_accepts(serial: Any) -> None:
    assert all(isinstance(s, str) for s in deployment.rollout_batches(serial))


@pytest.mark.parametrize("serial", [0, "0%", "150%", [], [1, "x"], True, "101%"])
def test_rollout_batches_refuses_naming_the_variable(serial: Any) -> None:
    with pytest.raises(AnsibleFilterError, match="tfserving_rollout_serial"):
        deployment.rollout_batches(serial)


def info(name: str, cid: str, started: str, image_id: str = "sha256:i") -> dict[str, Any]:
    return {
        "exists": True,
        "item": name,
        "container": {
            "Name": f"/{name}",
            "Id": cid,
            "Image": image_id,
            "State": {"StartedAt": started},
            "Config": {"Image": "ref"},
        },
    }


def test_rollout_containers_follows_per_gpu_containers() -> None:
    infos = [info("tfs-gpu0", "a", "t0"), info("tfs-gpu1", "b", "t0"), {"exists": False}]
    containers = deployment.rollout_containers(infos)
    assert list(containers) == ["tfs-gpu0", "tfs-gpu1"]
    assert containers["tfs-gpu1"] == {
        "id": "b",
        "started": "t0",
        "image": "ref",
        "image_id": "sha256:i",
    }


def test_rollout_container_change() -> None:
    before = deployment.rollout_containers([info("g0", "a", "t0"), info("g1", "b", "t0")])
    same = deployment.rollout_containers([info("g0", "a", "t0"), info("g1", "b", "t0")])
    restarted = deployment.rollout_containers([info("g0", "a", "t0"), info("g1", "b", "t1")])
    recreated = deployment.rollout_containers([info("g0", "a", "t0"), info("g1", "c", "t1")])
    fewer = deployment.rollout_containers([info("g0", "a", "t0")])
    assert deployment.rollout_container_change(before, same) == "kept"
    assert deployment.rollout_container_change(before, restarted) == "restarted"
    assert deployment.rollout_container_change(before, recreated) == "recreated"
    assert deployment.rollout_container_change(before, fewer) == "recreated"
    assert deployment.rollout_container_change({}, before) == "recreated"


def test_rollout_result() -> None:
    before = {"image_id": "a", "models": {"m": [1]}, "labels": {}}
    assert deployment.rollout_result(before, dict(before), "kept") == "unchanged"
    assert (
        deployment.rollout_result(before, {**before, "models": {"m": [1, 2]}}, "kept") == "updated"
    )
    assert (
        deployment.rollout_result(before, {**before, "labels": {"m": {"canary": 1}}}, "kept")
        == "updated"
    )
    assert deployment.rollout_result(before, dict(before), "recreated") == "updated"


def test_rollout_models_list_pins_the_versions_and_labels_served_before() -> None:
    models = [
        {"name": "m", "keep": 3, "labels": {"stable": 3, "canary": 3}, "version_policy": "all"},
        {"name": "new", "keep": 1},
    ]
    before = {"models": {"m": [1, 2]}, "labels": {"m": {"stable": 2, "canary": 9}}}
    assert deployment.rollout_models_list(models, before) == [
        {
            "name": "m",
            "version_policy": "all",
            "versions": [1, 2],
            "keep": 2,
            "labels": {"stable": 2},
        }
    ]


def test_rollout_models_list_from_a_record_without_labels_keeps_the_fitting_ones() -> None:
    models = [{"name": "m", "labels": {"stable": 1, "canary": 2}, "version_policy": "all"}]
    back = deployment.rollout_models_list(models, {"models": {"m": [1]}})
    assert back[0]["labels"] == {"stable": 1} and back[0]["versions"] == [1]


def test_hosts_flagged() -> None:
    hostvars = {"a": {"f": True}, "b": {}, "c": {"f": False}}
    assert deployment.hosts_flagged(["a", "b", "c", "d"], hostvars, "f") == ["a"]


# ---- the verify role's plan and reports ------------------------------------------------------
def test_smoke_plan_prefers_the_newest_served_version() -> None:
    """(More cases: tests/test_verify_plan.py.)"""

    def versions(model: str, *numbers: int) -> dict[str, Any]:
        return {
            "model_dir": f"/x/{model}",
            "versions": {str(n): {"path": f"/x/{model}/{n}", "format": "pb"} for n in numbers},
        }

    sources = {"m": versions("m", 1, 2, 3), "n": versions("n", 7)}
    entries = [{"name": "m"}, {"name": "n"}]
    plan = verify.smoke_plan(sources, [{"m": [1, 2]}, {"m": [1]}, {}], "/x", entries)
    assert plan == [
        {"model": "m", "version": 2, "saved_model": "/x/m/2", "format": "pb",
         "previous_saved_model": "/x/m/1", "golden": ""},
        {"model": "n", "version": 7, "saved_model": "/x/n/7", "format": "pb",
         "previous_saved_model": "", "golden": ""},
    ]  # fmt: skip
    with pytest.raises(AnsibleFilterError, match="no exported version of z under /x"):
        verify.smoke_plan({"z": {"versions": {}}}, [], "/x", [{"name": "z"}])


def test_smoke_failures_and_table() -> None:
    reports = [
        {
            "model": "m",
            "table": ["GRPC  REST  RESULT", "h1:1  h1:2  FAIL"],
            "hosts": [
                {
                    "grpc": "h1:1",
                    "ok": False,
                    "failed_check": "predict",
                    "checks": {"predict": {"detail": "off by 1"}},
                },
                {"grpc": "h2:1", "ok": True, "checks": {}},
            ],
        }
    ]
    assert verify.smoke_failures(reports, "h1:1") == ["m: predict: off by 1"]
    assert verify.smoke_failures(reports, "h2:1") == []
    assert verify.smoke_table(reports) == ["model m:", "GRPC  REST  RESULT", "h1:1  h1:2  FAIL"]


# ---- one home for the rollout's defaults -------------------------------------------------------
def test_the_playbook_uses_the_roles_defaults_for_its_play_keywords() -> None:
    defaults = yaml.safe_load((REPO / "roles/tfserving_rollout/defaults/main.yml").read_text())
    play = yaml.safe_load((REPO / "playbooks/rollout.yml").read_text())[-1]
    assert "default([1, '25%', '100%'])" in play["serial"]
    assert defaults["tfserving_rollout_serial"] == [1, "25%", "100%"]
    assert (
        f"default({defaults['tfserving_rollout_max_fail_percentage']})"
        in play["max_fail_percentage"]
    )


def test_shared_settings_have_one_home() -> None:
    shared = yaml.safe_load((REPO / "roles/tfs_fleet_defaults/defaults/main.yml").read_text())
    for role in REPO.glob("roles/*/defaults/main.yml"):
        if role.parent.parent.name == "tfs_fleet_defaults":
            continue
        names = set(yaml.safe_load(role.read_text()) or {})
        assert not names & set(shared), f"{role}: restates {names & set(shared)}"
    for path in [*REPO.glob("roles/*/vars/*.yml"), *REPO.glob("roles/*/defaults/*.yml")]:
        text = path.read_text()
        for name in shared:
            assert f"{name} | default(" not in text, f"{path}: a second default for {name}"
