"""tfs_fleet.prom_targets: the table make demo prints, its exit codes, against a loopback HTTP
server that answers like Prometheus's query and targets APIs (every series' target is active;
PENDING holds active targets not scraped yet, which have no `up` series)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tfs_fleet import prom_targets


def series(job: str, instance: str, up: str, host: str = "") -> dict[str, Any]:
    labels = {"job": job, "instance": instance, **({"host": host} if host else {})}
    return {"metric": {"__name__": "up", **labels}, "value": [1796000000.0, up]}


PENDING: list[dict[str, str]] = []


def target(labels: dict[str, str]) -> dict[str, Any]:
    job, instance = labels["job"], labels["instance"]
    return {"labels": {"job": job, "instance": instance}, "scrapePool": job, "health": "unknown"}


@pytest.fixture
def prometheus() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    answer: list[dict[str, Any]] = []
    PENDING.clear()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data: dict[str, Any]
            if self.path.startswith("/api/v1/targets?state=active"):
                labels = [s["metric"] for s in answer] + PENDING
                data = {"activeTargets": [target(x) for x in labels], "droppedTargets": []}
            else:
                assert self.path.startswith("/api/v1/query?query=up")
                data = {"resultType": "vector", "result": answer}
            body = json.dumps({"status": "success", "data": data}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", answer
    server.shutdown()


def test_every_target_up_is_a_table_and_exit_0(
    prometheus: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, answer = prometheus
    answer += [series("tfserving", "h2:8501", "1", "h2"), series("haproxy", "lb:8405", "1", "lb")]
    assert prom_targets.main([url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Prometheus {url}: up"
    assert out[1].split() == ["JOB", "INSTANCE", "HOST", "UP"]
    assert [line.split() for line in out[2:]] == [
        ["haproxy", "lb:8405", "lb", "1"],
        ["tfserving", "h2:8501", "h2", "1"],
    ]


def test_a_target_down_is_named_and_exit_1(
    prometheus: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, answer = prometheus
    answer += [series("tfserving", "h1:8501", "1", "h1"), series("node", "h1:9100", "0", "h1")]
    assert prom_targets.main([url]) == 1
    captured = capsys.readouterr()
    assert ["node", "h1:9100", "h1", "0", "DOWN"] in [
        ln.split() for ln in captured.out.splitlines()
    ]
    assert "down: node h1:9100" in captured.err


def test_no_target_is_exit_1(
    prometheus: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert prom_targets.main([prometheus[0]]) == 1
    assert "no targets" in capsys.readouterr().err


def test_prometheus_not_answering_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert prom_targets.main(["http://127.0.0.1:9", "--timeout", "2"]) == 2
    assert "does not answer" in capsys.readouterr().err


def test_wait_asks_again_until_the_targets_appear(
    prometheus: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    """A Prometheus that has just started answers with no targets: --wait polls until they are
    up (here they appear after about 3 s)."""
    url, answer = prometheus
    timer = threading.Timer(3, lambda: answer.append(series("node", "h1:9100", "1", "h1")))
    timer.start()
    try:
        assert prom_targets.main([url, "--wait", "30"]) == 0
    finally:
        timer.cancel()
    assert ["node", "h1:9100", "h1", "1"] in [
        ln.split() for ln in capsys.readouterr().out.splitlines()
    ]


def test_wait_is_bounded_and_names_the_target_still_down(
    prometheus: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, answer = prometheus
    answer.append(series("node", "h1:9100", "0", "h1"))
    start = time.monotonic()
    assert prom_targets.main([url, "--wait", "4"]) == 1
    assert time.monotonic() - start < 10
    assert "down: node h1:9100 after 4 s" in capsys.readouterr().err


def test_negative_wait_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        prom_targets.main(["http://127.0.0.1:9", "--wait", "-1"])
    assert exc.value.code == 2


def test_a_target_not_scraped_yet_is_waited_for_and_named(
    prometheus: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    """A fresh Prometheus has scraped 1 of its 2 targets: every `up` series is 1, but the table
    is not done until the second target has its series (the demo once printed 1 of 7)."""
    url, answer = prometheus
    answer.append(series("node", "h1:9100", "1", "h1"))
    PENDING.append({"job": "tfserving", "instance": "h1:8501"})
    assert prom_targets.main([url]) == 1
    captured = capsys.readouterr()
    assert ["tfserving", "h1:8501", "-", "NOT", "SCRAPED"] in [
        ln.split() for ln in captured.out.splitlines()
    ]
    assert "not scraped yet: tfserving h1:8501" in captured.err

    def scraped() -> None:
        PENDING.clear()
        answer.append(series("tfserving", "h1:8501", "1", "h1"))

    timer = threading.Timer(3, scraped)
    timer.start()
    try:
        assert prom_targets.main([url, "--wait", "30"]) == 0
    finally:
        timer.cancel()
    rows = [ln.split() for ln in capsys.readouterr().out.splitlines()]
    assert ["tfserving", "h1:8501", "h1", "1"] in rows and ["node", "h1:9100", "h1", "1"] in rows
