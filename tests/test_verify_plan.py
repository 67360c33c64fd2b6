"""The tfserving_verify role's filters (filter/verify.py): the plan from the versions
tfs_fleet.common.model_sources finds, golden files of the model entries, and the per-host
failure lines from the smoke test's JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tfs_fleet.common.plugins.filter import verify


def sources(base: Path, model: str, *dir_names: str) -> dict[str, Any]:
    """What model_sources returns for one model: versions keyed by number, dir names kept."""
    return {
        model: {
            "model_dir": str(base / model),
            "versions": {
                str(int(name)): {
                    "path": str(base / model / name),
                    "dir_name": name,
                    "format": "pbtxt",
                    "export_manifest": False,
                }
                for name in dir_names
            },
        }
    }


def test_smoke_models_takes_the_entries_of_the_list() -> None:
    models_list = [{"name": "a", "golden": "g.json", "keep": 2}, {"name": "b"}, "junk"]
    assert verify.smoke_models(["a", "c"], models_list) == [
        {"name": "a", "golden": "g.json", "keep": 2},
        {"name": "c"},
    ]
    assert verify.smoke_models(["a"], None) == [{"name": "a"}]  # type: ignore[arg-type]


def test_plan_uses_version_directories_and_the_previous_one(tmp_path: Path) -> None:
    found = sources(tmp_path, "mnist", "001", "007", "12")
    [plan] = verify.smoke_plan(found, [], str(tmp_path), [{"name": "mnist"}])
    assert plan["version"] == 12
    assert plan["saved_model"] == str(tmp_path / "mnist" / "12")
    assert plan["previous_saved_model"] == str(tmp_path / "mnist" / "007")
    assert plan["format"] == "pbtxt" and plan["golden"] == ""
    # The hosts serve 7: it is checked, against 1 as the previous version.
    [plan] = verify.smoke_plan(found, [{"mnist": [1, 7]}], str(tmp_path), [{"name": "mnist"}])
    assert (plan["version"], plan["previous_saved_model"]) == (7, str(tmp_path / "mnist" / "001"))
    [plan] = verify.smoke_plan(found, [{"mnist": [1]}], str(tmp_path), [{"name": "mnist"}])
    assert plan["previous_saved_model"] == ""


def test_a_served_version_missing_from_the_export_base_fails(tmp_path: Path) -> None:
    found = sources(tmp_path, "m", "1")
    with pytest.raises(AnsibleFilterError, match=r"the hosts serve version 4 of m, but .* has no"):
        verify.smoke_plan(found, [{"m": [4]}], str(tmp_path), [{"name": "m"}])


def test_golden_paths_resolve_and_must_exist(tmp_path: Path) -> None:
    found = sources(tmp_path, "m", "1")
    (tmp_path / "m" / "checks").mkdir(parents=True)
    (tmp_path / "m" / "checks" / "golden.json").write_text("{}")
    absolute = tmp_path / "elsewhere.json"
    absolute.write_text("{}")
    for golden, expected in (
        ("checks/golden.json", tmp_path / "m" / "checks" / "golden.json"),
        (str(absolute), absolute),
        ("", None),
    ):
        [plan] = verify.smoke_plan(found, [], str(tmp_path), [{"name": "m", "golden": golden}])
        assert plan["golden"] == (str(expected) if expected else "")
    with pytest.raises(
        AnsibleFilterError,
        match=r"tfserving_models_list entry 'm': golden file .*/m/missing.json does not exist "
        r"\(golden: 'missing.json'; a relative path is under .*/m/\); nothing was sent",
    ):
        verify.smoke_plan(found, [], str(tmp_path), [{"name": "m", "golden": "missing.json"}])
    with pytest.raises(AnsibleFilterError, match="golden must be a file path"):
        verify.smoke_plan(found, [], str(tmp_path), [{"name": "m", "golden": ["a"]}])


def test_failures_name_every_failed_check_of_the_host() -> None:
    reports = [
        {
            "model": "mnist",
            "hosts": [
                {
                    "grpc": "h1:1",
                    "ok": False,
                    "failed_check": "signatures",
                    "checks": {
                        "status": {"ok": True, "status": "PASS", "detail": "v 1"},
                        "signatures": {"ok": False, "status": "FAIL", "detail": "dropped x"},
                        "predict serving_default": {"ok": None, "status": "NOT RUN",
                                                    "detail": "tf.Example"},
                        "golden": {"ok": False, "status": "FAIL", "detail": "off by 1"},
                    },
                },
                {"grpc": "h2:1", "ok": True, "checks": {}},
                # A host that failed with nothing FAILed in its checks (older reports).
                {"grpc": "h3:1", "ok": False, "failed_check": "answers", "checks": {}},
            ],
        }
    ]  # fmt: skip
    assert verify.smoke_failures(reports, "h1:1") == [
        "mnist: signatures: dropped x",
        "mnist: golden: off by 1",
    ]
    assert verify.smoke_failures(reports, "h2:1") == []
    assert verify.smoke_failures(reports, "h3:1") == ["mnist: answers: failed"]
