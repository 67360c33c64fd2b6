"""Continuous, bounded client load on a TF Serving address (a host or the load balancer's front
door): gRPC Predict and REST predict clients, every failure counted, latency per phase.

    with Load(LoadSpec(grpc="127.0.0.1:18500", rest="127.0.0.1:18600")) as load:
        time.sleep(10); load.mark("during"); ...
    print(json.dumps(load.report()))

A request fails when the call raises (no retry: one attempt per request) or the answer is not
the expected value. Phases split the figures (before / during / after a rollout). No
TensorFlow import: the client codec is numpy and protobuf only.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfs_fleet.client import GrpcClient, RestClient, RetryPolicy, ServingError

KINDS = ("grpc", "rest")
FAILURE_SAMPLES = 20


@dataclass(frozen=True)
class LoadSpec:
    grpc: str | None = None
    rest: str | None = None
    model: str = "half_plus_two"
    input_name: str = "x"
    value: float = 1.0
    # Expected first output for `value` (half_plus_two: 0.5 * 1.0 + 2); None: not checked.
    expected: float | None = 2.5
    clients_per_kind: int = 1
    interval_s: float = 0.02
    timeout_s: float = 5.0
    max_seconds: float = 600.0
    max_requests: int = 1_000_000

    def __post_init__(self) -> None:
        if not self.grpc and not self.rest:
            raise ValueError("give a gRPC address, a REST address or both")
        if self.max_seconds <= 0 or self.max_requests <= 0 or self.clients_per_kind <= 0:
            raise ValueError("max_seconds, max_requests and clients_per_kind must be positive")


@dataclass
class _Figures:
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    samples: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        ok = len(lat)
        return {
            "requests": ok + self.failures,
            "ok": ok,
            "failed": self.failures,
            "p50_ms": percentile(lat, 50),
            "p99_ms": percentile(lat, 99),
            "max_ms": round(lat[-1], 2) if lat else None,
            "failure_samples": list(self.samples),
        }


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending list; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return round(sorted_values[rank - 1], 2)


class Load:
    """Clients in threads until stop(), max_seconds or max_requests (whichever comes first)."""

    def __init__(self, spec: LoadSpec, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._phases: dict[str, dict[str, _Figures]] = {}
        self._phase_order: list[str] = []
        self._phase = ""
        self._sent = 0
        self._started = 0.0
        self._ended: float | None = None
        self.mark("run")

    # ---- control --------------------------------------------------------------------------
    def mark(self, phase: str) -> None:
        """From now on, requests count toward `phase` (a new or an earlier one)."""
        with self._lock:
            if phase not in self._phases:
                self._phases[phase] = {k: _Figures() for k in KINDS}
                self._phase_order.append(phase)
            self._phase = phase

    def start(self) -> Load:
        self._started = self._clock()
        kinds = [k for k in KINDS if getattr(self.spec, k)]
        for kind in kinds:
            for n in range(self.spec.clients_per_kind):
                thread = threading.Thread(
                    target=self._run, args=(kind,), name=f"load-{kind}-{n}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return self

    def stop(self, join_s: float = 30.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=join_s)
        if self._ended is None:
            self._ended = self._clock()

    def wait(self) -> None:
        """Block until the bounds end the run."""
        for thread in self._threads:
            thread.join(timeout=self.spec.max_seconds + 30)
        self.stop()

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- clients --------------------------------------------------------------------------
    def _take(self) -> bool:
        with self._lock:
            if self._sent >= self.spec.max_requests:
                return False
            self._sent += 1
            return True

    def _record(self, kind: str, ms: float | None, error: str | None) -> None:
        with self._lock:
            fig = self._phases[self._phase][kind]
            if error is None and ms is not None:
                fig.latencies_ms.append(ms)
            else:
                fig.failures += 1
                if len(fig.samples) < FAILURE_SAMPLES:
                    fig.samples.append(f"{time.strftime('%H:%M:%S')} {error}")

    def _run(self, kind: str) -> None:
        spec = self.spec
        deadline = self._started + spec.max_seconds
        one: Callable[[], float]
        if kind == "grpc":
            client = GrpcClient(
                str(spec.grpc), timeout_s=spec.timeout_s, retry=RetryPolicy(attempts=1)
            )
            tensor = {spec.input_name: np.array([[spec.value]], dtype=np.float32)}

            def one() -> float:
                result = client.predict(spec.model, tensor)
                return float(next(iter(result.outputs.values())).reshape(-1)[0])

            close = client.close
        else:
            rest = RestClient(str(spec.rest), timeout_s=spec.timeout_s)

            def one() -> float:
                return float(
                    np.asarray(rest.predict_rows(spec.model, [[spec.value]])).reshape(-1)[0]
                )

            def close() -> None:
                return None

        try:
            while not self._stop.is_set() and self._clock() < deadline and self._take():
                t0 = time.perf_counter()
                try:
                    value = one()
                    ms = (time.perf_counter() - t0) * 1000
                    if spec.expected is not None and not math.isclose(
                        value, spec.expected, rel_tol=1e-5
                    ):
                        self._record(
                            kind, None, f"{kind}: answer {value}, expected {spec.expected}"
                        )
                    else:
                        self._record(kind, ms, None)
                except (ServingError, OSError, ValueError) as exc:
                    self._record(kind, None, f"{kind}: {exc}")
                if spec.interval_s > 0:
                    self._stop.wait(spec.interval_s)
        finally:
            close()

    # ---- figures --------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        with self._lock:
            phases = {
                name: {k: self._phases[name][k].summary() for k in KINDS if getattr(self.spec, k)}
                for name in self._phase_order
                if any(
                    self._phases[name][k].latencies_ms or self._phases[name][k].failures
                    for k in KINDS
                )
            }
            total = {
                k: _merge([self._phases[n][k] for n in self._phase_order]).summary()
                for k in KINDS
                if getattr(self.spec, k)
            }
        end = self._ended if self._ended is not None else self._clock()
        return {
            "targets": {"grpc": self.spec.grpc, "rest": self.spec.rest},
            "model": self.spec.model,
            "seconds": round(end - self._started, 2) if self._started else 0.0,
            "failed": sum(t["failed"] for t in total.values()),
            "requests": sum(t["requests"] for t in total.values()),
            "total": total,
            "phases": phases,
        }


def _merge(figures: list[_Figures]) -> _Figures:
    out = _Figures()
    for fig in figures:
        out.latencies_ms.extend(fig.latencies_ms)
        out.failures += fig.failures
        out.samples.extend(fig.samples[: max(0, FAILURE_SAMPLES - len(out.samples))])
    return out
