"""The Grafana dashboard's panel queries (dashboards/tfs-fleet.json), with Grafana's variables
replaced the way Grafana does for "All" (the regex .*) and a rate interval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "dashboards" / "tfs-fleet.json"
SUBSTITUTIONS = {"$__rate_interval": "1m", "$model": ".*", "$host": ".*"}


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def queries() -> list[dict[str, Any]]:
    """One entry per panel target: panel title, whether it is a GPU panel, the expression."""
    out = []
    for panel in load()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in SUBSTITUTIONS.items():
                expr = expr.replace(name, value)
            out.append(
                {
                    "panel": panel["title"],
                    "ref": target["refId"],
                    "gpu": "DCGM_FI_" in expr,
                    "expr": expr,
                }
            )
    return out
