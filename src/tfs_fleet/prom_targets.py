"""`up` of every target a Prometheus scrapes, as a table: what `make demo` prints at its end.

Every active target (/api/v1/targets?state=active) gets a row: its `up` series, or "NOT
SCRAPED" for a target Prometheus found but has not scraped yet (it has no `up` series then).
Exit codes: 0 every active target scraped and up, 1 a target down, not scraped or none at all,
2 bad usage or Prometheus not answering. With --wait S it asks again every 2 s, for at most S
seconds, until every active target is scraped and up: a Prometheus that has just started has
scraped some of its targets, or none, or not even discovered them yet."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any


def _get(url: str, path: str, params: dict[str, str], timeout_s: float) -> Any:
    full = f"{url.rstrip('/')}{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(full, timeout=timeout_s) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise ValueError(f"{url}: {path} failed: {body.get('error', body)}")
    return body["data"]


def query_up(url: str, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """The `up` series of the Prometheus at `url` (its HTTP API, /api/v1/query)."""
    return list(_get(url, "/api/v1/query", {"query": "up"}, timeout_s)["result"])


def active_targets(url: str, timeout_s: float = 10.0) -> list[tuple[str, str]]:
    """(job, instance) of every target the Prometheus at `url` scrapes (/api/v1/targets)."""
    data = _get(url, "/api/v1/targets", {"state": "active"}, timeout_s)
    return sorted(
        (t.get("labels", {}).get("job", ""), t.get("labels", {}).get("instance", ""))
        for t in data.get("activeTargets", [])
    )


def not_scraped(
    found: Sequence[tuple[str, str, str, bool]], active: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The active targets that have no `up` series yet (found but never scraped)."""
    scraped = {(job, instance) for job, instance, _, _ in found}
    return [target for target in active if target not in scraped]


def rows(series: Sequence[dict[str, Any]]) -> list[tuple[str, str, str, bool]]:
    """(job, instance, host, up) per series, sorted by job then instance."""
    out = []
    for item in series:
        labels = item.get("metric", {})
        value = item.get("value", [0, "0"])[1]
        out.append(
            (labels.get("job", ""), labels.get("instance", ""), labels.get("host", ""),
             value == "1")
        )  # fmt: skip
    return sorted(out)


def table(
    found: Sequence[tuple[str, str, str, bool]], pending: Sequence[tuple[str, str]] = ()
) -> str:
    header = ("JOB", "INSTANCE", "HOST", "UP")
    lines = [header, *[(j, i, h, "1" if up else "0 DOWN") for j, i, h, up in found]]
    lines += [(j, i, "", "- NOT SCRAPED") for j, i in pending]
    widths = [max(len(line[c]) for line in lines) for c in range(4)]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="Prometheus's address, e.g. http://127.0.0.1:19090")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument(
        "--wait", type=float, default=0.0, metavar="S",
        help="ask again every 2 s for at most S seconds until every active target is scraped and "
        "up (default 0)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.wait < 0 or args.timeout <= 0:
        parser.error("--wait must be 0 or more and --timeout more than 0")
    deadline = time.monotonic() + args.wait
    while True:
        try:
            # Targets first: a target scraped between the two calls then has its series.
            active = active_targets(args.url, args.timeout)
            found = rows(query_up(args.url, args.timeout))
            error = None
        except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
            active, found, error = [], [], exc
        pending = not_scraped(found, active)
        settled = error is None and found and not pending and all(up for *_, up in found)
        if settled or time.monotonic() + 2 > deadline:
            break
        time.sleep(2)
    if error is not None:
        print(f"prometheus_targets: {args.url} does not answer: {error}", file=sys.stderr)
        return 2
    print(f"Prometheus {args.url}: up")
    print(table(found, pending))
    down = [f"{job} {instance}" for job, instance, _, up in found if not up]
    if not found or down or pending:
        waited = f" after {args.wait:g} s" if args.wait else ""
        problems = ["down: " + ", ".join(down)] if down else []
        if pending:
            problems.append("not scraped yet: " + ", ".join(f"{j} {i}" for j, i in pending))
        print(f"prometheus_targets: {'; '.join(problems) or 'no targets'}{waited}", file=sys.stderr)
        return 1
    return 0
