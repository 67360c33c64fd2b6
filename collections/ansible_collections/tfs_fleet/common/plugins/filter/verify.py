# Copyright: tfs-fleet developers
# Apache License 2.0
"""Filters for the tfserving_verify role: what to smoke-test, and what the reports say."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: smoke_plan
short_description: One smoke-test run per model, at the newest version the batch serves
description:
  - Takes the registered results of a C(find) for the manifests of each model under the export
    base (one per model, C(item) the model name) and the served versions of every host of the
    batch (a list of a dict of model name to sorted versions, from C(tfserving_models_served)).
  - For each model, the version is the newest that any host serves or, when no host reports
    one (the models role did not run in this play), the newest exported one; the manifest is
    that version's C(tfs_fleet_manifest.json) under O(export_base).
  - Fails, naming the model and the export base, when a model has neither.
  - The same file holds C(smoke_failures) (one line per failed check of one host, from the
    smoke test's JSON reports) and C(smoke_table) (the smoke test's own fleet table per model).
positional: served, export_base
options:
  _input:
    description: The results list of the find task (each with C(item) and C(files)).
    type: list
    required: true
  served:
    description: Each batch host's served versions, a dict of model name to sorted versions.
    type: list
    required: true
  export_base:
    description: The controller's export base.
    type: str
    required: true
"""

MANIFEST = "tfs_fleet_manifest.json"


def _exported_versions(result: Mapping[str, Any]) -> list[int]:
    versions = set()
    for entry in result.get("files", []):
        name = posixpath.basename(posixpath.dirname(str(entry["path"])))
        if name.isdigit():
            versions.add(int(name))
    return sorted(versions)


def smoke_plan(
    found: Iterable[Mapping[str, Any]], served: Iterable[Any], export_base: str
) -> list[dict[str, Any]]:
    served_maps = [s for s in served if isinstance(s, Mapping)]
    plan = []
    for result in found:
        model = str(result["item"])
        host_versions = [max(s[model]) for s in served_maps if s.get(model)]
        exported = _exported_versions(result)
        if host_versions:
            version = max(int(v) for v in host_versions)
        elif exported:
            version = exported[-1]
        else:
            raise AnsibleFilterError(
                f"no exported version of {model} under {export_base} and no host serves one: "
                "export it first (scripts/export_model.py) or fix tfserving_verify_export_base"
            )
        plan.append(
            {
                "model": model,
                "version": version,
                "manifest": posixpath.join(export_base, model, str(version), MANIFEST),
            }
        )
    return plan


def smoke_failures(reports: Iterable[Mapping[str, Any]], grpc: str) -> list[str]:
    """'<model>: <check>: <detail>' for each report where the host at ``grpc`` failed."""
    failures = []
    for report in reports:
        for entry in report.get("hosts", []):
            if entry.get("grpc") != grpc or entry.get("ok"):
                continue
            check = entry.get("failed_check") or "?"
            detail = (entry.get("checks", {}).get(check) or {}).get("detail") or "failed"
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
        return {f.__name__: f for f in (smoke_plan, smoke_failures, smoke_table)}  # fmt: skip
