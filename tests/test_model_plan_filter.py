"""Unit tests of the tfs_fleet.common.model_plan and needs_model_config filters (the
tfserving_models role's plan), fed with results shaped like tfs_fleet.common.model_sources'
(and, once, with the real thing)."""

from __future__ import annotations

import builtins
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tfs_fleet.common.plugins.filter.models import (
    model_plan,
    needs_model_config,
)
from ansible_collections.tfs_fleet.common.plugins.module_utils.model_sources import (
    PlanError,
    scan_models,
    wanted_versions,
)

BASE = "/srv/export"


def table(digest: str) -> dict[str, dict[str, Any]]:
    return {"saved_model.pb": {"sha256": digest * 64, "size": 5}}


def version(name: str, v: str, digest: str, dir_name: str | None = None) -> dict[str, Any]:
    dir_name = dir_name or v
    return {
        "path": f"{BASE}/{name}/{dir_name}",
        "dir_name": dir_name,
        "format": "pb",
        "export_manifest": False,
        "files": table(digest),
        "manifest_sha256": digest,
    }


def found(name: str, versions: dict[str, str]) -> dict[str, Any]:
    """The `models` part of what model_sources returns for <base>/<name> (version -> digest)."""
    return {
        name: {
            "model_dir": f"{BASE}/{name}",
            "versions": {v: version(name, v, digest) for v, digest in versions.items()},
        }
    }


def both(*results: dict[str, Any]) -> dict[str, Any]:
    return {k: v for result in results for k, v in result.items()}


def test_latest_versions_kept_with_their_source_and_table() -> None:
    result = found("m", {"1": "a", "2": "b", "10": "c"})
    (plan,) = model_plan([{"name": "m"}], result, 2)
    assert plan["wanted"] == [2, 10]  # numeric order, not string order
    assert plan["manifests"] == {"2": "b", "10": "c"}
    assert plan["sources"] == {
        "2": {
            "source": f"{BASE}/m/2",
            "dir_name": "2",
            "files": table("b"),
            "manifest_sha256": "b",
        },
        "10": {
            "source": f"{BASE}/m/10",
            "dir_name": "10",
            "files": table("c"),
            "manifest_sha256": "c",
        },
    }
    assert plan["keep"] == 2 and plan["pinned"] == [] and plan["labels"] == {}
    assert plan["version_policy"] == "latest" and plan["latest_count"] == 1


def test_the_source_is_the_directory_as_named_on_the_controller() -> None:
    result = {"m": {"model_dir": f"{BASE}/m", "versions": {"7": version("m", "7", "d", "007")}}}
    (plan,) = model_plan([{"name": "m"}], result, 3)
    assert plan["wanted"] == [7]
    assert plan["sources"]["7"]["source"] == f"{BASE}/m/007"
    assert plan["sources"]["7"]["dir_name"] == "007"


def test_a_version_without_its_table_is_refused() -> None:
    result = found("m", {"1": "a"})
    del result["m"]["versions"]["1"]["files"]
    with pytest.raises(AnsibleFilterError, match="version 1 of model m has no files table"):
        model_plan([{"name": "m"}], result, 1)


