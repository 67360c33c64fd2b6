"""Post-deploy smoke test of TF Serving hosts (no TensorFlow import: cold start ~0.3 s).

What a host must serve comes from the SavedModel version itself (its saved_model.pb or .pbtxt,
the MetaGraph tagged exactly like TF Serving's --saved_model_tags), so models we did not export
are checked as well as ours. Per host, each check reported on its own as PASS, FAIL or NOT RUN:

  status              gRPC GetModelStatus until the version is AVAILABLE (bounded wait)
  signatures          REST metadata: the served signatures are exactly the SavedModel's (names,
                      method, every input/output key, dtype and shape); with a previous version,
                      every signature it had is still served
  predict <signature> one per signature: when every input is numeric, a Predict built from the
                      signature (ones; unknown dimensions 1, unknown rank [1]) must answer
                      exactly the declared outputs, dtypes and shapes, all finite; a signature
                      that cannot be built (serialized tf.Example, strings) is PASS or FAIL by
                      the warmup records or golden requests that call it, else NOT RUN
  warmup              every record of assets.extra/tf_serving_warmup_requests replayed with its
                      own call (Predict, Classify, Regress, MultiInference): success, finite
  golden              the export manifest's sample and/or a --golden file's requests, each
                      answer compared within its tolerances

Predicts the test builds and golden requests are sent ``repeat`` times and every answer is
checked. A host passes when no check failed and status, signatures and at least one check of
the answers (a built predict, warmup or golden) passed; when nothing could be called, the host
fails with a check ``answers`` saying so. A NOT RUN never fails a host, but the host is not
verified for it: the table and the JSON say so.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfs_fleet.answers import AnswerError, check_outputs
from tfs_fleet.client import (
    GrpcClient,
    RestClient,
    RetryPolicy,
    ServingError,
    TlsConfig,
    VersionStatus,
)
from tfs_fleet.golden import GoldenRequest
from tfs_fleet.protos import predict_pb2, tensor_pb2, types_pb2
from tfs_fleet.savedmodel import SavedModelInfo, Signature, TensorSpec
from tfs_fleet.tensors import TensorCodecError, numpy_dtype_for, to_tensor_proto
from tfs_fleet.warmup import WarmupRecord, replay_one
from tfs_fleet.warmup import describe as describe_warmup

PASS, FAIL, NOT_RUN = "PASS", "FAIL", "NOT RUN"
_POLL_ONCE = RetryPolicy(attempts=1)
ANSWER_KINDS = ("predict", "warmup", "golden")
_BFLOAT16_ONE = 0x3F80


@dataclass(frozen=True)
class Target:
    grpc: str
    rest: str


@dataclass
class SmokeOptions:
    model: str
    saved_model: SavedModelInfo
    previous: SavedModelInfo | None = None
    golden: list[GoldenRequest] = field(default_factory=list)
    # Read before any request: the records, or the reason the file is unusable.
    warmup: list[WarmupRecord] | None = None
    warmup_error: str | None = None
    version: int | None = None
    require_signatures: list[str] = field(default_factory=list)  # must be served too
    wait_s: float = 60.0
    poll_s: float = 1.0
    timeout_s: float = 10.0
    rtol: float | None = None  # override every golden tolerance
    atol: float | None = None
    repeat: int = 5
    max_message_bytes: int = 64 * 1024 * 1024  # gRPC messages and REST answers
    # The whole run ends by then (time.monotonic()); None: only the per-request timeouts.
    deadline: float | None = None
    tls: TlsConfig | None = None  # gRPC over TLS (mutual TLS with a client key and certificate)


@dataclass
class Check:
    name: str
    kind: str  # status | signatures | predict | warmup | golden | answers
    ok: bool | None = None  # None: not run
    detail: str = ""
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return PASS if self.ok else (FAIL if self.ok is False else NOT_RUN)

    def to_doc(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": self.status,
            "detail": self.detail,
            "seconds": self.seconds,
            "kind": self.kind,
        }


@dataclass
class HostReport:
    grpc: str
    rest: str
    version: int | None = None
    checks: dict[str, Check] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, kind: str) -> Check:
        check = Check(name, kind)
        self.checks[name] = check
        return check

    def _passed(self, kind: str) -> bool:
        return any(c.ok for c in self.checks.values() if c.kind == kind)

    @property
    def ok(self) -> bool:
        if any(c.ok is False for c in self.checks.values()):
            return False
        return (
            self._passed("status")
            and self._passed("signatures")
            and any(self._passed(k) for k in ANSWER_KINDS)
        )

    @property
    def failed(self) -> Check | None:
        return next((c for c in self.checks.values() if c.ok is False), None)

    @property
    def not_run(self) -> list[str]:
        return [c.name for c in self.checks.values() if c.ok is None]

    def to_doc(self) -> dict[str, Any]:
        return {
            "grpc": self.grpc,
            "rest": self.rest,
            "version": self.version,
            "ok": self.ok,
            "failed_check": self.failed.name if self.failed else None,
            "not_run": self.not_run,
            "checks": {name: c.to_doc() for name, c in self.checks.items()},
            "latency_ms": self.latency_ms,
        }


class CheckFailed(Exception):
    pass


class NotRun(Exception):
    """A check that could not run; its message is the reason."""


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


# ---- signatures ------------------------------------------------------------------------------


def _served_spec(info: Any) -> TensorSpec:
    """A TensorInfo as TF Serving's REST metadata writes it (JSON) -> TensorSpec."""
    if not isinstance(info, Mapping):
        return TensorSpec("?", None)
    shape_doc = info.get("tensor_shape") or {}
    shape: tuple[int, ...] | None = None
    if not shape_doc.get("unknown_rank"):
        shape = tuple(int(d.get("size", 0)) for d in shape_doc.get("dim", []))
    return TensorSpec(str(info.get("dtype", "DT_INVALID")), shape)


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "unknown rank" if shape is None else str(list(shape))


