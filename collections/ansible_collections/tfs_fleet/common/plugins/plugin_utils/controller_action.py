# Copyright: tfs-fleet developers
# Apache License 2.0
"""The shape every controller-only action plugin of the collection shares: validate the task's
arguments against ARGUMENT_SPEC, compute, and return a result that never reports a change."""

from __future__ import annotations

from typing import Any, ClassVar

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


class ControllerAction(ActionBase):
    """Subclasses set NAME and ARGUMENT_SPEC and implement compute(args), which returns the
    result's keys (a ``warnings`` list among them is passed on as Ansible warnings) or raises
    ActionError for a failure that names its cause."""

    TRANSFERS_FILES = False
    _requires_connection = False
    NAME = ""
    ARGUMENT_SPEC: ClassVar[dict[str, Any]] = {}

    def compute(self, args: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        try:
            _, args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        except AnsibleActionFail as err:
            return {**result, "failed": True, "msg": f"{self.NAME}: {err}"}
        try:
            found = self.compute(args)
        except ActionError as err:
            return {**result, "failed": True, "changed": False, "msg": str(err)}
        warnings = found.pop("warnings", [])
        result.update(changed=False, **found)
        if warnings:
            result["warnings"] = warnings
        return result


class ActionError(Exception):
    """A failure of compute(), its message as the task's."""