def test_the_plan_from_a_scan_that_hashed_only_the_wanted_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five exported versions, keep 2: model_sources hashes the newest 2 (the same rule), no file
    of the others is opened, and model_plan plans from exactly those; a host that wants more than
    the scan was told about is refused, not planned without a table."""
    for v in range(1, 6):
        (tmp_path / "m" / str(v)).mkdir(parents=True)
        (tmp_path / "m" / str(v) / "saved_model.pb").write_bytes(b"v%d" % v)
    old = str((tmp_path / "m").resolve()) + os.sep
    real_open, real_os_open = builtins.open, os.open

    def guard(real: Any) -> Any:
        def guarded(path: Any, *args: Any, **kwargs: Any) -> Any:
            real_path = os.path.realpath(path) if isinstance(path, (str, os.PathLike)) else ""
            if real_path.startswith(old) and real_path[len(old)] in "123":
                raise AssertionError(f"opened {path}")
            return real(path, *args, **kwargs)

        return guarded

    monkeypatch.setattr(builtins, "open", guard(real_open))
    monkeypatch.setattr(os, "open", guard(real_os_open))
    models_list = [{"name": "m", "keep": 2}]
    models, stats, _ = scan_models(
        str(tmp_path), models_list, str(tmp_path.parent / "cache-wanted"), default_keep=3
    )
    assert stats["hashed_versions"] == 2 and stats["hashed_files"] == 2
    (plan,) = model_plan(models_list, models, 3)
    assert plan["wanted"] == [4, 5] and set(plan["sources"]) == {"4", "5"}
    assert plan["sources"]["5"]["files"] == {
        "saved_model.pb": {"sha256": hashlib.sha256(b"v5").hexdigest(), "size": 2}
    }
    with pytest.raises(AnsibleFilterError, match="version 3 of model m has no files table"):
        model_plan([{"name": "m", "keep": 3}], models, 3)


def test_the_plan_from_a_real_scan(tmp_path: Path) -> None:
    """model_sources' own result, as the role hands it over."""
    for name in ("1", "0002", "tmp"):
        (tmp_path / "m" / name).mkdir(parents=True)
        (tmp_path / "m" / name / "saved_model.pb").write_bytes(name.encode())
    models, _stats, _ = scan_models(str(tmp_path), ["m"], str(tmp_path.parent / "cache-plan"))
    (plan,) = model_plan([{"name": "m"}], models, 3)
    assert plan["wanted"] == [1, 2]
    assert plan["sources"]["2"]["source"] == str(tmp_path / "m" / "0002")
    assert plan["sources"]["2"]["files"] == {
        "saved_model.pb": {"sha256": hashlib.sha256(b"0002").hexdigest(), "size": 4}
    }


def test_a_model_keep_overrides_the_default() -> None:
    (plan,) = model_plan([{"name": "m", "keep": 1}], found("m", {"1": "a", "2": "b"}), 5)
    assert plan["wanted"] == [2] and plan["keep"] == 1


def test_requested_versions_are_served_as_asked_and_pins_kept() -> None:
    models = [{"name": "m", "versions": [3, "1", 3], "pinned": [1]}]
    (plan,) = model_plan(models, found("m", {"1": "a", "2": "b", "3": "c"}), 1)
    assert plan["wanted"] == [1, 3] and plan["pinned"] == [1]
    assert plan["manifests"] == {"1": "a", "3": "c"} and set(plan["sources"]) == {"1", "3"}


def test_a_requested_version_that_was_not_exported_names_model_base_and_versions() -> None:
    with pytest.raises(AnsibleFilterError) as err:
        model_plan([{"name": "m", "versions": [4]}], found("m", {"1": "a"}), 1)
    message = str(err.value)
    assert "tfserving_models_list[m].versions asks for [4]" in message
    assert f"{BASE}/m holds [1]" in message


def test_no_version_says_what_a_version_is() -> None:
    with pytest.raises(AnsibleFilterError) as err:
        model_plan([{"name": "m"}], found("m", {}), 1)
    message = str(err.value)
    assert "model m: no version under /srv/export/m" in message
    assert "a numbered SavedModel directory" in message and "saved_model.pb" in message


def test_keep_below_one_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match=r"tfserving_models_list\[m\].keep must be"):
        model_plan([{"name": "m", "keep": -1}], found("m", {"1": "a"}), 1)


# The messages of the "which versions are wanted" rule, word for word: model_plan raises what
# wanted_versions (module_utils/model_sources.py, the rule model_sources hashes by) raises.
NO_VERSION = (
    f"model m: no version under {BASE}/m (a version is a numbered SavedModel directory, "
    "<tfserving_models_export_base>/<model>/<number>/ with saved_model.pb, .pbtxt or .cpb): "
    "export one there, e.g. with scripts/export_model.py --export-base "
    "<tfserving_models_export_base>"
)