def _compare_specs(
    where: str, served: Mapping[str, Any], declared: Mapping[str, TensorSpec], source: str
) -> list[str]:
    problems = []
    if set(served) != set(declared):
        return [f"{where} keys {sorted(served)}, {source} declares {sorted(declared)}"]
    for key, want in sorted(declared.items()):
        got = _served_spec(served[key])
        if got.dtype != want.dtype:
            problems.append(f"{where} {key!r} dtype {got.dtype}, {source} says {want.dtype}")
        if got.shape != want.shape:
            problems.append(
                f"{where} {key!r} shape {_shape_text(got.shape)}, {source} says "
                f"{_shape_text(want.shape)}"
            )
    return problems


def check_signatures(rest: RestClient, opts: SmokeOptions, version: int) -> str:
    doc = rest.metadata(opts.model, version=version)
    try:
        sigs = doc["metadata"]["signature_def"]["signature_def"]
        if not isinstance(sigs, Mapping):
            raise TypeError("not an object")
    except (KeyError, TypeError) as exc:
        raise CheckFailed(f"answer has no metadata.signature_def.signature_def ({exc})") from exc
    served = {k: v for k, v in sigs.items() if not k.startswith("__")}
    declared = opts.saved_model.public
    source = "the SavedModel" if opts.saved_model.format != "manifest" else "the manifest"
    problems: list[str] = []
    for name in opts.require_signatures:
        if name not in served:
            problems.append(f"signature {name!r} not served; the model has {sorted(served)}")
    missing = sorted(set(declared) - set(served))
    extra = sorted(set(served) - set(declared))
    if missing:
        problems.append(f"signatures {missing} of {source} are not served")
    if extra:
        problems.append(f"served signatures {extra} are not in {source}")
    for name in sorted(set(declared) & set(served)):
        sig, info = declared[name], served[name]
        if not isinstance(info, Mapping):
            problems.append(f"signature {name!r}: not an object in the answer")
            continue
        method = str(info.get("method_name", ""))
        if method != sig.method_name:
            problems.append(
                f"signature {name!r} method_name {method!r}, {source} says {sig.method_name!r}"
            )
        for part, specs in (("input", sig.inputs), ("output", sig.outputs)):
            for problem in _compare_specs(part, info.get(f"{part}s") or {}, specs, source):
                problems.append(f"signature {name!r} {problem}")
    previous_note = ""
    if opts.previous is not None:
        before = opts.previous.public
        label = (
            f"version {opts.previous.version}"
            if opts.previous.version is not None
            else str(opts.previous.path)
        )
        dropped = sorted(set(before) - set(served))
        if dropped:
            problems.append(
                f"signatures {dropped} of the previous {label} are no longer served (clients "
                "calling them would fail)"
            )
        else:
            previous_note = f"; all {len(before)} of the previous {label} still served"
    if problems:
        raise CheckFailed("; ".join(problems))
    return f"{len(declared)} signatures as {source} declares ({', '.join(declared)}){previous_note}"


