"""A few of TF Serving's monitoring metrics, rendered in Prometheus text format.

Names follow TF Serving's (``/tensorflow/serving/request_count`` becomes
``:tensorflow:serving:request_count``); the set is smaller than TF Serving's.
"""

from __future__ import annotations

import threading
from collections import defaultdict

_BUCKETS_US = [10.0 * 1.8**i for i in range(33)]


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    escaped = (
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in pairs
    )
    return ",".join(escaped)


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

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, series in sorted(self._counters.items()):
                prom = name.replace("/", ":")
                lines.append(f"# TYPE {prom} counter")
                lines += [f"{prom}{{{_labels(k)}}} {v}" for k, v in sorted(series.items())]
            for name, gauges in sorted(self._gauges.items()):
                prom = name.replace("/", ":")
                lines.append(f"# TYPE {prom} gauge")
                lines += [f"{prom}{{{_labels(k)}}} {v:g}" for k, v in sorted(gauges.items())]
            for name, histograms in sorted(self._histograms.items()):
                prom = name.replace("/", ":")
                lines.append(f"# TYPE {prom} histogram")
                for key, hist in sorted(histograms.items()):
                    base = _labels(key)
                    sep = "," if base else ""
                    total = 0.0
                    for limit, n in zip([*_BUCKETS_US, float("inf")], hist, strict=False):
                        total += n
                        le = "Inf" if limit == float("inf") else f"{limit:g}"
                        lines.append(f'{prom}_bucket{{{base}{sep}le="{le}"}} {total:g}')
                    lines.append(f"{prom}_sum{{{base}}} {hist[-2]:g}")
                    lines.append(f"{prom}_count{{{base}}} {hist[-1]:g}")
        return "\n".join(lines) + "\n"


REQUEST_COUNT = "/tensorflow/serving/request_count"
REQUEST_LATENCY = "/tensorflow/serving/request_latency"
LOAD_ATTEMPT = "/tensorflow/cc/saved_model/load_attempt_count"
WARMUP_LATENCY = "/tensorflow/serving/model_warmup_latency"
AVAILABLE_VERSIONS = "/tensorflow/serving/stand_in/available_versions"
