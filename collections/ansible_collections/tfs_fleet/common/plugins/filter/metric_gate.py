# Copyright: tfs-fleet developers
# Apache License 2.0
"""The rollout's metric gate: PromQL for a batch's soak window and the verdict on its figures."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: metric_gate_verdict
short_description: Judge a canary by its non-OK ratio and p99 latency against limits and the fleet
description:
  - Takes the canary's figures and those of the hosts not updated yet (the baseline), read from
    Prometheus over the soak window (TF Serving's request counter and latency histogram), and
    the limits. Fails when there was too little traffic to judge, when a figure is above its
    fixed limit, or when it is worse than the baseline by more than the allowed margin. Returns
    C(passed), C(failures) (one sentence per failed figure, with the figure and by how much) and
    C(summary).
positional: baseline, limits
options:
  _input:
    description: The canary's figures, C(requests), C(error_ratio) (0-1), C(p99_ms) (None when no
      request succeeded).
    type: dict
    required: true
  baseline:
    description: The same figures for the hosts not updated yet; empty or C(requests) 0 when
      there are none (the last batch), and then only the fixed limits apply.
    type: dict
  limits:
    description: C(min_requests), C(max_error_ratio), C(max_p99_ms), C(max_error_ratio_excess)
      (allowed excess over the baseline, absolute), C(max_p99_factor) and C(min_p99_delta_ms)
      (the canary's p99 fails when above factor x baseline and more than delta above it).
    type: dict
"""

_HOST_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"metric_gate: {value!r} is not a number") from exc
    return None if math.isnan(number) or math.isinf(number) else number


def _selector(hosts: Sequence[str]) -> str:
    for host in hosts:
        if not _HOST_RE.match(str(host)):
            raise AnsibleFilterError(f"metric_gate: {host!r} cannot be used in a PromQL selector")
    # The only regex metacharacter a host name may hold here is '.': escaped inside a PromQL
    # string, whose own escape for a backslash is a doubled one.
    return "|".join(str(h).replace(".", "\\\\.") for h in hosts)


def metric_gate_queries(hosts: Sequence[str], window: str) -> dict[str, str]:
    """PromQL over ``window`` (e.g. "60s") for the hosts (the ``host`` label of the targets):
    requests, non-OK requests and the p99 latency in milliseconds (TF Serving's histogram is in
    microseconds)."""
    if not re.match(r"^[0-9]+[smh]$", str(window)):
        raise AnsibleFilterError(f"metric_gate: window {window!r} is not a Prometheus duration")
    if not hosts:
        return {}
    sel = f'host=~"{_selector(hosts)}"'
    return {
        "requests": f"sum(increase(:tensorflow:serving:request_count{{{sel}}}[{window}]))",
        "errors": (
            f'sum(increase(:tensorflow:serving:request_count{{{sel},status!="OK"}}[{window}]))'
        ),
        "p99_ms": (
            "histogram_quantile(0.99, sum by (le) "
            f"(increase(:tensorflow:serving:request_latency_bucket{{{sel}}}[{window}]))) / 1000"
        ),
    }


def metric_gate_figures(results: Mapping[str, Any]) -> dict[str, Any]:
    """Figures from Prometheus answers ({name: the JSON of /api/v1/query}) of the queries above."""

    def scalar(name: str) -> float | None:
        answer = results.get(name) or {}
        if answer.get("status") != "success":
            raise AnsibleFilterError(f"metric_gate: Prometheus did not answer {name}: {answer}")
        vector = (answer.get("data") or {}).get("result") or []
        return _number(vector[0]["value"][1]) if vector else None

    requests = scalar("requests") or 0.0
    errors = scalar("errors") or 0.0
    return {
        "requests": round(requests, 1),
        "error_ratio": round(errors / requests, 4) if requests > 0 else None,
        "p99_ms": None if scalar("p99_ms") is None else round(scalar("p99_ms") or 0.0, 2),
    }


