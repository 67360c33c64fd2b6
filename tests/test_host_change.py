"""Issue 24 item 2: the host-setup roles' plans (found in check mode) become one decision per
host: drain it and change it host by host, or apply the change at full speed
(filter tfs_fleet.common.host_change_plan; playbooks/host_setup.yml)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.tfs_fleet.common.plugins.filter import deployment, host_change

from helpers import REPO

plan = host_change.host_change_plan
NCT = "nvidia_container_toolkit"


@pytest.mark.parametrize(
    ("changes", "disrupts"),
    [
        ({"docker": {"action": "restart", "detail": "daemon.json log-level (restart)"}}, True),
        ({"docker": {"action": "reload", "detail": "daemon.json debug (reload)"}}, False),
        ({"docker": {"action": "none", "detail": ""}}, False),
        ({"docker": {"action": "install", "detail": "no engine yet"}}, False),
        ({NCT: {"action": "upgrade", "detail": "packages to 1.18.2-1"}}, True),
        ({NCT: {"action": "install", "detail": "no toolkit yet"}}, True),
        ({NCT: {"action": "restart", "detail": "daemon.json runtimes (restart)"}}, True),
        ({NCT: {"action": "skip", "detail": ""}}, False),
        ({"docker": {"action": "reload"}, NCT: {"action": "upgrade"}}, True),
        ({}, False),
    ],
)  # fmt: skip
def test_what_disrupts_a_serving_host(changes: dict[str, Any], disrupts: bool) -> None:
    serving = plan(changes, True)
    assert serving["drain"] is disrupts
    assert bool(serving["disrupts"]) is disrupts
    # A host that serves nothing yet is never drained: it goes at full speed.
    assert plan(changes, False)["drain"] is False


def test_the_summary_names_each_disrupting_change_and_why() -> None:
    result = plan(
        {
            "docker": {"action": "restart", "detail": "daemon.json log-level (restart)"},
            "nvidia_container_toolkit": {"action": "upgrade", "detail": "packages to 1.18.2-1"},
        },
        True,
    )
    assert result["disrupts"] == [
        "docker: restart (daemon.json log-level (restart))",
        "nvidia_container_toolkit: upgrade (packages to 1.18.2-1)",
    ]
    assert result["summary"] == "; ".join(result["disrupts"])
    quiet = plan({"docker": {"action": "reload", "detail": "daemon.json debug (reload)"}}, True)
    summary = "docker: reload (daemon.json debug (reload))"
    assert quiet == {"drain": False, "disrupts": [], "summary": summary}
    assert plan({"docker": {"action": "none"}}, True)["summary"] == "no change"
    new_host = plan({"docker": {"action": "restart"}}, False)
    assert new_host["summary"] == "docker: restart - the host serves nothing yet"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"docker": {"action": "upgrade"}}, "docker planned 'upgrade'"),
        ({"nvidia_fabric": {"action": "none"}}, "no plan rules for role 'nvidia_fabric'"),
        (["docker"], "expected a dict of role plans"),
    ],
)
def test_an_unknown_plan_is_an_error_not_a_silent_pass(changes: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        plan(changes, True)


def test_host_change_batches_name_their_own_variable() -> None:
    assert deployment.rollout_batches([1], "tfserving_rollout_host_change_serial") == ["1"]
    with pytest.raises(AnsibleFilterError, match=r"^tfserving_rollout_host_change_serial must be"):
        deployment.rollout_batches([0], "tfserving_rollout_host_change_serial")


def test_host_setup_drains_one_host_at_a_time_by_default_never_the_rollout_batches() -> None:
    plays = yaml.safe_load((REPO / "playbooks/host_setup.yml").read_text())
    drained = next(p for p in plays if "host_change_drain" in p["hosts"])
    assert drained["hosts"] == "host_change_drain_canary:host_change_drain"
    assert "tfserving_rollout_host_change_serial | default([1])" in drained["serial"]
    assert "tfserving_rollout_serial" not in drained["serial"].replace("host_change_serial", "")
    assert drained["max_fail_percentage"] == 0
    defaults = yaml.safe_load((REPO / "roles/tfserving_rollout/defaults/main.yml").read_text())
    assert defaults["tfserving_rollout_host_change_serial"] == [1]
    # The plan runs whatever the tags, and the fast path never takes a drained host.
    assert plays[0]["tags"] == ["always"]
    assert all(p["hosts"] == "host_change_direct" for p in plays[1:-1])
