"""The alert rules the tfserving_monitoring role ships: promtool check rules and promtool test
rules (tests/monitoring/rules_test.yml), with the role's defaults and with other thresholds."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml
from render import render_rules

HERE = Path(__file__).resolve().parent


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: run scripts/ensure_controller_tools.sh (Debian: prometheus)"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, check=False)


def write_rules(tmp_path: Path, **overrides: object) -> Path:
    rules = tmp_path / "tfs_fleet.rules.yml"
    rules.write_text(render_rules(**overrides))
    return rules


def unit_tests(tmp_path: Path, rules: Path) -> Path:
    spec = yaml.safe_load((HERE / "rules_test.yml").read_text())
    spec["rule_files"] = [str(rules)]
    path = tmp_path / "rules_test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_rules_pass_promtool_check(tmp_path: Path) -> None:
    proc = promtool("check", "rules", str(write_rules(tmp_path)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 8 rules found" in proc.stdout


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load(render_rules())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    spec = yaml.safe_load((HERE / "rules_test.yml").read_text())
    tested = {t["alertname"] for case in spec["tests"] for t in case["alert_rule_test"]}
    assert alerts == tested


def test_rules_unit_tests_with_the_role_defaults(tmp_path: Path) -> None:
    proc = promtool("test", "rules", str(unit_tests(tmp_path, write_rules(tmp_path))))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_thresholds_are_the_role_variables(tmp_path: Path) -> None:
    """With a 20 % error threshold and 2 s p99 the same series fire neither alert, so the unit
    tests (written for the defaults) fail exactly there."""
    rules = write_rules(
        tmp_path,
        tfserving_monitoring_alert_error_ratio=0.2,
        tfserving_monitoring_alert_p99_latency_ms=2000,
    )
    text = rules.read_text()
    assert "> 0.2\n" in text and "> 2000000\n" in text
    proc = promtool("test", "rules", str(unit_tests(tmp_path, rules)))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "alertname: TFServingErrorRatioHigh" in out
    assert "alertname: TFServingP99LatencyHigh" in out
    assert "alertname: TFSFleetTargetDown" not in out
