"""TF Serving's monitoring metrics, rendered the way TF Serving's Prometheus exporter does.

Imitated from TF Serving's sources (not a copy of them):

- names: tensorflow_serving/util/prometheus_exporter.cc turns every character outside
  ``[a-zA-Z0-9_]`` of a metric's name into ``:`` (``/tensorflow/serving/request_count`` becomes
  ``:tensorflow:serving:request_count``) and every character outside ``[a-zA-Z0-9]`` of a label
  name into ``_``; label values escape ``\\`` and ``"``; one ``# TYPE`` line per registered
  metric (also before it has a point), metrics in the order of their original names;
- histograms: buckets ``Exponential(10, 1.8, 33)`` microseconds, cumulative counts, the last
  bucket ``le="+Inf"``, then ``_sum`` and ``_count``;
- what is recorded (model_servers/prediction_service_impl.cc, http_server.cc,
  servables/tensorflow/util.cc, saved_model_warmup_util.cc, TensorFlow's
  cc/saved_model/loader.cc): ``request_count{model_name, status}`` for gRPC Predict / Classify /
  Regress and every REST request, ``request_latency{model_name, API, entrypoint}`` for those
  that succeed (gRPC API ``Predict``; REST API the URL's method, ``predict``, or ``""`` for a GET),
  ``runtime_latency{model_name, API, runtime="TF1"}`` around the model run,
  ``model_warmup_latency`` and ``model_warmup_records_read{model_path, status}``, and
  ``load_attempt_count{model_path, status}`` (``success`` / ``fail``).

The set is smaller than TF Serving's (no TensorFlow core or batching metrics).
"""

from __future__ import annotations

import threading
from collections import defaultdict

_BUCKETS_US = [10.0 * 1.8**i for i in range(33)]

REQUEST_COUNT = "/tensorflow/serving/request_count"
REQUEST_LATENCY = "/tensorflow/serving/request_latency"
RUNTIME_LATENCY = "/tensorflow/serving/runtime_latency"
LOAD_ATTEMPT = "/tensorflow/cc/saved_model/load_attempt_count"
WARMUP_LATENCY = "/tensorflow/serving/model_warmup_latency"
WARMUP_RECORDS = "/tensorflow/serving/model_warmup_records_read"
# Not a TF Serving metric: the stand-in's own (its name says so).
AVAILABLE_VERSIONS = "/tensorflow/serving/stand_in/available_versions"

# The metrics TF Serving registers at start (a # TYPE line even before the first point).
_REGISTERED = {
    REQUEST_COUNT: "counter",
    REQUEST_LATENCY: "histogram",
    RUNTIME_LATENCY: "histogram",
    LOAD_ATTEMPT: "counter",
    WARMUP_LATENCY: "histogram",
    WARMUP_RECORDS: "counter",
}
# The APIs whose requests TF Serving counts on its gRPC front end (GetModelMetadata and
# MultiInference record nothing there).
_COUNTED_APIS = {"predict": "Predict", "classify": "Classify", "regress": "Regress"}


def prometheus_name(name: str) -> str:
    """GetPrometheusMetricName: ``[^a-zA-Z0-9_]`` -> ``:``, a leading digit gets ``_``."""
    out = "".join(c if (c.isascii() and (c.isalnum() or c == "_")) else ":" for c in name)
    return f"_{out}" if out[:1].isdigit() else out


def _label_name(name: str) -> str:
    out = "".join(c if (c.isascii() and c.isalnum()) else "_" for c in name)
    return f"_{out}" if out[:1].isdigit() else out


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    escaped = (
        f'{_label_name(k)}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in pairs
    )
    return ",".join(escaped)


def _number(value: float) -> str:
    """absl::StrCat of a double: six significant digits, like %g."""
    return f"{value:g}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple, int]] = defaultdict(lambda: defaultdict(int))
        self._histograms: dict[str, dict[tuple, list[float]]] = defaultdict(dict)
        self._gauges: dict[str, dict[tuple, float]] = defaultdict(dict)

    def count(self, name: str, labels: dict[str, str], delta: int = 1) -> None:
        with self._lock:
            self._counters[name][tuple(labels.items())] += delta

    def observe(self, name: str, labels: dict[str, str], micros: float) -> None:
        key = tuple(labels.items())
        with self._lock:
            hist = self._histograms[name].setdefault(key, [0.0] * (len(_BUCKETS_US) + 3))
            index = next((i for i, b in enumerate(_BUCKETS_US) if micros <= b), len(_BUCKETS_US))
            hist[index] += 1
            hist[-2] += micros
            hist[-1] += 1

    def gauge(self, name: str, labels: dict[str, str], value: float) -> None:
        with self._lock:
            self._gauges[name][tuple(labels.items())] = value

    def _histogram_lines(self, prom: str, series: dict[tuple, list[float]]) -> list[str]:
        lines = [f"# TYPE {prom} histogram"]
        for key, hist in sorted(series.items()):
            base = _labels(key)
            sep = "," if base else ""
            total = 0
            for limit, n in zip([*_BUCKETS_US, float("inf")], hist, strict=False):
                total += int(n)
                le = "+Inf" if limit == float("inf") else _number(limit)
                lines.append(f'{prom}_bucket{{{base}{sep}le="{le}"}} {total}')
            lines.append(f"{prom}_sum{{{base}}} {_number(hist[-2])}")
            lines.append(f"{prom}_count{{{base}}} {total}")
        return lines

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            kinds = dict(_REGISTERED)
            kinds.update({n: "counter" for n in self._counters})
            kinds.update({n: "gauge" for n in self._gauges})
            kinds.update({n: "histogram" for n in self._histograms})
            for name in sorted(kinds):
                prom = prometheus_name(name)
                if kinds[name] == "histogram":
                    lines += self._histogram_lines(prom, self._histograms.get(name, {}))
                    continue
                series = self._counters.get(name) or self._gauges.get(name) or {}
                lines.append(f"# TYPE {prom} {kinds[name]}")
                as_text = int if kinds[name] == "counter" else (lambda v: format(v, "g"))
                lines += [f"{prom}{{{_labels(k)}}} {as_text(v)}" for k, v in sorted(series.items())]
        return "\n".join(lines) + "\n"

    # ---- what TF Serving records, where it records it ---------------------------------------
    def record_request(
        self, model_name: str, api: str, entrypoint: str, status: str, micros: float
    ) -> None:
        """One finished request. ``api`` is the stand-in's name of the call (``predict``,
        ``classify``, ``regress``, ``MultiInference``, ``GetModelMetadata``); ``status`` the
        canonical code name (``OK``, ``INVALID_ARGUMENT``...)."""
        inference = _COUNTED_APIS.get(api)
        if entrypoint == "GRPC":
            if inference is None:
                return
            label_api = inference
        else:  # REST: every request; the API label is the URL's method (empty for a GET)
            label_api = api if inference else ""
        self.count(REQUEST_COUNT, {"model_name": model_name, "status": status})
        if status != "OK":
            return
        self.observe(
            REQUEST_LATENCY,
            {"model_name": model_name, "API": label_api, "entrypoint": entrypoint},
            micros,
        )
        if inference:
            self.observe(
                RUNTIME_LATENCY,
                {"model_name": model_name, "API": inference, "runtime": "TF1"},
                micros,
            )

    def record_warmup(self, model_path: str, status: str, micros: float, records: int) -> None:
        """saved_model_warmup_util.cc: latency and records read, with status.ToString()."""
        labels = {"model_path": model_path, "status": status}
        self.observe(WARMUP_LATENCY, labels, micros)
        self.count(WARMUP_RECORDS, labels, records)