# ---- predict built from a signature ----------------------------------------------------------


def _built_shape(spec: TensorSpec) -> list[int]:
    if spec.shape is None:
        return [1]
    return [d if d >= 0 else 1 for d in spec.shape]


def build_predict_inputs(sig: Signature, max_bytes: int) -> dict[str, Any]:
    """Input TensorProtos of ones for a signature whose inputs are all numeric; NotRun when an
    input cannot be built or would not fit in a message."""
    reason = sig.unbuildable_reason()
    if reason is not None:
        raise NotRun(reason)
    protos: dict[str, Any] = {}
    total = 0
    for key, spec in sorted(sig.inputs.items()):
        shape = _built_shape(spec)
        count = int(np.prod(shape, dtype=np.int64))
        if spec.dtype == "DT_BFLOAT16":
            itemsize = 2
        else:
            try:
                itemsize = numpy_dtype_for(spec.dtype).itemsize
            except TensorCodecError as exc:
                raise NotRun(f"input {key!r}: {exc}") from exc
        total += count * itemsize
        if total > max_bytes // 2:
            raise NotRun(
                f"input {key!r} of shape {shape} makes a request of {total} bytes, over half "
                f"the message limit ({max_bytes} bytes)"
            )
        if spec.dtype == "DT_BFLOAT16":
            proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_BFLOAT16)
            for size in shape:
                proto.tensor_shape.dim.add(size=size)
            proto.tensor_content = np.full(count, _BFLOAT16_ONE, dtype="<u2").tobytes()
        else:
            proto = to_tensor_proto(np.ones(shape, dtype=numpy_dtype_for(spec.dtype)))
        protos[key] = proto
    return protos


# ---- running the checks of one host ----------------------------------------------------------


