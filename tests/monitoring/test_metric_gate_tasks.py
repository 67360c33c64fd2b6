"""roles/tfserving_rollout/tasks/metric_gate.yml run by Ansible against a fake Prometheus on
loopback (canned /api/v1/query answers): the host's and the baseline's figures are read, a
slower canary fails with the p99 figure, a canary like the fleet passes with its figures noted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from helpers import REPO

# ansible-playbook runs against a fake Prometheus on loopback (pytest-docker stage).
pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
FIGURES = {"canary-h": {"requests": 400, "errors": 0, "p99_ms": 5.0},
           "base-h": {"requests": 800, "errors": 0, "p99_ms": 4.0}}  # fmt: skip


class _Prometheus(BaseHTTPRequestHandler):
    queries: ClassVar[list[str]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)["query"][0]
        self.queries.append(query)
        host = "canary-h" if "canary-h" in query else "base-h"
        figures = FIGURES[host]
        if "histogram_quantile" in query:
            value = figures["p99_ms"]
        elif 'status!="OK"' in query:
            value = figures["errors"]
        else:
            value = figures["requests"]
        result = [{"metric": {}, "value": [0, str(value)]}]
        data = {"resultType": "vector", "result": result}
        body = json.dumps({"status": "success", "data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Prometheus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - name: The metric gate of the rollout role
      ansible.builtin.include_role:
        name: tfserving_rollout
        tasks_from: metric_gate
      when: inventory_hostname == 'canary-h'
"""


def run_gate(tmp_path: Path, url: str) -> tuple[int, str]:
    inventory = tmp_path / "hosts.yml"
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hosts = {"canary-h": {**local, "_tfserving_rollout_t0": "1"}, "base-h": local}
    settings = {"tfserving_rollout_prometheus_url": url, "tfserving_rollout_soak_seconds": 1}
    inventory.write_text(json.dumps({"all": {"hosts": hosts, "vars": settings}}))
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(play)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
             "ANSIBLE_ROLES_PATH": str(REPO / "roles")},
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def test_a_canary_like_the_fleet_passes(tmp_path: Path, prometheus: str) -> None:
    FIGURES["canary-h"]["p99_ms"] = 5.0
    _Prometheus.queries.clear()
    rc, out = run_gate(tmp_path, prometheus)
    assert rc == 0, out[-3000:]
    assert any('host=~"canary-h"' in q for q in _Prometheus.queries)
    assert any('host=~"base-h"' in q for q in _Prometheus.queries)
    assert len(_Prometheus.queries) == 6


def test_a_slower_canary_fails_with_the_figure(tmp_path: Path, prometheus: str) -> None:
    FIGURES["canary-h"]["p99_ms"] = 60.0
    rc, out = run_gate(tmp_path, prometheus)
    assert rc == 2, out[-3000:]
    assert "metric gate after 1 s: p99 latency 60.0 ms is 15.0x that of the hosts not updated" in (
        " ".join(out.split())
    ), out[-3000:]
