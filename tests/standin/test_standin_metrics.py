"""The stand-in's Prometheus page as TF Serving's exporter writes it (util/prometheus_exporter.cc)
and what TF Serving records where (prediction_service_impl.cc, http_server.cc,
servables/tensorflow/util.cc, saved_model_warmup_util.cc)."""

from __future__ import annotations

import re
import shutil
import subprocess

from tfs_standin import metrics

LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>.*)\})? (?P<value>\S+)$")


def parse(page: str) -> tuple[dict[str, str], list[tuple[str, dict[str, str], float]]]:
    """Prometheus text format: TYPE lines and samples (a strict enough reader for our page)."""
    types: dict[str, str] = {}
    samples: list[tuple[str, dict[str, str], float]] = []
    assert page.endswith("\n")
    for line in page.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        match = LINE.match(line)
        assert match, f"not Prometheus text: {line!r}"
        labels = dict(
            re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match["labels"] or "")
        )
        samples.append((match["name"], labels, float(match["value"])))
    return types, samples


def test_names_are_sanitized_like_the_exporter() -> None:
    assert metrics.prometheus_name("/tensorflow/serving/request_count") == (
        ":tensorflow:serving:request_count"
    )
    # prometheus_exporter_test.cc: "0/path-total_count" -> "_0:path:total_count"
    assert metrics.prometheus_name("0/path-total_count") == "_0:path:total_count"


def test_registered_metrics_have_type_lines_before_any_point() -> None:
    types, samples = parse(metrics.Metrics().render())
    assert types == {
        ":tensorflow:cc:saved_model:load_attempt_count": "counter",
        ":tensorflow:serving:model_warmup_latency": "histogram",
        ":tensorflow:serving:model_warmup_records_read": "counter",
        ":tensorflow:serving:request_count": "counter",
        ":tensorflow:serving:request_latency": "histogram",
        ":tensorflow:serving:runtime_latency": "histogram",
    }
    assert samples == []


def test_grpc_predict_counts_and_latency_with_tf_servings_labels() -> None:
    m = metrics.Metrics()
    m.record_request("m", "predict", "GRPC", "OK", 150.0)
    m.record_request("m", "predict", "GRPC", "INVALID_ARGUMENT", 20.0)
    _, samples = parse(m.render())
    counts = {s[1]["status"]: s[2] for s in samples if s[0] == ":tensorflow:serving:request_count"}
    assert counts == {"OK": 1, "INVALID_ARGUMENT": 1}
    buckets = [s for s in samples if s[0] == ":tensorflow:serving:request_latency_bucket"]
    # Exponential(10, 1.8, 33): 33 limits and +Inf; only the OK request is in the histogram.
    assert len(buckets) == 34
    assert {tuple(sorted(s[1].items())) for s in buckets} >= {
        (("API", "Predict"), ("entrypoint", "GRPC"), ("le", "+Inf"), ("model_name", "m"))
    }
    limits = [s[1]["le"] for s in buckets]
    assert limits[:3] == ["10", "18", "32.4"] and limits[-1] == "+Inf"
    cumulative = [s[2] for s in buckets]
    assert cumulative == sorted(cumulative) and cumulative[-1] == 1
    # 150 us is in the first bucket whose limit is >= 150 (10 * 1.8**5 = 188.957).
    first = next(s for s in buckets if s[2] == 1)
    assert first[1]["le"] == "188.957"
    (total,) = [s[2] for s in samples if s[0] == ":tensorflow:serving:request_latency_count"]
    (summed,) = [s[2] for s in samples if s[0] == ":tensorflow:serving:request_latency_sum"]
    assert (total, summed) == (1, 150)
    runtime = [s for s in samples if s[0] == ":tensorflow:serving:runtime_latency_count"]
    assert [(s[1], s[2]) for s in runtime] == [
        ({"model_name": "m", "API": "Predict", "runtime": "TF1"}, 1)
    ]


def test_rest_records_every_request_with_the_urls_method() -> None:
    m = metrics.Metrics()
    m.record_request("m", "classify", "REST", "OK", 5.0)
    m.record_request("m", "GetModelMetadata", "REST", "OK", 5.0)
    m.record_request("m", "predict", "REST", "NOT_FOUND", 5.0)
    m.record_request("m", "GetModelStatus", "REST", "NOT_FOUND", 5.0)
    _, samples = parse(m.render())
    apis = {s[1]["API"] for s in samples if s[0] == ":tensorflow:serving:request_latency_count"}
    assert apis == {"classify", ""}
    counts = {s[1]["status"]: s[2] for s in samples if s[0] == ":tensorflow:serving:request_count"}
    assert counts == {"OK": 2, "NOT_FOUND": 2}


def test_grpc_metadata_and_multi_inference_record_nothing() -> None:
    m = metrics.Metrics()
    m.record_request("m", "GetModelMetadata", "GRPC", "OK", 5.0)
    m.record_request("m", "MultiInference", "GRPC", "OK", 5.0)
    assert parse(m.render())[1] == []


def test_warmup_and_label_values_escaped() -> None:
    m = metrics.Metrics()
    m.record_warmup('/models/a"b\\c/1', "OK", 1000.0, 3)
    page = m.render()
    assert (
        ':tensorflow:serving:model_warmup_records_read{model_path="/models/a\\"b\\\\c/1",'
        'status="OK"} 3'
    ) in page
    _, samples = parse(page)
    assert any(s[0] == ":tensorflow:serving:model_warmup_latency_count" for s in samples)


def test_promtool_parses_the_page() -> None:
    """promtool (Debian's prometheus package, scripts/ensure_controller_tools.sh) parses the page;
    its lint findings are those of TF Serving's own page (':' names, no HELP lines, counters
    without _total), never a parse error (exit 1)."""
    m = metrics.Metrics()
    m.record_request("m", "predict", "GRPC", "OK", 150.0)
    m.record_request("m", "predict", "REST", "UNAVAILABLE", 150.0)
    m.record_warmup("/models/m/1", "OK", 5.0, 1)
    m.count(metrics.LOAD_ATTEMPT, {"model_path": "/models/m/1", "status": "success"})
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run scripts/ensure_controller_tools.sh"
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=m.render(), capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    findings = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 3, (proc.returncode, findings)
    allowed = (
        "metric names should not contain ':'",
        "no help text",
        'counter metrics should have "_total" suffix',
        'non-histogram and non-summary metrics should not have "_count" suffix',
    )
    assert findings and all(f.endswith(allowed) for f in findings), findings
