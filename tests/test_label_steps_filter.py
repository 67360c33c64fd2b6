"""Unit tests of the tfs_fleet.common.label_steps filter: the models role's two-step labels.

The rule it encodes is server_core.cc UpdateModelVersionLabelMap (an existing label moves only
onto an AVAILABLE version, even with --allow_version_labels_for_unavailable_models) and
g3doc/serving_config.md ("load the version first, then point the label at it").
"""

from __future__ import annotations

from ansible_collections.tfs_fleet.common.plugins.filter.labels import (
    config_labels,
    label_steps,
)

OLD = """
model_config_list {
  config {
    name: "resnet"
    base_path: "/models/resnet"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 7 versions: 8 } }
    version_labels { key: "canary" value: 8 }
    version_labels { key: "stable" value: 7 }
  }
  config {
    name: "other"
    base_path: "/models/other"
    model_platform: "tensorflow"
  }
}
"""


def plan(**labels: int) -> list[dict]:
    return [{"name": "resnet", "wanted": [7, 8, 9], "labels": labels}]


def status(name: str, states: dict[int, str], code: int = 200) -> dict:
    body = {"model_version_status": [{"version": str(v), "state": s} for v, s in states.items()]}
    return {"item": {"name": name}, "status": code, "json": body if code == 200 else {}}


def test_config_labels_reads_the_template_format() -> None:
    assert config_labels(OLD) == {"resnet": {"canary": 8, "stable": 7}}
    assert config_labels("") == {}


def test_label_moving_onto_a_version_still_loading_waits() -> None:
    steps = label_steps(
        plan(stable=8, canary=9), OLD, [status("resnet", {8: "AVAILABLE", 7: "AVAILABLE"})]
    )
    assert steps["first"][0]["labels"] == {"stable": 8, "canary": 8}
    assert steps["wait"] == [["resnet", 9]]


def test_label_moving_onto_an_available_version_goes_in_one_step() -> None:
    steps = label_steps(
        plan(stable=8, canary=9), OLD, [status("resnet", {9: "AVAILABLE", 8: "AVAILABLE"})]
    )
    assert steps == {"first": plan(stable=8, canary=9), "wait": []}


def test_new_labels_and_unchanged_labels_need_no_wait() -> None:
    steps = label_steps(plan(stable=7, canary=8, beta=9), OLD, [status("resnet", {8: "AVAILABLE"})])
    assert steps["wait"] == [] and steps["first"] == plan(stable=7, canary=8, beta=9)


def test_no_server_answer_means_a_start_which_takes_every_label() -> None:
    """The container is not running: its start reads all labels as new (the allow flag)."""
    for results in ([], [{"item": {"name": "resnet"}, "status": -1, "msg": "refused"}]):
        steps = label_steps(plan(stable=8, canary=9), OLD, results)
        assert steps == {"first": plan(stable=8, canary=9), "wait": []}
