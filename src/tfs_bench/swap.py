"""swap_failed_requests, swap_p99_ratio: new versions published into the served model base
while client threads call Predict without pause; the p99 of the calls made while a version is
being loaded (from its publication until it is AVAILABLE and the old one unloaded) against the
p99 of the steady window before it. Several swaps, the windows pooled."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tfs_bench.figures import Figure, measured
from tfs_bench.server import MODEL, BenchError, Standin, publish_version
from tfs_bench.stats import percentile, ratio
from tfs_fleet.client import GrpcClient, RetryPolicy, ServingError

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the load started, at the start of the call
    ms: float
    error: str | None = None


@dataclass
class Window:
    kind: str  # "steady" or "swap"
    start: float
    end: float
    version: int


@dataclass
class LoadThreads:
    """Clients calling Predict back to back (one attempt each, no retry), every call kept."""

    target: str
    clients: int = 2
    timeout_s: float = 5.0
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)
    t0: float = 0.0

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def _run(self) -> None:
        client = GrpcClient(self.target, timeout_s=self.timeout_s, retry=RetryPolicy(attempts=1))
        x = {"x": np.array([[1.0]], dtype=np.float32)}
        try:
            while not self._stop.is_set():
                start = self.now()
                error = None
                try:
                    value = float(client.predict(MODEL, x).outputs["pred"].reshape(-1)[0])
                    if value != 2.5:
                        error = f"wrong answer {value}"
                except (ServingError, KeyError, ValueError) as exc:
                    error = str(exc)
                with self._lock:
                    self.samples.append(Sample(start, (self.now() - start) * 1000.0, error))
        finally:
            client.close()

    def start(self) -> LoadThreads:
        self.t0 = time.perf_counter()
        for n in range(self.clients):
            thread = threading.Thread(target=self._run, name=f"bench-load-{n}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def between(self, start: float, end: float) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if start <= s.t < end]


def _wait_swapped(server: Standin, version: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = server.states()
        others = [state for v, state in states.items() if v != version]
        if states.get(version) == "AVAILABLE" and all(s == "END" for s in others):
            return
        time.sleep(0.05)
    raise BenchError(f"version {version} not AVAILABLE with the others unloaded: {server.states()}")


def swap_under_load(
    server: Standin,
    swaps: int = 3,
    steady_s: float = 6.0,
    settle_s: float = 2.0,
    clients: int = 2,
    progress: Progress = print,
) -> tuple[list[Figure], LoadThreads, list[Window]]:
    if swaps <= 0 or steady_s <= 0:
        raise ValueError("swaps and steady_s must be positive")
    source = server.model_base / "1"
    served = max(int(p.name) for p in server.model_base.iterdir() if p.name.isdigit())
    load = LoadThreads(server.grpc_target, clients=clients).start()
    windows: list[Window] = []
    try:
        time.sleep(settle_s)
        for n in range(swaps):
            steady_start = load.now()
            time.sleep(steady_s)
            version = served + 1
            swap_start = load.now()
            windows.append(Window("steady", steady_start, swap_start, served))
            publish_version(server.model_base, source, version)
            _wait_swapped(server, version, timeout_s=60)
            windows.append(Window("swap", swap_start, load.now(), version))
            served = version
            progress(
                f"swap: {n + 1}/{swaps}: version {version} served after "
                f"{windows[-1].end - windows[-1].start:.2f} s"
            )
            time.sleep(settle_s)
    finally:
        load.stop()
    failures = [s for s in load.samples if s.error]
    steady = [s.ms for w in windows if w.kind == "steady" for s in load.between(w.start, w.end)]
    during = [s.ms for w in windows if w.kind == "swap" for s in load.between(w.start, w.end)]
    if not steady or not during:
        raise BenchError("no calls answered in a steady or a swap window")
    p99_steady, p99_swap = percentile(steady, 99), percentile(during, 99)
    per_swap = []
    for steady_w, swap_w in zip(windows[::2], windows[1::2], strict=True):
        a = [s.ms for s in load.between(steady_w.start, steady_w.end)]
        b = [s.ms for s in load.between(swap_w.start, swap_w.end)]
        if a and b:
            per_swap.append(round(ratio(percentile(b, 99), percentile(a, 99)), 3))
    failed = measured(
        "swap_failed_requests",
        float(len(failures)),
        requests=len(load.samples),
        swaps=swaps,
        failure_samples=[f.error for f in failures[:5]],
    )
    p99 = measured(
        "swap_p99_ratio",
        round(ratio(p99_swap, p99_steady), 4),
        p99_steady_ms=round(p99_steady, 3),
        p99_swap_ms=round(p99_swap, 3),
        calls_steady=len(steady),
        calls_swap=len(during),
        swap_window_s=[round(w.end - w.start, 3) for w in windows if w.kind == "swap"],
        per_swap_ratio=per_swap,
        clients=clients,
    )
    return [failed, p99], load, windows
