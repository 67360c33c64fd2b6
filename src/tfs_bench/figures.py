"""Every figure of issue 16 by its name in results.json: goal, units, and what needs a sandbox
fleet. A figure is either measured (a value, compared with its goal) or not measured (value
None and a status naming the reason): never a made-up number."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_OPS: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Goal:
    op: str
    limit: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"goal operator {self.op!r}: use one of {sorted(_OPS)}")

    def met(self, value: float) -> bool:
        return _OPS[self.op](value, self.limit)

    def __str__(self) -> str:
        return f"{self.op} {self.limit:g}"


@dataclass(frozen=True)
class Spec:
    name: str
    units: str
    goal: Goal | None
    what: str
    needs_fleet: bool = False


SANDBOX_REASON = "needs the sandbox fleet over SSH; its part was not selected in this run (--only)"
NO_FLEET_REASON = "--no-fleet (needs the sandbox fleet over SSH)"

SPECS: tuple[Spec, ...] = (
    Spec("rerun_1host_s", "s", None, "idempotent site.yml re-run over SSH, 1 host", True),
    Spec("rerun_6host_s", "s", None, "idempotent site.yml re-run over SSH, 6 hosts", True),
    Spec("rerun_scaling_ratio", "ratio", Goal("<=", 1.5), "rerun_6host_s / rerun_1host_s", True),
    Spec("rerun_vs_stock_ratio", "ratio", Goal("<=", 0.5),
         "1-host re-run with ansible.cfg / with stock settings", True),
    Spec("sync_vs_rsync_ratio", "ratio", Goal("<=", 1.1),
         "first sync of a new 1 GiB version via tfserving_models / bare rsync -a, same ssh", True),
    Spec("resync_bytes", "bytes", Goal("<=", 0),
         "model-file bytes written on the host by an unchanged re-sync via tfserving_models",
         True),
    Spec("resync_vs_full_ratio", "ratio", Goal("<=", 0.05),
         "unchanged re-sync time / first sync time (both via tfserving_models)", True),
    Spec("client_vs_stub_ratio", "ratio", Goal("<=", 1.2),
         "GrpcClient.predict median / bare PredictionServiceStub.Predict median (1000 calls)"),
    Spec("smoke_cold_start_ratio", "ratio", Goal("<=", 0.2),
         "scripts/smoke_test.py run / a seed-style client importing TensorFlow (median of 5)"),
    Spec("swap_failed_requests", "requests", Goal("<=", 0),
         "failed Predict calls while a new version is loaded under steady load"),
    Spec("swap_p99_ratio", "ratio", Goal("<=", 2.0), "p99 during the swap / p99 steady"),
    # Absolute, not a ratio: a process's memory does not move with the machine's load as times do.
    Spec("big_predict_peak_rss_gib", "GiB", Goal("<=", 3.0),
         "stand-in peak resident memory (VmHWM) serving one 400 MB gRPC Predict (100M floats)"),
    Spec("rollout_failed_requests", "requests", Goal("<=", 0),
         "failed requests through the LB front door during a rollout", True),
    # The issue gives no goal of its own for this one: the swap's (p99 at most doubled).
    Spec("rollout_p99_ratio", "ratio", Goal("<=", 2.0),
         "p99 through the front door during the rollout / steady", True),
    # Issue 25: how the image reaches the hosts. Bytes: what the docker-proxy of each serving
    # host's SSH port relayed (both directions) during the fleet's first converge.
    Spec("dist_archive_bytes_per_host", "bytes", None,
         "controller<->host SSH bytes per serving host, first converge, image from the archive",
         True),
    Spec("dist_pull_bytes_per_host", "bytes", Goal("<=", 50_000_000),
         "controller<->host SSH bytes per serving host, first converge, image pulled from the "
         "fleet's registry (no image bytes: Ansible's modules and results)", True),
    Spec("dist_converge_archive_s", "s", None,
         "first converge of the bench fleet (site.yml), image from the archive", True),
    Spec("dist_converge_pull_s", "s", None,
         "first converge of the bench fleet (site.yml), image pulled from its registry", True),
    Spec("dist_converge_pull_vs_archive_ratio", "ratio", Goal("<=", 1.0),
         "dist_converge_pull_s / dist_converge_archive_s", True),
    # Estimates, not measurements of 1,000 hosts: no goal (docs/bench.md, "Past one controller").
    Spec("control_plane_rollout_1000host_s", "s", None,
         "estimate: the rollout's control path on 1,000 hosts, a line fitted to light SSH hosts "
         "(fastest measured strategy and forks; no soak, no update work)", True),
    Spec("control_plane_verify_1000host_s", "s", None,
         "estimate: the verify's control path on 1,000 hosts, a line fitted to light SSH hosts "
         "(fastest measured strategy and forks)", True),
)  # fmt: skip

SPEC_BY_NAME = {spec.name: spec for spec in SPECS}


@dataclass
class Figure:
    spec: Spec
    value: float | None = None
    status: str = "measured"
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def met(self) -> bool:
        """The value against the goal; False when not measured (nothing shows the goal met),
        True for a measured figure without a goal of its own (the input of a ratio)."""
        if self.value is None:
            return False
        return self.spec.goal is None or self.spec.goal.met(self.value)

    @property
    def missed(self) -> bool:
        """Measured, and not within its goal."""
        return self.value is not None and not self.met

    def as_dict(self) -> dict[str, Any]:
        goal = self.spec.goal
        return {
            "value": self.value,
            "goal": None if goal is None else {"op": goal.op, "limit": goal.limit},
            "met": self.met,
            "units": self.spec.units,
            "status": self.status,
            "what": self.spec.what,
            "detail": self.detail,
        }


def measured(name: str, value: float, **detail: Any) -> Figure:
    return Figure(SPEC_BY_NAME[name], value=value, detail=detail)


def not_measured(name: str, reason: str) -> Figure:
    return Figure(SPEC_BY_NAME[name], value=None, status=f"not measured: {reason}")


def complete(
    figures: Mapping[str, Figure], reasons: Mapping[str, str] | None = None
) -> list[Figure]:
    """Every figure of SPECS in their order: the given ones, the others not measured, with the
    reason from reasons when it names them, else SANDBOX_REASON for the fleet's and "not
    selected" for the rest."""
    unknown = (set(figures) | set(reasons or {})) - set(SPEC_BY_NAME)
    if unknown:
        raise ValueError(f"unknown figures: {sorted(unknown)}")
    out = []
    for spec in SPECS:
        if spec.name in figures:
            out.append(figures[spec.name])
        elif reasons and spec.name in reasons:
            out.append(not_measured(spec.name, reasons[spec.name]))
        elif spec.needs_fleet:
            out.append(not_measured(spec.name, SANDBOX_REASON))
        else:
            out.append(not_measured(spec.name, "not selected in this run (--only)"))
    return out
