"""`up` of every target a Prometheus scrapes, as a table: what `make demo` prints at its end.

Exit codes: 0 every target up, 1 a target down or none at all, 2 bad usage or Prometheus not
answering. With --wait S it asks again every 2 s, for at most S seconds, until every target is up:
a Prometheus that has just started has not scraped (or even discovered) its targets yet."""

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


def query_up(url: str, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """The `up` series of the Prometheus at `url` (its HTTP API, /api/v1/query)."""
    full = f"{url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": "up"})
    with urllib.request.urlopen(full, timeout=timeout_s) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise ValueError(f"{url}: the query failed: {body.get('error', body)}")
    return list(body["data"]["result"])


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


def table(found: Sequence[tuple[str, str, str, bool]]) -> str:
    header = ("JOB", "INSTANCE", "HOST", "UP")
    lines = [header, *[(j, i, h, "1" if up else "0 DOWN") for j, i, h, up in found]]
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
        help="ask again every 2 s for at most S seconds until every target is up (default 0)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.wait < 0 or args.timeout <= 0:
        parser.error("--wait must be 0 or more and --timeout more than 0")
    deadline = time.monotonic() + args.wait
    while True:
        try:
            found = rows(query_up(args.url, args.timeout))
            error = None
        except (OSError, ValueError, urllib.error.URLError) as exc:
            found, error = [], exc
        settled = error is None and found and all(up for *_, up in found)
        if settled or time.monotonic() + 2 > deadline:
            break
        time.sleep(2)
    if error is not None:
        print(f"prometheus_targets: {args.url} does not answer: {error}", file=sys.stderr)
        return 2
    print(f"Prometheus {args.url}: up")
    print(table(found))
    down = [f"{job} {instance}" for job, instance, _, up in found if not up]
    if not found or down:
        waited = f" after {args.wait:g} s" if args.wait else ""
        what = "down: " + ", ".join(down) if down else "no targets"
        print(f"prometheus_targets: {what}{waited}", file=sys.stderr)
        return 1
    return 0