@dataclass
class _Coverage:
    """What warmup records and golden requests said about one signature."""

    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class _HostRun:
    def __init__(self, target: Target, opts: SmokeOptions, grpc_client: GrpcClient) -> None:
        self.opts = opts
        self.client = grpc_client
        self.rest = RestClient(
            target.rest,
            timeout_s=opts.timeout_s,
            max_response_bytes=opts.max_message_bytes,
            deadline=opts.deadline,
        )
        self.report = HostReport(grpc=target.grpc, rest=target.rest)
        self.predict_ms: list[float] = []
        self.coverage: dict[str, _Coverage] = {}

    # -- helpers --
    def _deadline_passed(self) -> bool:
        return self.opts.deadline is not None and time.monotonic() >= self.opts.deadline

    def run_check(self, check: Check, fn: Callable[[], str]) -> bool:
        start = time.perf_counter()
        try:
            if self._deadline_passed():
                raise CheckFailed("not run: the run's deadline passed before this check started")
            check.detail = fn()
            check.ok = True
        except NotRun as exc:
            check.ok, check.detail = None, str(exc)
        except (CheckFailed, ServingError, AnswerError, ValueError) as exc:
            check.ok, check.detail = False, str(exc)
        except Exception as exc:  # one host's surprise must not hide the other hosts' results
            check.ok, check.detail = False, f"unexpected {type(exc).__name__}: {exc}"
        check.seconds = round(time.perf_counter() - start, 3)
        return bool(check.ok)

    def _timed_predict(self, request: Any) -> Any:
        start = time.perf_counter()
        response = self.client.predict_request(request)
        self.predict_ms.append((time.perf_counter() - start) * 1000.0)
        return response

    def _repeats(self) -> int:
        return max(self.opts.repeat, 1)

    def _cover(self, signature: str, ok: bool, text: str) -> None:
        entry = self.coverage.setdefault(signature, _Coverage())
        (entry.passed if ok else entry.failed).append(text)

    # -- checks --
    def built_predict(self, sig: Signature, inputs: dict[str, Any], version: int) -> str:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.opts.model
        request.model_spec.version.value = version
        request.model_spec.signature_name = sig.name
        for key, proto in inputs.items():
            request.inputs[key].CopyFrom(proto)
        repeats = self._repeats()
        done = 0
        for n in range(repeats):
            if n > 0 and self._deadline_passed():
                break
            response = self._timed_predict(request)
            try:
                check_outputs(response.outputs, sig.outputs)
            except AnswerError as exc:
                raise CheckFailed(f"answer {n + 1} of {repeats}: {exc}") from exc
            done += 1
        shapes = ", ".join(f"{k} {_built_shape(s)}" for k, s in sorted(sig.inputs.items()))
        cut = f" ({done} of {repeats} before the run's deadline)" if done < repeats else ""
        return (
            f"{done} Predict of ones ({shapes or 'no inputs'}){cut}: outputs "
            f"{sorted(sig.outputs)} with the declared dtypes and shapes, all finite"
        )

    def warmup(self, version: int) -> str:
        opts = self.opts
        if opts.warmup_error is not None:
            raise CheckFailed(f"{opts.warmup_error} (TF Serving would not load this version)")
        if opts.warmup is None:
            raise NotRun("the version has no assets.extra/tf_serving_warmup_requests")
        if not opts.warmup:
            raise NotRun("assets.extra/tf_serving_warmup_requests holds no record")
        for record in opts.warmup:
            what = f"warmup record {record.index} ({record.call})"
            try:
                if record.kind == "predict_log":
                    start = time.perf_counter()
                    replay_one(self.client, record, opts.model, version)
                    self.predict_ms.append((time.perf_counter() - start) * 1000.0)
                else:
                    replay_one(self.client, record, opts.model, version)
            except (ServingError, AnswerError, ValueError) as exc:
                for name in record.signatures:
                    self._cover(name, False, f"{what} failed (see warmup)")
                raise CheckFailed(f"record {record.index} ({record.call}): {exc}") from exc
            for name in record.signatures:
                self._cover(name, True, f"warmup {record.call}")
        return (
            f"{len(opts.warmup)} records replayed ({describe_warmup(opts.warmup)}): every call "
            "answered, floats finite"
        )

    def golden(self, version: int) -> str:
        opts = self.opts
        if not opts.golden:
            raise NotRun("no golden requests: give --golden FILE (or an export manifest's sample)")
        repeats = self._repeats()
        sent = 0
        for golden in opts.golden:
            request = golden.request(opts.model, version)
            signature = opts.saved_model.signatures.get(golden.signature)
            for n in range(repeats):
                if n > 0 and self._deadline_passed():
                    break
                try:
                    if golden.method == "predict":
                        response = self._timed_predict(request)
                    elif golden.method == "classify":
                        response = self.client.classify(request)
                    else:
                        response = self.client.regress(request)
                    golden.compare(response, signature, opts.rtol, opts.atol)
                except (ServingError, AnswerError, ValueError) as exc:
                    answer = f"answer {n + 1} of {repeats}: " if repeats > 1 else ""
                    self._cover(golden.signature, False, f"{golden.where} failed (see golden)")
                    raise CheckFailed(f"{golden.label}: {answer}{exc}") from exc
                sent += 1
            self._cover(golden.signature, True, f"golden {golden.method}")
        overrides = [
            f"{name}={value:g}"
            for name, value in (("rtol", opts.rtol), ("atol", opts.atol))
            if value is not None
        ]
        tolerance = (
            " ".join(overrides) if len(overrides) == 2 else "each request's tolerances"
        ) + (f" ({overrides[0]} for all)" if len(overrides) == 1 else "")
        count = len(opts.golden)
        return (
            f"{count} request{'s' if count != 1 else ''} ({sent} calls) answered as expected "
            f"within {tolerance}"
        )

    def covered_predict(self, check: Check, reason: str) -> None:
        """A signature no Predict can be built for: PASS or FAIL by what warmup and golden
        requests on it said, NOT RUN with the reason when none ran."""
        entry = self.coverage.get(check.name.removeprefix("predict "))
        if entry is None or not (entry.passed or entry.failed):
            check.ok = None
            check.detail = f"{reason}: add assets.extra/tf_serving_warmup_requests or a golden file"
            if self.opts.warmup_error is not None:
                check.detail += " (the warmup file is unusable)"
        elif entry.failed:
            check.ok = False
            check.detail = f"not built ({reason}); {entry.failed[0]}"
        else:
            counts: dict[str, int] = {}
            for text in entry.passed:
                counts[text] = counts.get(text, 0) + 1
            how = ", ".join(
                f"{n} {text} request{'s' if n != 1 else ''}" for text, n in sorted(counts.items())
            )
            check.ok = True
            check.detail = f"not built ({reason}); answered by {how}"

    def run(self) -> HostReport:
        report, opts = self.report, self.opts
        signatures = opts.saved_model.public
        status = report.add("status", "status")
        sig_check = report.add("signatures", "signatures")
        predicts = {name: report.add(f"predict {name}", "predict") for name in signatures}
        warmup = report.add("warmup", "warmup")
        golden = report.add("golden", "golden")

        def do_status() -> str:
            report.version = wait_available(self.client, opts)
            return f"version {report.version} AVAILABLE"

        if not self.run_check(status, do_status):
            for check in report.checks.values():
                if check is not status:
                    check.detail = "not run: the status check failed"
            return report
        version = report.version
        assert version is not None
        self.run_check(sig_check, lambda: check_signatures(self.rest, opts, version))
        unbuilt: dict[str, str] = {}
        for name, sig in signatures.items():
            try:
                inputs = build_predict_inputs(sig, opts.max_message_bytes)
            except NotRun as exc:
                unbuilt[name] = str(exc)
                continue
            self.run_check(
                predicts[name], functools.partial(self.built_predict, sig, inputs, version)
            )
        self.run_check(warmup, lambda: self.warmup(version))
        self.run_check(golden, lambda: self.golden(version))
        for name, reason in unbuilt.items():
            self.covered_predict(predicts[name], reason)
        if self.predict_ms:
            report.latency_ms = {
                "first": round(self.predict_ms[0], 3),
                "median": round(statistics.median(self.predict_ms), 3),
                "max": round(max(self.predict_ms), 3),
                "count": len(self.predict_ms),
            }
        if not report.ok and report.failed is None:
            answers = report.add("answers", "answers")
            answers.ok = False
            reasons = "; ".join(
                f"{c.name}: {c.detail}" for c in report.checks.values() if c.ok is None
            )
            answers.detail = (
                "nothing could be called, so no answer of this host was checked: " + reasons
            )
        return report


