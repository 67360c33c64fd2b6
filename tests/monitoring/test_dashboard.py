"""The dashboard (dashboards/tfs-fleet.json): the panels the issue asks for, every query parsed
by promtool (offline, as recording rules), no Grafana variable left unreplaced. The verifier of
molecule/tfserving_monitoring runs the same queries against the sandbox's real Prometheus."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from dashboard import load, queries
from test_rules import promtool


def test_dashboard_has_the_panels_an_sre_watches() -> None:
    titles = " / ".join(p["title"] for p in load()["panels"]).lower()
    for needle in ("request rate", "non-ok ratio", "p50 / p99", "versions per host", "gpu xid"):
        assert needle in titles, needle
    exprs = " ".join(q["expr"] for q in queries())
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.99," in exprs
    assert "by (model_name, host" in exprs


def test_every_query_parses(tmp_path: Path) -> None:
    found = queries()
    assert len(found) >= 12
    for q in found:
        assert "$" not in q["expr"].replace("$1", ""), q
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:{i}", "expr": q["expr"]} for i, q in enumerate(found)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    proc = promtool("check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(rf"SUCCESS: {len(found)} rules found", proc.stdout), proc.stdout