def metric_gate_baseline(hosts: Sequence[str], hostvars: Mapping[str, Any]) -> list[str]:
    """The play's hosts that the rollout has not reached yet (no ``_tfserving_rollout_t0``):
    the hosts still on the old deployment, the canary's comparison."""
    return [h for h in hosts if "_tfserving_rollout_t0" not in (hostvars.get(h) or {})]


def metric_gate_verdict(
    canary: Mapping[str, Any], baseline: Mapping[str, Any] | None, limits: Mapping[str, Any]
) -> dict[str, Any]:
    need = ("min_requests", "max_error_ratio", "max_p99_ms", "max_error_ratio_excess",
            "max_p99_factor", "min_p99_delta_ms")  # fmt: skip
    missing = [k for k in need if k not in limits]
    if missing:
        raise AnsibleFilterError(f"metric_gate_verdict: limits lack {', '.join(missing)}")
    lim = {k: float(limits[k]) for k in need}
    requests = _number(canary.get("requests")) or 0.0
    ratio = _number(canary.get("error_ratio")) or 0.0
    p99 = _number(canary.get("p99_ms"))
    base = baseline or {}
    base_requests = _number(base.get("requests")) or 0.0
    base_ratio = _number(base.get("error_ratio"))
    base_p99 = _number(base.get("p99_ms"))
    failures: list[str] = []
    if requests < lim["min_requests"]:
        failures.append(
            f"requests: {requests:g} in the soak window, fewer than the {lim['min_requests']:g} "
            "needed to judge the canary"
        )
    if ratio > lim["max_error_ratio"]:
        failures.append(
            f"non-OK ratio {ratio:.2%} is above the limit {lim['max_error_ratio']:.2%} "
            f"by {ratio - lim['max_error_ratio']:.2%}"
        )
    if (
        base_requests > 0
        and base_ratio is not None
        and ratio > base_ratio + lim["max_error_ratio_excess"]
    ):
        failures.append(
            f"non-OK ratio {ratio:.2%} is worse than the hosts not updated ({base_ratio:.2%}) "
            f"by {ratio - base_ratio:.2%} (allowed {lim['max_error_ratio_excess']:.2%})"
        )
    if p99 is not None and p99 > lim["max_p99_ms"]:
        failures.append(
            f"p99 latency {p99:.1f} ms is above the limit {lim['max_p99_ms']:g} ms "
            f"by {p99 - lim['max_p99_ms']:.1f} ms"
        )
    if (
        p99 is not None
        and base_requests > 0
        and base_p99 is not None
        and p99 > base_p99 * lim["max_p99_factor"]
        and p99 - base_p99 > lim["min_p99_delta_ms"]
    ):
        failures.append(
            f"p99 latency {p99:.1f} ms is {p99 / base_p99 if base_p99 else float('inf'):.1f}x "
            f"that of the hosts not updated ({base_p99:.1f} ms), {p99 - base_p99:.1f} ms more "
            f"(allowed {lim['max_p99_factor']:g}x and {lim['min_p99_delta_ms']:g} ms)"
        )
    figures = f"canary: {requests:g} requests, non-OK {ratio:.2%}, p99 " + (
        "n/a" if p99 is None else f"{p99:.1f} ms"
    )
    if base_requests > 0:
        figures += (
            f"; hosts not updated: {base_requests:g} requests, non-OK "
            + ("n/a" if base_ratio is None else f"{base_ratio:.2%}")
            + ", p99 "
            + ("n/a" if base_p99 is None else f"{base_p99:.1f} ms")
        )
    else:
        figures += "; no host left to compare with (fixed limits only)"
    return {"passed": not failures, "failures": failures, "summary": figures}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {f.__name__: f for f in (metric_gate_baseline, metric_gate_queries, metric_gate_figures, metric_gate_verdict)}  # fmt: skip
