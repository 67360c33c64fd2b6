"""Shared helpers for tests that drive ansible-playbook against throwaway systemd containers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# The PLAY RECAP parser is the benchmark's (one parser for tests and bench).
from tfs_bench.fleet import recap_changed as recap_changed

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TEST_IMAGE = os.environ.get(
    "TFS_FLEET_TEST_IMAGE", f"tfs-fleet/{os.environ.get('SANDBOX_OS') or 'debian12'}-systemd:latest"
)
SYSTEMD_FLAGS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
    "--security-opt", "seccomp=unconfined", "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
    # The inner engine's data on a volume, as on a real host's disk: dockerd picks overlay2
    # there (on the container's own overlay root it could only fall back to vfs).
    "-v", "/var/lib/docker",
]  # fmt: skip


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25
) -> Any:
    """Poll predicate() until it returns a truthy value and return that value; after timeout
    seconds fail, naming what was awaited and the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value: {last!r}")


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


# Python on an LB host: query(socket path, command) sends one HAProxy runtime API command to the
# admin socket and returns the answer (also the looping reader of tests/hostchange).
HAPROXY_QUERY = (
    "import socket,sys\n"
    "def query(path,command):\n"
    "    s=socket.socket(socket.AF_UNIX);s.connect(path);s.sendall(command.encode()+b'\\n')\n"
    "    out=b''\n    while True:\n        d=s.recv(65536)\n"
    "        if not d: break\n        out+=d\n"
    "    s.close()\n    return out.decode()\n"
)
_HAPROXY_RUNTIME = HAPROXY_QUERY + "sys.stdout.write(query(sys.argv[1],sys.argv[2]))\n"


def haproxy_runtime(lb: str, command: str, socket: str = "/run/haproxy/admin.sock") -> str:
    """The answer of HAProxy's runtime API on the sandbox LB host `lb` (docker exec)."""
    return docker("exec", lb, "python3", "-c", _HAPROXY_RUNTIME, socket, command).stdout


def require_docker_image(image: str = TEST_IMAGE) -> None:
    """Fail (never skip) with the fix when the engine or the test image is missing."""
    if docker("info", check=False).returncode != 0:
        raise AssertionError("no Docker engine answers: run `make docker-engine` first")
    if docker("image", "inspect", image, check=False).returncode != 0:
        raise AssertionError(f"image {image} is missing: run `make images` first")


@contextmanager
def systemd_container(prefix: str) -> Iterator[str]:
    """Run a systemd test host from TEST_IMAGE; yield its name; remove it afterwards."""
    require_docker_image()
    name = f"tfsf-test-{prefix}-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--name", name, *SYSTEMD_FLAGS, TEST_IMAGE, "/lib/systemd/systemd")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = docker("exec", name, "systemctl", "is-system-running", check=False)
            if state.stdout.strip() in {"running", "degraded"}:
                break
            time.sleep(0.5)
        yield name
    finally:
        docker("rm", "-f", "-v", name, check=False)


def write_inventory(path: Path, hosts: Sequence[str], group: str = "gpu_servers") -> Path:
    lines = ["all:", "  children:", f"    {group}:", "      hosts:"]
    for host in hosts:
        lines += [f"        {host}:", "          ansible_connection: community.docker.docker"]
    path.write_text("\n".join(lines) + "\n")
    return path


def ansible_playbook(
    playbook: str | Path,
    inventory: str | Path,
    *args: str,
    timeout: int = 600,
    env: Mapping[str, str] | None = None,
    json_report: bool = False,
) -> subprocess.CompletedProcess[str]:
    """The one way tests run ansible-playbook: the venv's, with the project's ansible.cfg, from
    the repository root, bounded in time. ``json_report`` selects the ansible.posix.json
    callback (parse it with playbook_report); ``env`` adds or overrides variables."""
    program = BIN / "ansible-playbook"
    if not program.exists():
        raise AssertionError(f"{program} is missing: run `make venv` first")
    full_env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    if json_report:
        full_env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    full_env.update(env or {})
    return subprocess.run(
        [str(program), "-i", str(inventory), str(playbook), *args],
        capture_output=True, text=True, cwd=REPO, env=full_env, timeout=timeout, check=False,
    )  # fmt: skip


def report_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON report of a json_report run; fails with the run's stderr when there is none."""
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"no JSON from ansible-playbook (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
        ) from None
    return report


def playbook_report(
    playbook: str | Path, inventory: str | Path, *args: str, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    """ansible_playbook with the JSON callback: (exit code, report)."""
    proc = ansible_playbook(playbook, inventory, *args, json_report=True, **kwargs)
    return proc.returncode, report_of(proc)


COLLECTION_MODULES = REPO / "collections/ansible_collections/tfs_fleet/common/plugins/modules"


def run_collection_module(
    module: str, args: Mapping[str, Any], tmp_path: Path, check: bool = False
) -> tuple[int, dict[str, Any]]:
    """Run one of the collection's modules as Ansible ships it (the module file with the
    collection's module_utils importable) on ``args``, in check mode when asked; its exit code
    and JSON result."""
    args_file = tmp_path / f"args-{module}.json"
    payload = {**args, **({"_ansible_check_mode": True} if check else {})}
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": payload}))
    env = {**os.environ, "PYTHONPATH": str(REPO / "collections")}
    proc = subprocess.run(
        [sys.executable, str(COLLECTION_MODULES / f"{module}.py"), str(args_file)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports on 127.0.0.1. Every socket is held until all are bound, so
    one call never hands out the same port twice (two separate bind-to-0 calls can, and a
    server given equal gRPC and REST ports answers REST requests with its gRPC listener)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
