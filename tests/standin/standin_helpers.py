"""Shared helpers of the stand-in tests: locate the reference model, run a server process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from helpers import free_ports

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"


def shared_dir() -> Path:
    path = Path(os.environ.get("TFS_FLEET_SHARED", REPO.parent / "shared"))
    model = path / "reference-models" / "saved_model_half_plus_two_cpu" / "00000123"
    if not (model / "saved_model.pb").is_file():
        raise AssertionError(
            f"TF Serving's reference model is missing at {model}: put shared/ beside the clone "
            "or set TFS_FLEET_SHARED to its path"
        )
    return path


def reference_models() -> Path:
    return shared_dir() / "reference-models"


def half_plus_two_base() -> Path:
    return reference_models() / "saved_model_half_plus_two_cpu"


def http(
    method: str, url: str, body: Any = None, timeout: float = 10.0
) -> tuple[int, dict[str, Any] | str]:
    """(status, parsed JSON or text) of one HTTP request; HTTP errors are answers too."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read().decode()
    try:
        return status, json.loads(raw)
    except json.JSONDecodeError:
        return status, raw


class StandinProcess:
    """python -m tfs_standin in a subprocess, logging to a file."""

    def __init__(
        self, args: list[str], log_path: Path, rest_port: int, grpc_port: int | None = None
    ) -> None:
        self.args = args
        self.log_path = log_path
        self.rest_port = rest_port
        self.grpc_port = grpc_port  # what --port says, where the caller knows it
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def hosts(self) -> list[str]:
        """The smoke test's --grpc and --rest arguments for this server."""
        return ["--grpc", f"127.0.0.1:{self.grpc_port}", "--rest", f"127.0.0.1:{self.rest_port}"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start_background(self) -> StandinProcess:
        env = {**os.environ, "PYTHONPATH": str(SRC), "TF_CPP_MIN_LOG_LEVEL": "2"}
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tfs_standin", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        return self

    def start(self, ready_model: str, timeout: float = 90.0) -> StandinProcess:
        """Start and wait until REST answers for ready_model (bounded)."""
        self.start_background()
        return self.wait_until(
            lambda: http("GET", f"{self.url}/v1/models/{ready_model}", timeout=2)[0] == 200,
            timeout,
        )

    def wait_until(
        self, ready: Callable[[], bool], timeout: float, what: str = "serve"
    ) -> StandinProcess:
        """Poll ready() (an OSError counts as not yet) until it holds; fail with the log when
        the process exits first, or stop it and fail (it did not ``what``) after timeout s."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"stand-in exited with {self.proc.returncode} before serving:\n{self.log()}"
                )
            try:
                if ready():
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise AssertionError(f"stand-in did not {what} within {timeout} s:\n{self.log()}")

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def serve_models(
    model_bases: Mapping[str, Path], workdir: Path, timeout: float = 120.0
) -> StandinProcess:
    """One stand-in serving each {name: base path} through a model_config_file in workdir
    (its log there too), returned once every model has an AVAILABLE version; stop() it."""
    config = workdir / "models.config"
    config.write_text(
        "model_config_list {\n"
        + "".join(
            f'  config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" }}\n'
            for name, base in model_bases.items()
        )
        + "}\n"
    )
    grpc_port, rest_port = free_ports(2)
    server = StandinProcess(
        [f"--port={grpc_port}", f"--rest_api_port={rest_port}", f"--model_config_file={config}"],
        workdir / "server.log",
        rest_port,
        grpc_port,
    )
    return server.start_background().wait_until(
        lambda: all("AVAILABLE" in status_states(server.url, m).values() for m in model_bases),
        timeout,
        f"make a version of each of {sorted(model_bases)} AVAILABLE",
    )


def run_cli(args: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "tfs_standin", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def status_states(url: str, model: str) -> dict[int, str]:
    """{version: state} from REST status; {} while the server does not answer."""
    try:
        status, body = http("GET", f"{url}/v1/models/{model}", timeout=5)
    except OSError:
        return {}
    if status != 200 or not isinstance(body, dict):
        return {}
    return {int(v["version"]): v["state"] for v in body["model_version_status"]}


def raw_http(port: int, request: bytes, timeout: float = 10.0) -> tuple[int, Any]:
    """Send raw bytes as one HTTP request; (status, parsed JSON body or text) of the answer.
    The answer must come within timeout seconds, with a Content-Length body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed without an answer (got {data!r})")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    status = int(lines[0].split()[1])
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, body.decode(errors="replace")
