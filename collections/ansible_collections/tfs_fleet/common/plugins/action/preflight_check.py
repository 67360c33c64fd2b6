# Copyright: tfs-fleet developers
# Apache License 2.0
"""Action plugin of tfs_fleet.common.preflight_check (runs on the controller only)."""

from __future__ import annotations

import os
from typing import Any

import yaml
from ansible.plugins.action import ActionBase

try:  # ansible-core >= 2.19: strings read from a file are templates only when trusted
    from ansible.template import trust_as_template
except ImportError:  # pragma: no cover - older ansible-core renders every string

    def trust_as_template(value: Any) -> Any:
        return value


from ansible_collections.tfs_fleet.common.plugins.module_utils.preflight import check_variables


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        roles_dir = self._task.args.get("roles_dir")
        roles = list(self._task.args.get("roles") or [])
        if not roles_dir or not os.path.isdir(roles_dir):
            return {**result, "failed": True, "msg": f"roles_dir {roles_dir!r} is not a directory"}
        options: dict[str, dict[str, Any]] = {}
        for role in sorted(os.listdir(roles_dir)):
            spec_path = os.path.join(roles_dir, role, "meta", "argument_specs.yml")
            if os.path.isfile(spec_path):
                with open(spec_path, encoding="utf-8") as handle:
                    spec = yaml.safe_load(handle) or {}
                options[role] = spec.get("argument_specs", {}).get("main", {}).get("options", {})
        missing = [role for role in roles if role not in options]
        if missing:
            return {
                **result,
                "failed": True,
                "msg": f"roles without meta/argument_specs.yml: {missing}",
            }
        values: dict[str, Any] = {}
        for role in roles:
            for name, spec in options[role].items():
                if name in task_vars:
                    raw = task_vars[name]
                else:
                    raw = spec.get("default")
                    if isinstance(raw, str):
                        raw = trust_as_template(raw)  # the project's own argument spec
                try:
                    values[name] = self._templar.template(raw)
                except Exception as err:
                    # Depends on what is not known yet (facts, inventory plugins): the role
                    # checks it when it runs.
                    result.setdefault("unchecked", []).append(f"{name}: {err}")
        # The specs themselves: check_variables reads the options' names and their types.
        problems = check_variables(
            values,
            task_vars.keys(),
            options,
            roles,
            groups=task_vars.get("group_names") or (),
            host=str(task_vars.get("inventory_hostname", "this host")),
        )
        result["problems"] = problems
        result["changed"] = False
        if problems:
            result["failed"] = True
            result["msg"] = (
                f"{len(problems)} variable problem(s), nothing was changed on any host:\n- "
                + "\n- ".join(problems)
            )
        else:
            result["msg"] = f"variables of {len(roles)} role(s) checked"
        return result