def smoke_host(target: Target, opts: SmokeOptions) -> HostReport:
    with GrpcClient(
        target.grpc,
        timeout_s=opts.timeout_s,
        max_message_bytes=opts.max_message_bytes,
        retry=RetryPolicy(attempts=3),
        deadline=opts.deadline,
        tls=opts.tls,
    ) as grpc_client:
        return _HostRun(target, opts, grpc_client).run()


def smoke_fleet(targets: list[Target], opts: SmokeOptions) -> list[HostReport]:
    with ThreadPoolExecutor(max_workers=min(16, max(len(targets), 1))) as pool:
        return list(pool.map(lambda t: smoke_host(t, opts), targets))


# ---- output ----------------------------------------------------------------------------------

TABLE_DETAIL_CHARS = 120


def _short(text: str, limit: int = TABLE_DETAIL_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def host_verdict(report: HostReport) -> str:
    if report.ok:
        not_run = report.not_run
        note = f"; not verified for {', '.join(not_run)} (NOT RUN)" if not_run else ""
        latency = (
            f"Predict median {report.latency_ms['median']:.1f} ms over "
            f"{int(report.latency_ms['count'])} calls"
            if report.latency_ms
            else "no Predict timed"
        )
        return f"verified: {latency}{note}"
    failed = [c.name for c in report.checks.values() if c.ok is False]
    return f"failed: {', '.join(failed)}"


def format_table(reports: list[HostReport]) -> str:
    """One row per host and check (PASS, FAIL or NOT RUN with a short detail), then the
    host's verdict."""
    header = ("GRPC", "REST", "VERSION", "CHECK", "RESULT", "DETAIL")
    rows: list[tuple[str, ...]] = [header]
    for r in reports:
        version = str(r.version) if r.version is not None else "-"
        for check in r.checks.values():
            rows.append((r.grpc, r.rest, version, check.name, check.status, _short(check.detail)))
        rows.append((r.grpc, r.rest, version, "=> host", PASS if r.ok else FAIL, host_verdict(r)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(v.ljust(w) for v, w in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip()
        for row in rows
    )


def failure_lines(reports: list[HostReport]) -> list[str]:
    """One line per failed check of each host."""
    lines = []
    for r in reports:
        for check in r.checks.values():
            if check.ok is False:
                lines.append(f"FAIL host {r.grpc} (REST {r.rest}): {check.name}: {check.detail}")
    return lines
