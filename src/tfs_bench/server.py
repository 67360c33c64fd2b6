"""The serving stand-in (src/tfs_standin, not TF Serving) in a process of its own on loopback
ports, serving the demo half_plus_two exported by scripts/export_model.py."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODEL = "half_plus_two"


class BenchError(RuntimeError):
    """A measurement could not be made (the message names what and why)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quiet_env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


def export_demo(export_base: Path, python: str = sys.executable, version: int = 1) -> Path:
    """Export half_plus_two as `version` under export_base; return its manifest path."""
    proc = subprocess.run(
        [python, str(REPO / "scripts" / "export_model.py"), "--demo", MODEL,
         "--export-base", str(export_base), "--version", str(version)],
        capture_output=True, text=True, env=quiet_env(), timeout=300, check=False,
    )  # fmt: skip
    manifest = export_base / MODEL / str(version) / "tfs_fleet_manifest.json"
    if proc.returncode != 0 or not manifest.is_file():
        raise BenchError(f"export of the demo model failed: {proc.stderr[-2000:]}")
    return manifest


def publish_version(model_base: Path, source: Path, version: int) -> Path:
    """Copy a version directory beside the served ones, then rename it into place (atomic, as
    the exporter and tfserving_models publish)."""
    staging = model_base / f".bench-staging-{version}"
    shutil.copytree(source, staging)
    target = model_base / str(version)
    staging.rename(target)
    return target


class Standin:
    """python -m tfs_standin serving one model base, polled every second for new versions."""

    def __init__(self, model_base: Path, log_path: Path, python: str = sys.executable) -> None:
        self.model_base = model_base
        self.log_path = log_path
        self.python = python
        self.grpc_port = free_port()
        self.rest_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def rest_target(self) -> str:
        return f"127.0.0.1:{self.rest_port}"

    def log_tail(self, chars: int = 2000) -> str:
        if not self.log_path.is_file():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def states(self) -> dict[int, str]:
        """{version: state} from REST status; {} while it does not answer."""
        url = f"http://{self.rest_target}/v1/models/{MODEL}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = json.loads(response.read())
        except (OSError, urllib.error.URLError, json.JSONDecodeError):
            return {}
        return {int(v["version"]): str(v["state"]) for v in body.get("model_version_status", [])}

    def start(self, timeout_s: float = 120.0) -> Standin:
        env = {**quiet_env(), "PYTHONPATH": str(REPO / "src")}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [self.python, "-m", "tfs_standin", f"--port={self.grpc_port}",
                 f"--rest_api_port={self.rest_port}", f"--model_name={MODEL}",
                 f"--model_base_path={self.model_base}", "--file_system_poll_wait_seconds=1"],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise BenchError(f"the stand-in exited ({code}):\n{self.log_tail()}")
            if "AVAILABLE" in self.states().values():
                return self
            time.sleep(0.3)
        self.stop()
        raise BenchError(f"the stand-in did not serve within {timeout_s} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> Standin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
