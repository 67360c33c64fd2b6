"""rollout_failed_requests, rollout_p99_ratio: client load through the fleet's front door (the
load balancer host: HAProxy, roles/tfserving_lb) while playbooks/rollout.yml recreates the
serving container on every host (a changed container setting, an environment variable, as the
fleet stage's front-door test forces it), canary first, each host drained, updated, gated and
undrained.

One gRPC Predict client and one REST predict client (tfs_fleet.client, one attempt each, no
retry, every answer checked: 2.5 for 1.0) call back to back with a short pause; every call is
kept with its start time. The p99 (nearest rank) of the calls started during the rollout (from
the start of ansible-playbook to its end) against the p99 of the steady window before it; both
kinds pooled in both windows (per kind in detail). Every failed or wrong call of the whole load
run counts."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tfs_bench.figures import Figure, measured
from tfs_bench.fleet import LB_HOST, PORTS, BenchFleet, Run, sandbox_playbook_args
from tfs_bench.server import MODEL, BenchError
from tfs_bench.stats import percentile, ratio
from tfs_fleet.client import GrpcClient, RestClient, RetryPolicy, ServingError

FRONT_GRPC = f"127.0.0.1:{PORTS['grpc']}"
FRONT_REST = f"127.0.0.1:{PORTS['rest']}"
SOCKET = "/run/haproxy/admin.sock"
BACKENDS = ("tfs_grpc", "tfs_rest")
_STAT = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);s.sendall(sys.argv[2].encode()+b'\\n')\n"
    "out=b''\nwhile True:\n    d=s.recv(65536)\n    if not d: break\n    out+=d\n"
    "sys.stdout.write(out.decode())\n"
)


@dataclass(frozen=True)
class Call:
    t: float  # seconds since the load started, at the start of the call
    ms: float
    kind: str  # "grpc" or "rest"
    error: str | None = None


@dataclass(frozen=True)
class Span:
    kind: str  # "steady" or "rollout"
    start: float
    end: float


def in_span(calls: Sequence[Call], span: Span, kind: str | None = None) -> list[Call]:
    return [c for c in calls if span.start <= c.t < span.end and kind in (None, c.kind)]


def p99_of(calls: Sequence[Call]) -> float:
    """p99 (nearest rank) of the answered calls' latency; BenchError when none answered."""
    answered = [c.ms for c in calls if c.error is None]
    if not answered:
        raise BenchError("no answered call in a window")
    return percentile(answered, 99)


def rollout_figures(calls: Sequence[Call], steady: Span, during: Span) -> list[Figure]:
    failures = [c for c in calls if c.error]
    p99_steady, p99_during = p99_of(in_span(calls, steady)), p99_of(in_span(calls, during))
    per_kind = {}
    for kind in sorted({c.kind for c in calls}):
        a, b = in_span(calls, steady, kind), in_span(calls, during, kind)
        if a and b and any(c.error is None for c in a) and any(c.error is None for c in b):
            per_kind[kind] = {
                "calls_steady": len(a), "calls_rollout": len(b),
                "p99_steady_ms": round(p99_of(a), 2), "p99_rollout_ms": round(p99_of(b), 2),
            }  # fmt: skip
    return [
        measured("rollout_failed_requests", float(len(failures)), requests=len(calls),
                 failed_in_rollout_window=len([c for c in in_span(calls, during) if c.error]),
                 failure_samples=[f"{c.kind} t={c.t:.1f}s: {c.error}" for c in failures[:5]]),
        measured("rollout_p99_ratio", round(ratio(p99_during, p99_steady), 3),
                 p99_steady_ms=round(p99_steady, 2), p99_rollout_ms=round(p99_during, 2),
                 calls_steady=len(in_span(calls, steady)),
                 calls_rollout=len(in_span(calls, during)),
                 steady_s=round(steady.end - steady.start, 1),
                 rollout_s=round(during.end - during.start, 1), per_kind=per_kind),
    ]  # fmt: skip


