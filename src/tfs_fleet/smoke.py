"""Post-deploy smoke test of TF Serving hosts (no TensorFlow import: cold start ~0.3 s).

Per host, in order (a failed check stops that host's later checks):
  status    gRPC GetModelStatus until the version is AVAILABLE (bounded wait)
  metadata  REST /v1/models/<name>/versions/<v>/metadata shows the manifest's signature
  predict   gRPC Predict with the manifest's golden sample, compared with its expected output
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tfs_fleet.client import (
    GrpcClient,
    RestClient,
    RetryPolicy,
    ServingError,
    TlsConfig,
    VersionStatus,
)
from tfs_fleet.manifest import Manifest

CHECKS = ("status", "metadata", "predict")
_POLL_ONCE = RetryPolicy(attempts=1)


@dataclass(frozen=True)
class Target:
    grpc: str
    rest: str


@dataclass
class SmokeOptions:
    model: str
    manifest: Manifest
    version: int | None = None
    signature: str | None = None  # metadata check; default: the manifest sample's signature
    wait_s: float = 60.0
    poll_s: float = 1.0
    timeout_s: float = 10.0
    rtol: float | None = None  # default: the manifest's
    atol: float | None = None
    repeat: int = 5
    max_message_bytes: int = 64 * 1024 * 1024  # gRPC messages and REST answers
    # The whole run ends by then (time.monotonic()); None: only the per-request timeouts.
    deadline: float | None = None
    tls: TlsConfig | None = None  # gRPC over TLS (mutual TLS with a client key and certificate)


@dataclass
class Check:
    name: str
    ok: bool | None = None  # None: not run (an earlier check failed)
    detail: str = ""
    seconds: float = 0.0


@dataclass
class HostReport:
    grpc: str
    rest: str
    version: int | None = None
    checks: dict[str, Check] = field(default_factory=lambda: {c: Check(c) for c in CHECKS})
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks.values())

    @property
    def failed(self) -> Check | None:
        return next((c for c in self.checks.values() if c.ok is False), None)

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["ok"] = self.ok
        doc["failed_check"] = self.failed.name if self.failed else None
        return doc


class CheckFailed(Exception):
    pass


# ---- status ----------------------------------------------------------------------------------


def _pick_version(statuses: list[VersionStatus], wanted: int | None) -> tuple[int | None, str]:
    """(available version or None, description of what was seen)."""
    seen = ", ".join(f"{s.version}:{s.state}" for s in statuses) or "no versions"
    for s in statuses:
        if s.state == "END" and s.error_code != "OK" and (wanted is None or s.version == wanted):
            raise CheckFailed(
                f"version {s.version} failed to load: {s.error_code}: {s.error_message}"
            )
    available = [s.version for s in statuses if s.state == "AVAILABLE"]
    if wanted is not None:
        return (wanted if wanted in available else None), seen
    return (max(available) if available else None), seen


def wait_available(
    client: GrpcClient,
    opts: SmokeOptions,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    deadline = clock() + opts.wait_s
    if opts.deadline is not None:
        deadline = min(deadline, opts.deadline)
    last = ""
    while True:
        try:
            remaining = max(deadline - clock(), 0.05)
            statuses = client.get_model_status(
                opts.model,
                version=opts.version,
                timeout_s=min(opts.timeout_s, remaining),
                retry=_POLL_ONCE,  # the loop itself is the retry
            )
            version, last = _pick_version(statuses, opts.version)
            if version is not None:
                return version
        except ServingError as exc:
            last = str(exc)
        if clock() >= deadline:
            wanted = f"version {opts.version}" if opts.version is not None else "any version"
            raise CheckFailed(
                f"model {opts.model!r} {wanted} not AVAILABLE after {opts.wait_s:g} s "
                f"(last answer: {last})"
            )
        sleep(min(opts.poll_s, max(deadline - clock(), 0.0)))


# ---- metadata --------------------------------------------------------------------------------


def _shape_of(info: Mapping[str, Any]) -> list[int] | None:
    shape = info.get("tensor_shape", {})
    if shape.get("unknown_rank"):
        return None
    return [int(d.get("size", 0)) for d in shape.get("dim", [])]


def _compare_tensor_infos(kind: str, served: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    if set(served) != set(wanted):
        raise CheckFailed(
            f"{kind} keys {sorted(served)} differ from the manifest's {sorted(wanted)}"
        )
    for key, want in wanted.items():
        info = served[key]
        if info.get("dtype") != want["dtype"]:
            raise CheckFailed(
                f"{kind} {key!r} dtype {info.get('dtype')}, manifest says {want['dtype']}"
            )
        if want.get("shape") is not None and _shape_of(info) != want["shape"]:
            raise CheckFailed(
                f"{kind} {key!r} shape {_shape_of(info)}, manifest says {want['shape']}"
            )


def check_metadata(rest: RestClient, opts: SmokeOptions, version: int, signature: str) -> str:
    doc = rest.metadata(opts.model, version=version)
    try:
        sigs = doc["metadata"]["signature_def"]["signature_def"]
    except (KeyError, TypeError) as exc:
        raise CheckFailed(f"answer has no metadata.signature_def.signature_def ({exc})") from exc
    if signature not in sigs:
        names = sorted(s for s in sigs if not s.startswith("__"))
        raise CheckFailed(f"signature {signature!r} not served; the model has {names}")
    wanted = opts.manifest.signatures.get(signature)
    if wanted is None:
        raise CheckFailed(f"signature {signature!r} is not in the manifest {opts.manifest.path}")
    _compare_tensor_infos("input", sigs[signature].get("inputs", {}), wanted["inputs"])
    _compare_tensor_infos("output", sigs[signature].get("outputs", {}), wanted["outputs"])
    return f"signature {signature!r} matches the manifest"


# ---- predict ---------------------------------------------------------------------------------


def _compare_outputs(
    got: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray], rtol: float, atol: float
) -> None:
    for key, want in expected.items():
        if key not in got:
            raise CheckFailed(f"output {key!r} missing from the answer (got {sorted(got)})")
        have = got[key]
        if have.shape != want.shape:
            raise CheckFailed(
                f"output {key!r} shape {list(have.shape)}, expected {list(want.shape)}"
            )
        if want.dtype == object:
            if not np.array_equal(have, want):
                raise CheckFailed(f"output {key!r} differs from the expected strings")
        elif not np.allclose(have, want, rtol=rtol, atol=atol):
            diff = float(np.max(np.abs(have.astype(np.float64) - want.astype(np.float64))))
            raise CheckFailed(
                f"output {key!r} differs from the expected output: max abs diff {diff:.6g} "
                f"(rtol={rtol:g}, atol={atol:g}); first values {have.ravel()[:3].tolist()} vs "
                f"{want.ravel()[:3].tolist()}"
            )


def check_predict(client: GrpcClient, opts: SmokeOptions, version: int, report: HostReport) -> str:
    """Predict with the golden sample on the signature it was recorded for."""
    golden = opts.manifest.golden()
    rtol = golden.rtol if opts.rtol is None else opts.rtol
    atol = golden.atol if opts.atol is None else opts.atol
    times = []
    result = None
    for n in range(max(opts.repeat, 1)):
        if n > 0 and opts.deadline is not None and time.monotonic() >= opts.deadline:
            break  # the first answer is what is checked; later ones only feed the latency
        start = time.perf_counter()
        result = client.predict(
            opts.model, golden.inputs, signature=golden.signature, version=version
        )
        times.append((time.perf_counter() - start) * 1000.0)
    assert result is not None
    _compare_outputs(result.outputs, golden.expected, rtol, atol)
    report.latency_ms = {
        "first": round(times[0], 3),
        "median": round(statistics.median(times), 3),
        "max": round(max(times), 3),
    }
    return f"{len(times)} requests, outputs match within rtol={rtol:g} atol={atol:g}"


# ---- per host and fleet ----------------------------------------------------------------------


def _run_check(report: HostReport, name: str, fn: Callable[[], str]) -> bool:
    check = report.checks[name]
    start = time.perf_counter()
    try:
        check.detail = fn()
        check.ok = True
    except (CheckFailed, ServingError, ValueError) as exc:
        check.ok, check.detail = False, str(exc)
    except Exception as exc:  # one host's surprise must not hide the other hosts' results
        check.ok, check.detail = False, f"unexpected {type(exc).__name__}: {exc}"
    check.seconds = round(time.perf_counter() - start, 3)
    return bool(check.ok)


def smoke_host(target: Target, opts: SmokeOptions) -> HostReport:
    report = HostReport(grpc=target.grpc, rest=target.rest)
    signature = opts.signature or opts.manifest.golden().signature
    retry = RetryPolicy(attempts=3)
    with GrpcClient(
        target.grpc,
        timeout_s=opts.timeout_s,
        max_message_bytes=opts.max_message_bytes,
        retry=retry,
        deadline=opts.deadline,
        tls=opts.tls,
    ) as grpc_client:
        rest = RestClient(
            target.rest,
            timeout_s=opts.timeout_s,
            max_response_bytes=opts.max_message_bytes,
            deadline=opts.deadline,
        )

        def status() -> str:
            report.version = wait_available(grpc_client, opts)
            return f"version {report.version} AVAILABLE"

        if not _run_check(report, "status", status):
            return report
        version = report.version
        assert version is not None
        if not _run_check(
            report, "metadata", lambda: check_metadata(rest, opts, version, signature)
        ):
            return report
        _run_check(
            report,
            "predict",
            lambda: check_predict(grpc_client, opts, version, report),
        )
    return report


def smoke_fleet(targets: list[Target], opts: SmokeOptions) -> list[HostReport]:
    with ThreadPoolExecutor(max_workers=min(16, max(len(targets), 1))) as pool:
        return list(pool.map(lambda t: smoke_host(t, opts), targets))


def format_table(reports: list[HostReport]) -> str:
    header = ("GRPC", "REST", "VERSION", *[c.upper() for c in CHECKS], "LATENCY_MS", "RESULT")
    rows = [header]
    for r in reports:
        marks = ["ok" if c.ok else ("FAIL" if c.ok is False else "-") for c in r.checks.values()]
        latency = f"{r.latency_ms['median']:.1f}" if r.latency_ms else "-"
        version = str(r.version) if r.version is not None else "-"
        rows.append((r.grpc, r.rest, version, *marks, latency, "PASS" if r.ok else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def failure_lines(reports: list[HostReport]) -> list[str]:
    lines = []
    for r in reports:
        failed = r.failed
        if failed is not None:
            lines.append(f"FAIL host {r.grpc} (REST {r.rest}): {failed.name}: {failed.detail}")
    return lines
