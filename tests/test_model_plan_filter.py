"""Unit tests of the tfs_fleet.common.model_plan and needs_model_config filters (the
tfserving_models role's plan), fed with results shaped like ansible.builtin.find's."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tfs_fleet.common.plugins.filter.models import (
    model_plan,
    needs_model_config,
)

BASE = "/srv/export"


def found(name: str, versions: dict[str, str]) -> dict[str, Any]:
    """What `find` registers for <base>/<name>/<version>/tfs_fleet_manifest.json."""
    return {
        "files": [
            {"path": f"{BASE}/{name}/{v}/tfs_fleet_manifest.json", "checksum": digest}
            for v, digest in versions.items()
        ],
        "invocation": {"module_args": {"paths": [f"{BASE}/{name}"]}},
    }


def test_latest_versions_kept_with_their_manifest_sha256() -> None:
    result = found("m", {"1": "a1", "2": "a2", "10": "a10", "staging": "x"})
    (plan,) = model_plan([{"name": "m"}], [result], 2)
    assert plan["wanted"] == [2, 10]  # numeric order, not string order; non-numeric ignored
    assert plan["manifests"] == {"2": "a2", "10": "a10"}
    assert plan["keep"] == 2 and plan["pinned"] == [] and plan["labels"] == {}
    assert plan["version_policy"] == "latest" and plan["latest_count"] == 1


def test_a_model_keep_overrides_the_default() -> None:
    (plan,) = model_plan([{"name": "m", "keep": 1}], [found("m", {"1": "a", "2": "b"})], 5)
    assert plan["wanted"] == [2] and plan["keep"] == 1


def test_requested_versions_are_served_as_asked_and_pins_kept() -> None:
    models = [{"name": "m", "versions": [3, "1", 3], "pinned": [1]}]
    (plan,) = model_plan(models, [found("m", {"1": "a", "2": "b", "3": "c"})], 1)
    assert plan["wanted"] == [1, 3] and plan["pinned"] == [1]
    assert plan["manifests"] == {"1": "a", "3": "c"}


def test_a_requested_version_that_was_not_exported_names_model_base_and_versions() -> None:
    with pytest.raises(AnsibleFilterError) as err:
        model_plan([{"name": "m", "versions": [4]}], [found("m", {"1": "a"})], 1)
    message = str(err.value)
    assert "tfserving_models_list[m].versions asks for [4]" in message
    assert f"{BASE}/m holds [1]" in message


def test_no_exported_version_says_how_to_export() -> None:
    with pytest.raises(AnsibleFilterError, match="no exported version under /srv/export/m"):
        model_plan([{"name": "m"}], [found("m", {})], 1)


def test_keep_below_one_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match=r"tfserving_models_list\[m\].keep must be"):
        model_plan([{"name": "m", "keep": -1}], [found("m", {"1": "a"})], 1)


def test_one_find_result_per_model() -> None:
    with pytest.raises(AnsibleFilterError, match="one find result per model"):
        model_plan([{"name": "a"}, {"name": "b"}], [found("a", {"1": "x"})], 1)


def test_a_label_must_point_at_a_served_version() -> None:
    models = [{"name": "m", "labels": {"stable": 1}, "version_policy": "all"}]
    with pytest.raises(AnsibleFilterError, match=r"labels.stable points at version 1"):
        model_plan(models, [found("m", {"1": "a", "2": "b"})], 1)


def test_labels_on_several_versions_need_them_loaded() -> None:
    models = [{"name": "m", "labels": {"stable": 1, "canary": 2}}]
    with pytest.raises(AnsibleFilterError, match="version_policy: all or specific"):
        model_plan(models, [found("m", {"1": "a", "2": "b"})], 2)
    models[0]["latest_count"] = 2
    (plan,) = model_plan(models, [found("m", {"1": "a", "2": "b"})], 2)
    assert plan["labels"] == {"stable": 1, "canary": 2}


def test_models_config_is_needed_only_beyond_the_single_model_default() -> None:
    one = model_plan([{"name": "m"}], [found("m", {"1": "a"})], 1)
    assert needs_model_config(one) is False
    assert needs_model_config(one, force=True) is True
    two = model_plan(
        [{"name": "a"}, {"name": "b"}], [found("a", {"1": "x"}), found("b", {"1": "y"})], 1
    )
    assert needs_model_config(two) is True
    policy = model_plan([{"name": "m", "version_policy": "all"}], [found("m", {"1": "a"})], 1)
    assert needs_model_config(policy) is True
