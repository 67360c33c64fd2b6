"""Deadlines and limits of the clients and the smoke test against hostile servers: a REST
server that trickles one byte at a time, one that sends a huge answer, non-finite options."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from toolkit_helpers import REPO, VENV_PYTHON
from toolkit_serving_server import Serving

from tfs_fleet.client import RestClient, ServingError

SCRIPT = REPO / "scripts" / "smoke_test.py"


@contextmanager
def hostile_http(mode: str, interval_s: float = 0.5, limit_s: float = 30.0) -> Iterator[str]:
    """A loopback HTTP server. ``trickle``: one byte of a valid answer every ``interval_s``
    (``trickle-body``: the HTTP/1.0 headers at once, then the body that way);
    ``huge``: a 3 GB Content-Length with zeros streamed; ``endless``: zeros with no length.
    Every connection is closed after ``limit_s`` at the latest."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        end = time.monotonic() + limit_s
        conn.settimeout(limit_s)
        try:
            conn.recv(65536)
            if mode in {"trickle", "trickle-body"}:
                head = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n"
                answer = head + b'{"x": 1}' + b" " * 1000
                if mode == "trickle-body":  # the headers at once, then the body byte by byte
                    conn.sendall(head)
                    answer = answer[len(head) :]
                for byte in answer:
                    if stop.is_set() or time.monotonic() > end:
                        break
                    conn.sendall(bytes([byte]))
                    time.sleep(interval_s)
            else:
                head = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
                head += b"Content-Length: 3000000000\r\n\r\n" if mode == "huge" else b"\r\n"
                conn.sendall(head + b"[")
                block = b"0," * 32768
                while not stop.is_set() and time.monotonic() < end:
                    conn.sendall(block)
        except OSError:
            pass
        finally:
            conn.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


@pytest.mark.parametrize("mode", ["trickle", "trickle-body"])
def test_rest_timeout_bounds_the_whole_request_against_a_trickling_server(mode: str) -> None:
    """Issue 23 item 7: with the headers read, an HTTP/1.0 answer leaves conn.sock None; the
    deadline must still end the request (it ran to the overall deadline before)."""
    with hostile_http(mode) as target:
        client = RestClient(target, timeout_s=1.5)
        start = time.monotonic()
        with pytest.raises(ServingError) as err:
            client.metadata("m")
        elapsed = time.monotonic() - start
    assert elapsed < 1.5 + 1.0, elapsed
    assert err.value.code == "DEADLINE_EXCEEDED" and "1.5 s" in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["huge", "endless"])
def test_rest_answers_over_the_limit_are_refused(mode: str) -> None:
    with hostile_http(mode) as target:
        client = RestClient(target, timeout_s=20, max_response_bytes=1024 * 1024)
        start = time.monotonic()
        with pytest.raises(ServingError) as err:
            client.metadata("m")
        assert time.monotonic() - start < 10
    assert "over the limit of 1048576 bytes" in str(err.value)


def startup_s() -> float:
    """Seconds the script needs to start and import everything it uses (an argument error
    exits right after the imports); subtracted from measured run times on a busy machine."""
    start = time.monotonic()
    subprocess.run(
        [VENV_PYTHON, str(SCRIPT), "--manifest", "/x", "--grpc", "h:1", "--rest", "h:1",
         "--wait", "nan"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    return time.monotonic() - start


def smoke_against_trickle(serving: Serving, manifest: Any, *flags: str) -> tuple[float, float, str]:
    with hostile_http("trickle", interval_s=0.5) as rest:
        start = time.monotonic()
        proc = subprocess.run(
            [VENV_PYTHON, str(SCRIPT), "--manifest", str(manifest), "--grpc",
             serving.grpc_target, "--rest", rest, "--wait", "5", "--json", *flags],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        elapsed = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    [host] = doc["hosts"]
    assert host["failed_check"] == "signatures", host
    return elapsed - startup_s(), doc["run_seconds"], str(host["checks"]["signatures"]["detail"])


@pytest.mark.parametrize(
    ("flags", "bound", "detail"),
    [
        # --timeout bounds the whole REST request (the server keeps every read alive).
        (("--timeout", "3"), 3.0, "no complete answer within 3 s"),
        # --deadline bounds the whole run, cutting a request short.
        (("--timeout", "10", "--deadline", "3"), 3.0, "no complete answer within"),
    ],
)
def test_smoke_test_against_a_trickling_rest_server_ends_within_its_deadline(
    serving: Serving, good_export: Any, flags: tuple[str, ...], bound: float, detail: str
) -> None:
    """gRPC answers (AVAILABLE), REST sends one byte every 0.5 s: the run ends within its
    deadline plus 1 s, as the script measures it from main(); the wall time seen from here
    (interpreter start-up subtracted) gets more slack for a busy machine, still far below
    the 30 s the trickling server would keep a reader busy."""
    wall_s, run_s, got = smoke_against_trickle(serving, good_export.manifest_path, *flags)
    assert run_s < bound + 1.0, run_s
    assert wall_s < bound + 4.0, wall_s
    assert detail in got


def test_the_run_deadline_cuts_the_status_wait(good_export: Any) -> None:
    """Nothing listens on the gRPC port: --wait 30 is cut to --deadline 2."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    start = time.monotonic()
    proc = subprocess.run(
        [VENV_PYTHON, str(SCRIPT), "--manifest", str(good_export.manifest_path),
         "--grpc", f"127.0.0.1:{port}", "--rest", f"127.0.0.1:{port}", "--wait", "30",
         "--deadline", "2"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    assert elapsed - startup_s() < 2 + 4.0, elapsed


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--wait", "nan"), ("--wait", "inf"), ("--timeout", "nan"), ("--poll", "-inf"),
     ("--deadline", "nan"), ("--rtol", "nan"), ("--atol", "-1"), ("--max-message-mb", "100000")],
)  # fmt: skip
def test_non_finite_or_out_of_range_numbers_exit_2(flag: str, value: str, good_export: Any) -> None:
    proc = subprocess.run(
        [VENV_PYTHON, str(SCRIPT), "--manifest", str(good_export.manifest_path),
         "--grpc", "127.0.0.1:1", "--rest", "127.0.0.1:1", f"{flag}={value}"],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert flag in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "sample",
    [{"signature": "s", "inputs": 5, "expected_outputs": {}}, ["not", "a", "dict"], None],
)
def test_a_malformed_manifest_sample_exits_2_without_a_traceback(
    sample: Any, good_export: Any, tmp_path: Path
) -> None:
    doc = json.loads(Path(good_export.manifest_path).read_text())
    doc["sample"] = sample
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    proc = subprocess.run(
        [VENV_PYTHON, str(SCRIPT), "--manifest", str(path), "--grpc", "127.0.0.1:1",
         "--rest", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert str(path) in proc.stderr and "Traceback" not in proc.stderr


def test_a_manifest_that_is_a_list_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("[1, 2]")
    proc = subprocess.run(
        [VENV_PYTHON, str(SCRIPT), "--manifest", str(path), "--grpc", "h:1", "--rest", "h:2"],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
