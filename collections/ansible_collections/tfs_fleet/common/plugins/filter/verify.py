# Copyright: tfs-fleet developers
# Apache License 2.0
"""Filters for the tfserving_verify role: what to smoke-test, and what the reports say."""

from __future__ import annotations

import os.path
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: smoke_plan
short_description: One smoke-test run per model, at the newest version the batch serves
description:
  - Takes the C(models) result of C(tfs_fleet.common.model_sources) (the versions found under
    the export base, each with its version directory C(path)), the served versions of every
    host of the batch (a list of a dict of model name to sorted versions, from
    C(tfserving_models_served)), the export base and the models' entries (from C(smoke_models)).
  - For each model, the version is the newest that any host serves or, when no host reports
    one (the models role did not run in this play), the newest exported one. The smoke test
    gets that version's directory (C(--saved-model)), the newest exported version below it
    (C(--previous-saved-model)) when there is one, and the entry's C(golden) file
    (C(--golden)), an absolute controller path or one relative to C(<export_base>/<model>/).
  - Fails, naming the model, when a model has no exported version and no host serves one, when
    the served version is not under the export base, or when the entry's golden file does not
    exist.
  - The same file holds C(smoke_models) (each model name with its tfserving_models_list entry),
    C(smoke_failures) (one line per failed check of one host, from the smoke test's JSON
    reports) and C(smoke_table) (the smoke test's own fleet table per model).
positional: served, export_base, entries
options:
  _input:
    description: The C(models) dict of tfs_fleet.common.model_sources (name -> model_dir, versions).
    type: dict
    required: true
  served:
    description: Each batch host's served versions, a dict of model name to sorted versions.
    type: list
    required: true
  export_base:
    description: The controller's export base.
    type: str
    required: true
  entries:
    description: The models to check, dicts with C(name) and optionally C(golden) (smoke_models).
    type: list
    required: true
"""


def smoke_models(names: Iterable[Any], models_list: Iterable[Any]) -> list[dict[str, Any]]:
    """Each name with its tfserving_models_list entry (a bare ``{name}`` when it has none)."""
    entries = {
        str(m["name"]): m for m in models_list or [] if isinstance(m, Mapping) and "name" in m
    }
    return [dict(entries.get(str(name), {"name": str(name)})) for name in names]


def _golden_path(entry: Mapping[str, Any], model: str, export_base: str) -> str:
    golden = entry.get("golden")
    if golden in (None, ""):
        return ""
    if not isinstance(golden, str):
        raise AnsibleFilterError(
            f"tfserving_models_list entry {model!r}: golden must be a file path, got {golden!r}"
        )
    path = golden if posixpath.isabs(golden) else posixpath.join(export_base, model, golden)
    path = posixpath.normpath(path)
    if not os.path.isfile(path):
        raise AnsibleFilterError(
            f"tfserving_models_list entry {model!r}: golden file {path} does not exist (golden: "
            f"{golden!r}; a relative path is under {posixpath.join(export_base, model)}/); "
            "nothing was sent to any host"
        )
    return path


def smoke_plan(
    sources: Mapping[str, Any],
    served: Iterable[Any],
    export_base: str,
    entries: Iterable[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    served_maps = [s for s in served if isinstance(s, Mapping)]
    plan = []
    for entry in entries:
        model = str(entry["name"])
        found = (sources.get(model) or {}).get("versions") or {}
        exported = {int(number): info for number, info in found.items()}
        host_versions = [max(s[model]) for s in served_maps if s.get(model)]
        if host_versions:
            version = max(int(v) for v in host_versions)
        elif exported:
            version = max(exported)
        else:
            raise AnsibleFilterError(
                f"no exported version of {model} under {export_base} and no host serves one: "
                "export it first (scripts/export_model.py) or fix tfserving_verify_export_base"
            )
        if version not in exported:
            raise AnsibleFilterError(
                f"the hosts serve version {version} of {model}, but "
                f"{posixpath.join(export_base, model)} has no version directory {version} (it "
                f"has {sorted(exported) or 'none'}): the smoke test reads the SavedModel the "
                "hosts serve from the export base"
            )
        older = [n for n in exported if n < version]
        plan.append(
            {
                "model": model,
                "version": version,
                "saved_model": str(exported[version]["path"]),
                "format": str(exported[version].get("format", "")),
                "previous_saved_model": str(exported[max(older)]["path"]) if older else "",
                "golden": _golden_path(entry, model, export_base),
            }
        )
    return plan


def smoke_failures(reports: Iterable[Mapping[str, Any]], grpc: str) -> list[str]:
    """'<model>: <check>: <detail>' for each failed check of the host at ``grpc`` (the
    report's ``failed_check`` when its checks carry no status)."""
    failures = []
    for report in reports:
        for entry in report.get("hosts", []):
            if entry.get("grpc") != grpc or entry.get("ok"):
                continue
            checks = entry.get("checks") or {}
            failed = [
                name
                for name, check in checks.items()
                if isinstance(check, Mapping)
                and (check.get("status") == "FAIL" or check.get("ok") is False)
            ]
            if not failed:
                failed = [entry.get("failed_check") or "?"]
            for check in failed:
                detail = (checks.get(check) or {}).get("detail") or "failed"
                failures.append(f"{report.get('model')}: {check}: {detail}")
    return failures


def smoke_table(reports: Iterable[Mapping[str, Any]]) -> list[str]:
    """The smoke test's own table for each model, under a line naming the model."""
    lines: list[str] = []
    for report in reports:
        lines.append(f"model {report.get('model')}:")
        lines.extend(report.get("table", []))
    return lines


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {f.__name__: f for f in (smoke_models, smoke_plan, smoke_failures, smoke_table)}  # fmt: skip
