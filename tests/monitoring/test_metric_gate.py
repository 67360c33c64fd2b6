"""The rollout's metric gate logic (filter/metric_gate.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.tfs_fleet.common.plugins.filter.metric_gate import (
    metric_gate_figures,
    metric_gate_queries,
    metric_gate_verdict,
)

LIMITS = {
    "min_requests": 20, "max_error_ratio": 0.05, "max_p99_ms": 1000,
    "max_error_ratio_excess": 0.02, "max_p99_factor": 2.0, "min_p99_delta_ms": 10,
}  # fmt: skip
BASE = {"requests": 500, "error_ratio": 0.0, "p99_ms": 4.0}


def test_a_canary_like_the_fleet_passes() -> None:
    verdict = metric_gate_verdict(
        {"requests": 480, "error_ratio": 0.0, "p99_ms": 6.5}, BASE, LIMITS
    )
    assert verdict["passed"] is True and verdict["failures"] == []
    assert "hosts not updated: 500 requests" in verdict["summary"]


def test_a_slower_canary_fails_with_the_figure() -> None:
    verdict = metric_gate_verdict(
        {"requests": 480, "error_ratio": 0.0, "p99_ms": 60.0}, BASE, LIMITS
    )
    assert verdict["passed"] is False
    (failure,) = verdict["failures"]
    assert "p99 latency 60.0 ms is 15.0x that of the hosts not updated (4.0 ms), 56.0 ms more" in (
        failure
    )


def test_fixed_limits_and_error_ratio() -> None:
    verdict = metric_gate_verdict(
        {"requests": 100, "error_ratio": 0.06, "p99_ms": 1500.0}, BASE, LIMITS
    )
    assert len(verdict["failures"]) == 4
    assert "non-OK ratio 6.00% is above the limit 5.00% by 1.00%" in verdict["failures"][0]
    assert "worse than the hosts not updated (0.00%) by 6.00%" in verdict["failures"][1]
    assert "p99 latency 1500.0 ms is above the limit 1000 ms by 500.0 ms" in verdict["failures"][2]


def test_last_batch_has_fixed_limits_only_and_too_little_traffic_fails() -> None:
    alone = metric_gate_verdict({"requests": 100, "error_ratio": 0.01, "p99_ms": 50.0}, {}, LIMITS)
    assert alone["passed"] is True and "fixed limits only" in alone["summary"]
    idle = metric_gate_verdict({"requests": 3, "error_ratio": None, "p99_ms": None}, BASE, LIMITS)
    assert idle["passed"] is False and "fewer than the 20 needed" in idle["failures"][0]
    with pytest.raises(AnsibleFilterError, match="limits lack"):
        metric_gate_verdict({}, {}, {"min_requests": 1})


def test_figures_from_prometheus_answers() -> None:
    def answer(value: str | None) -> dict:
        result = [] if value is None else [{"metric": {}, "value": [0, value]}]
        return {"status": "success", "data": {"resultType": "vector", "result": result}}

    figures = metric_gate_figures(
        {"requests": answer("200"), "errors": answer("5"), "p99_ms": answer("12.3456")}
    )
    assert figures == {"requests": 200.0, "error_ratio": 0.025, "p99_ms": 12.35}
    none = metric_gate_figures(
        {"requests": answer(None), "errors": answer(None), "p99_ms": answer("NaN")}
    )
    assert none == {"requests": 0.0, "error_ratio": None, "p99_ms": None}
    with pytest.raises(AnsibleFilterError, match="did not answer"):
        metric_gate_figures(
            {"requests": {"status": "error"}, "errors": answer("0"), "p99_ms": answer("1")}
        )


def test_queries_select_the_hosts_and_parse(tmp_path: Path) -> None:
    queries = metric_gate_queries(["tfs-fleet-mon-1", "gpu-a.example"], "60s")
    assert 'host=~"tfs-fleet-mon-1|gpu-a\\\\.example"' in queries["requests"]
    assert metric_gate_queries([], "60s") == {}
    with pytest.raises(AnsibleFilterError, match="selector"):
        metric_gate_queries(['a"}'], "60s")
    with pytest.raises(AnsibleFilterError, match="duration"):
        metric_gate_queries(["a"], "1 minute")
    rules = {"groups": [{"name": "gate", "rules": [
        {"record": f"gate:{k}", "expr": v} for k, v in queries.items()]}]}  # fmt: skip
    path = tmp_path / "gate.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: run scripts/ensure_controller_tools.sh"
    proc = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