@dataclass
class FrontDoorLoad:
    """A gRPC and a REST client on the front door, each calling with interval_s between calls."""

    grpc: str = FRONT_GRPC
    rest: str = FRONT_REST
    interval_s: float = 0.02
    timeout_s: float = 5.0
    calls: list[Call] = field(default_factory=list)
    t0: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def _loop(self, kind: str, one: Callable[[], float], close: Callable[[], None]) -> None:
        try:
            while not self._stop.is_set():
                start = self.now()
                error = None
                try:
                    value = one()
                    if abs(value - 2.5) > 1e-5:
                        error = f"wrong answer {value}"
                except (ServingError, OSError, ValueError, KeyError) as exc:
                    error = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                with self._lock:
                    self.calls.append(Call(start, (self.now() - start) * 1000.0, kind, error))
                self._stop.wait(self.interval_s)
        finally:
            close()

    def start(self) -> FrontDoorLoad:
        self.t0 = time.perf_counter()
        grpc = GrpcClient(self.grpc, timeout_s=self.timeout_s, retry=RetryPolicy(attempts=1))
        rest = RestClient(self.rest, timeout_s=self.timeout_s)
        x = {"x": np.array([[1.0]], dtype=np.float32)}

        def grpc_one() -> float:
            return float(next(iter(grpc.predict(MODEL, x).outputs.values())).reshape(-1)[0])

        def rest_one() -> float:
            return float(np.asarray(rest.predict_rows(MODEL, [[1.0]])).reshape(-1)[0])

        for kind, one, close in (("grpc", grpc_one, grpc.close), ("rest", rest_one, _nothing)):
            thread = threading.Thread(
                target=self._loop, args=(kind, one, close), name=f"bench-front-{kind}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)


def _nothing() -> None:
    return None


# ---- the load balancer and the containers, read through the engine ---------------------------
def parse_stat(text: str) -> list[dict[str, str]]:
    """HAProxy's `show stat` CSV (header '# pxname,svname,...') as rows."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        return []
    body = "\n".join([lines[0][2:], *[ln for ln in lines[1:] if ln.strip()]])
    return list(csv.DictReader(io.StringIO(body)))


def servers_status(fleet: BenchFleet) -> dict[str, str]:
    out = fleet.in_host(LB_HOST, "python3", "-c", _STAT, SOCKET, "show stat")
    return {
        f"{row['pxname']}/{row['svname']}": row.get("status", "")
        for row in parse_stat(out)
        if row.get("pxname") in BACKENDS and row.get("svname") not in ("FRONTEND", "BACKEND")
    }


def wait_all_up(fleet: BenchFleet, seconds: float = 180) -> dict[str, str]:
    deadline = time.monotonic() + seconds
    status: dict[str, str] = {}
    while time.monotonic() < deadline:
        status = servers_status(fleet)
        if len(status) == len(BACKENDS) * fleet.hosts and set(status.values()) == {"UP"}:
            return status
        time.sleep(1)
    raise BenchError(f"not every server of the front door is UP: {status}")


def container_ids(fleet: BenchFleet) -> dict[str, str]:
    return {
        host: fleet.in_host(host, "docker", "inspect", "-f", "{{.Id}}", "tfserving").strip()
        for host in fleet.serving
    }


def rollout_args(fleet: BenchFleet, run_id: str) -> list[str]:
    setting = json.dumps({"tfserving_env": {"TFS_FLEET_BENCH_ROLLOUT": run_id}})
    return sandbox_playbook_args(
        "playbooks/rollout.yml", fleet.export_base,
        "-e", f"tfserving_rollout_report_dir={fleet.out / 'rollout'}",
        "-e", f"tfserving_rollout_run_id={run_id}",
        "-e", setting,
    )  # fmt: skip


def rollout(
    fleet: BenchFleet, steady_s: float = 20.0, after_s: float = 5.0
) -> tuple[list[Figure], list[Call], list[Span], Run]:
    say = fleet.progress
    say("rollout: waiting until every server behind the front door is UP")
    wait_all_up(fleet)
    before = container_ids(fleet)
    load = FrontDoorLoad().start()
    try:
        time.sleep(2.0)  # connections made, first calls out of the way
        steady_start = load.now()
        say(f"rollout: steady load through the front door for {steady_s:.0f} s")
        time.sleep(steady_s)
        start = load.now()
        run_id = f"bench-{time.time_ns()}"
        say(f"rollout: playbooks/rollout.yml recreating {fleet.hosts} containers under load")
        run = fleet.playbook(rollout_args(fleet, run_id), timeout=1800, echo_plays="rollout")
        end = load.now()
        time.sleep(after_s)
    finally:
        load.stop()
    (fleet.out / "rollout.log").write_text(run.output)
    if run.rc != 0:
        raise BenchError(f"the rollout failed (rc {run.rc}; log {fleet.out / 'rollout.log'}):"
                         f"\n{run.tail()}")  # fmt: skip
    after = container_ids(fleet)
    kept = [h for h in fleet.serving if not after[h] or after[h] == before[h]]
    if kept:
        raise BenchError(f"the rollout did not recreate the container on {kept}")
    calls = load.snapshot()
    spans = [Span("steady", steady_start, start), Span("rollout", start, end)]
    say(f"rollout: {run.seconds:.0f} s, {len(calls)} calls through the front door")
    return rollout_figures(calls, spans[0], spans[1]), calls, spans, run