@pytest.mark.parametrize(
    ("entry", "exported", "message"),
    [
        (
            {"name": "m", "versions": [4, 2]},
            {"1": "a", "2": "b"},
            f"tfserving_models_list[m].versions asks for [4], but {BASE}/m holds [1, 2]: export "
            "them first or fix the list",
        ),
        (
            {"name": "m", "versions": [4]},
            {},
            f"tfserving_models_list[m].versions asks for [4], but {BASE}/m holds no version: "
            "export them first or fix the list",
        ),
        (
            {"name": "m", "keep": -1},
            {"1": "a"},
            "tfserving_models_list[m].keep must be at least 1 (got -1)",
        ),
        ({"name": "m"}, {}, NO_VERSION),
    ],
)
def test_the_rule_s_messages_are_the_same_in_both_places(
    entry: dict[str, Any], exported: dict[str, str], message: str
) -> None:
    with pytest.raises(AnsibleFilterError) as err:
        model_plan([entry], found("m", exported), 2)
    assert str(err.value) == message
    with pytest.raises(PlanError) as rule_err:
        wanted_versions(entry, [int(v) for v in exported], 2, f"{BASE}/m")
    assert str(rule_err.value) == message


def test_the_rule_itself() -> None:
    assert wanted_versions({"name": "m"}, [1, 10, 2], 2, "d") == ([2, 10], 2)
    assert wanted_versions({"name": "m", "keep": 0}, [1, 2, 3], 2, "d") == ([2, 3], 2)
    assert wanted_versions({"name": "m", "keep": "1"}, [1, 2, 3], 2, "d") == ([3], 1)
    assert wanted_versions({"name": "m", "versions": ["3", 1, 3]}, [1, 3], 9, "d") == ([1, 3], 9)
    assert wanted_versions({"name": "m"}, [3, 1], None, "d") == ([1, 3], None)  # no default
    with pytest.raises(PlanError, match=r"tfserving_models_list\[m\].keep must be an integer"):
        wanted_versions({"name": "m", "keep": "x"}, [1], 2, "d")
    with pytest.raises(PlanError, match=r"versions must be a list of version numbers"):
        wanted_versions({"name": "m", "versions": "12"}, [1, 2, 12], 2, "d")


def test_a_model_the_scan_did_not_see_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="model_sources found nothing for model b"):
        model_plan([{"name": "a"}, {"name": "b"}], found("a", {"1": "x"}), 1)
    with pytest.raises(AnsibleFilterError, match="sources must be the models result"):
        model_plan([{"name": "a"}], [found("a", {"1": "x"})], 1)


def test_a_label_must_point_at_a_served_version() -> None:
    models = [{"name": "m", "labels": {"stable": 1}, "version_policy": "all"}]
    with pytest.raises(
        AnsibleFilterError,
        match=r"tfserving_models_list\[0\].labels.stable: version 1 .* is exported but not served",
    ):
        model_plan(models, found("m", {"1": "a", "2": "b"}), 1)


def test_labels_on_several_versions_need_them_loaded() -> None:
    models = [{"name": "m", "labels": {"stable": 1, "canary": 2}}]
    with pytest.raises(AnsibleFilterError, match="version_policy to all or specific"):
        model_plan(models, found("m", {"1": "a", "2": "b"}), 2)
    models[0]["latest_count"] = 2
    (plan,) = model_plan(models, found("m", {"1": "a", "2": "b"}), 2)
    assert plan["labels"] == {"stable": 1, "canary": 2}


def test_models_config_is_needed_only_beyond_the_single_model_default() -> None:
    one = model_plan([{"name": "m"}], found("m", {"1": "a"}), 1)
    assert needs_model_config(one) is False
    assert needs_model_config(one, force=True) is True
    two = model_plan(
        [{"name": "a"}, {"name": "b"}], both(found("a", {"1": "x"}), found("b", {"1": "y"})), 1
    )
    assert needs_model_config(two) is True
    policy = model_plan([{"name": "m", "version_policy": "all"}], found("m", {"1": "a"}), 1)
    assert needs_model_config(policy) is True
