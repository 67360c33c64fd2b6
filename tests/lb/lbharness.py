"""A real HAProxy on this machine, configured by the tfserving_lb role's own template (rendered
by Ansible with the role's defaults and vars, validated with `haproxy -c`), in front of
in-process servers on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible_collections.tfs_fleet.common.plugins.module_utils import haproxy_runtime as hr

from helpers import BIN, REPO, free_ports

ROLE = REPO / "roles" / "tfserving_lb"
PLAY = """\
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
    - {role}/vars/Debian.yml
  tasks:
    - name: Render the role's template as the role does
      ansible.builtin.template:
        src: {role}/templates/haproxy.cfg.j2
        dest: "{{{{ dest }}}}"
        mode: "0644"
        validate: haproxy -c -q -f %s
"""


def require_haproxy() -> str:
    path = shutil.which("haproxy")
    if path is None:
        raise AssertionError("haproxy is missing on this machine: run `make lb-tools` first")
    return path


def render(dest: Path, extra: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """ansible-playbook renders the template into dest (validate: haproxy -c)."""
    require_haproxy()
    play = dest.parent / f"render-{dest.name}.yml"
    play.write_text(PLAY.format(role=ROLE))
    vars_file = dest.parent / f"vars-{dest.name}.json"
    vars_file.write_text(json.dumps({"dest": str(dest), **extra}))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(play), "-e", f"@{vars_file}",
         "-e", f"ansible_python_interpreter={sys.executable}"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip


@dataclass
class Lb:
    config: Path
    socket: str
    grpc: str
    rest: str
    proc: subprocess.Popen[str]
    metrics: str = ""

    def stat(self) -> dict[tuple[str, str], dict[str, str]]:
        rows = hr.parse_stat(hr.command(self.socket, "show stat"))
        return {(r["pxname"], r["svname"]): r for r in rows}

    def status(self, backend: str, server: str) -> str:
        return self.stat()[(backend, server)]["status"]

    def state(self, backend: str, server: str) -> str:
        """The state without HAProxy's transition counter: "DOWN 1/2" (one good check of the two
        that bring it up) is still DOWN, "UP 1/3" still UP."""
        return self.status(backend, server).split(" ", 1)[0]

    def wait_status(self, backend: str, server: str, want: str, seconds: float = 20) -> str:
        deadline = time.monotonic() + seconds
        status = ""
        while time.monotonic() < deadline:
            status = self.status(backend, server)
            if status == want:
                return status
            time.sleep(0.1)
        return status

    def reload(self) -> None:
        """What `systemctl reload haproxy` does in master-worker mode: USR2 to the master."""
        os.kill(self.proc.pid, signal.SIGUSR2)


@contextlib.contextmanager
def running_lb(
    tmp: Path, servers: Sequence[dict[str, Any]], models: Sequence[Any], **extra: Any
) -> Iterator[Lb]:
    """HAProxy in master-worker mode (-W, foreground) with the role's template."""
    from ansible_collections.tfs_fleet.common.plugins.filter.lb import lb_model_checks

    tmp.mkdir(parents=True, exist_ok=True)
    grpc, rest, stats, metrics = free_ports(4)
    sock = str(tmp / "admin.sock")
    config = tmp / "haproxy.cfg"
    values = {
        "_tfserving_lb_servers": list(servers),
        "_tfserving_lb_checks": lb_model_checks(models, []),
        "tfserving_lb_bind_address": "127.0.0.1",
        "tfserving_lb_grpc_port": grpc,
        "tfserving_lb_rest_port": rest,
        "tfserving_lb_stats_port": stats,
        "tfserving_lb_metrics_address": "127.0.0.1",
        "tfserving_lb_metrics_port": metrics,
        "tfserving_lb_socket_path": sock,
        **extra,
    }
    done = render(config, values)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    proc = subprocess.Popen(
        [require_haproxy(), "-W", "-db", "-f", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not os.path.exists(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"haproxy did not start: {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
            time.sleep(0.1)
        yield Lb(
            config, sock, f"127.0.0.1:{grpc}", f"127.0.0.1:{rest}", proc, f"127.0.0.1:{metrics}"
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def server_entry(name: str, grpc_target: str, rest_target: str) -> dict[str, Any]:
    host, grpc_port = grpc_target.rsplit(":", 1)
    return {
        "name": name,
        "host": name,
        "container": "tfserving",
        "address": host,
        "grpc_port": int(grpc_port),
        "rest_port": int(rest_target.rsplit(":", 1)[1]),
    }


def module(params: dict[str, Any], *, check: bool = False) -> dict[str, Any]:
    """Run tfs_fleet.common.haproxy_server_state through Ansible; return its result."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
    }
    proc = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
         "-m", "tfs_fleet.common.haproxy_server_state", "-a", json.dumps(params),
         "-e", f"ansible_python_interpreter={sys.executable}",
         *(["--check"] if check else [])],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=180,
    )  # fmt: skip
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(proc.stdout[-2000:] + proc.stderr[-2000:]) from exc
    return doc["plays"][0]["tasks"][0]["hosts"]["localhost"]
