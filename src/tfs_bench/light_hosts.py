"""Light SSH hosts for the control-plane part of `make bench` (issue 16, "past one controller"):
containers of the test-host image (tfs-fleet/debian12-systemd, built by
scripts/build_base_image.sh) that do NOT boot systemd and run no engine: only sshd
(`/usr/sbin/sshd -D -e`, host keys from `ssh-keygen -A`) and a tiny status responder (python3,
a TF Serving-like model status JSON on port 8501 that reads /srv/tfs-light/status.json at every
request). Each host gets the unprivileged login user `ops` with passwordless sudo and the
bench's key authorized through the sandbox's own provisioning script
(playbooks/files/sandbox_provision_user.sh, handed to the container's command: no `docker
exec`), like the sandbox fleet's hosts.

  names     tfs-fleet-light-1..N, label tfs-fleet.light=bench (how leftovers are found)
  address   each host's own address on the engine's bridge: SSH on 22, the status responder
            on 8501. No port is published on 127.0.0.1: here, with other tests' clients
            churning through the ephemeral range (32768-60999), `docker run -p
            127.0.0.1:38010:22` failed with "address already in use" in 2 of 3 sweeps, and a
            published port puts docker-proxy between the controller and every SSH byte.
  files     artifacts/sandbox/light/: id_ed25519(.pub), known_hosts (each host's own ed25519
            host key, read from the host's log, never from the network), inventory.yml

`LightHosts` is a context manager: leftovers of a killed run are removed before creating, the
hosts are always removed at the end (also on an error, Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from tfs_bench.server import REPO, BenchError

Progress = Callable[[str], None]

IMAGE = "tfs-fleet/debian12-systemd:latest"
PREFIX = "tfs-fleet-light"
LABEL = "tfs-fleet.light"
LABEL_VALUE = "bench"
REST_PORT = 8501
MAX_HOSTS = 99
USER = "ops"
MODEL = "half_plus_two"
KEY_DIR = REPO / "artifacts" / "sandbox" / "light"
PROVISION = REPO / "playbooks" / "files" / "sandbox_provision_user.sh"
# What sshd and sudo need, nothing else (no --privileged, no SYS_ADMIN): users and files
# (CHOWN, DAC_OVERRIDE, FOWNER), privilege separation (SETUID, SETGID, SYS_CHROOT), the login
# record (AUDIT_WRITE), signals to its own children (KILL), port 22 (NET_BIND_SERVICE).
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "SYS_CHROOT", "AUDIT_WRITE", "KILL",
    "NET_BIND_SERVICE",
)  # fmt: skip
HOSTKEY_MARK = "tfs-light-hostkey:"
READY_MARK = "tfs-light-ready"

# The status responder: GET /v1/models/<model> answers what /srv/tfs-light/status.json says
# (TF Serving's GetModelStatus shape), read at every request so that an "update" is a file
# written over SSH. Anything else: 404.
RESPONDER = r"""
import http.server, pathlib
MODEL = "MODELNAME"
STATUS = pathlib.Path("/srv/tfs-light/status.json")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.rstrip("/") != "/v1/models/" + MODEL:
            self.send_error(404)
            return
        body = STATUS.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8501), H).serve_forever()
"""

# The container's command (sh -c BOOT light-boot USER PUBKEY): user, key and sudo rule by the
# sandbox's script, the first deployment record and status, host keys, the responder, then sshd
# in the foreground as PID 1.
BOOT = r"""
set -eu
user=$1 pubkey=$2
sh -c "$TFS_LIGHT_PROVISION" sandbox_provision_user "$user" nopasswd "$pubkey" keep >/dev/null
install -d -m 0755 -o "$user" /srv/tfs-light
install -d -m 0755 /etc/tfs-fleet /run/sshd
printf '%s\n' "$TFS_LIGHT_STATUS" >/srv/tfs-light/status.json
printf '%s\n' "$TFS_LIGHT_RECORD" >/etc/tfs-fleet/serving-state.json
printf '%s\n' "$TFS_LIGHT_RESPONDER" >/usr/local/lib/tfs-light-responder.py
ssh-keygen -A >/dev/null
echo "tfs-light-hostkey:$(cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub)"
python3 /usr/local/lib/tfs-light-responder.py </dev/null >/dev/null 2>&1 &
echo tfs-light-ready
exec /usr/sbin/sshd -D -e
"""


def status_json(version: int, model: str = MODEL) -> str:
    """TF Serving's model status answer (GET /v1/models/<model>) for one AVAILABLE version."""
    return json.dumps({"model_version_status": [
        {"version": str(version), "state": "AVAILABLE",
         "status": {"error_code": "OK", "error_message": ""}},
    ]})  # fmt: skip


def record_json(version: int, model: str = MODEL) -> str:
    """A first deployment record (tfs_fleet.common.host_record's file) serving version."""
    return json.dumps({"current": {"models": {model: [version]}}, "previous": {}, "history": []})


def host_name(n: int) -> str:
    return f"{PREFIX}-{n}"


def inventory_yaml(
    count: int, key_dir: Path = KEY_DIR, addresses: Mapping[str, str] | None = None
) -> str:
    """The light hosts' inventory (JSON is YAML): group `light` (the serving hosts), group
    `canary` (the first host), reached over SSH (port 22 at each host's address: addresses, by
    name) as `ops` with the bench key and known_hosts; light_rest_endpoint: the status
    responder at the same address."""
    if not 1 <= count <= MAX_HOSTS:
        raise ValueError(f"light hosts: 1-{MAX_HOSTS} (got {count})")
    known = key_dir / "known_hosts"
    where = addresses or {}
    missing = [host_name(n) for n in range(1, count + 1) if host_name(n) not in where]
    if missing:
        raise ValueError(f"light hosts without an address: {missing}")
    hosts = {
        host_name(n): {"ansible_host": where[host_name(n)], "ansible_port": 22,
                       "light_rest_endpoint": f"{where[host_name(n)]}:{REST_PORT}"}
        for n in range(1, count + 1)
    }  # fmt: skip
    inventory = {
        "all": {
            "children": {
                "light": {
                    "hosts": hosts,
                    "vars": {
                        "ansible_user": USER,
                        "ansible_connection": "ssh",
                        "ansible_ssh_private_key_file": str(key_dir / "id_ed25519"),
                        "ansible_ssh_common_args": f"-o UserKnownHostsFile={known} "
                        "-o IdentitiesOnly=yes",
                    },
                },
                "canary": {"hosts": {host_name(1): {}}},
            }
        }
    }
    return json.dumps(inventory, indent=2) + "\n"


def known_hosts_line(address: str, hostkey: str) -> str:
    """known_hosts line for a host's SSH server on port 22 at address: `ADDRESS TYPE KEY`."""
    parts = hostkey.split()
    if len(parts) < 2 or not parts[0].startswith("ssh-"):
        raise BenchError(f"{address}: not a host key: {hostkey!r}")
    return f"{address} {parts[0]} {parts[1]}"


def _docker(*argv: str, timeout: float = 60, check: bool = True) -> str:
    proc = subprocess.run(
        ["docker", *argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise BenchError(f"docker {' '.join(argv[:3])} ...: {proc.stderr.strip()[:300]}")
    return proc.stdout


def leftover_containers() -> list[str]:
    """IDs of containers this module created (by label), running or not."""
    out = _docker("ps", "-aq", "--filter", f"label={LABEL}={LABEL_VALUE}", timeout=30)
    return out.split()


def remove_all() -> int:
    """Remove every light host (found by the label only: nobody else's containers)."""
    ids = leftover_containers()
    if ids:
        _docker("rm", "-f", "-v", *ids, timeout=120, check=False)
    return len(ids)


def ensure_key(key_dir: Path = KEY_DIR) -> Path:
    """The bench's login key pair (ed25519, like the sandbox's), made once."""
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = key_dir / "id_ed25519"
    if not key.is_file() or not key.with_suffix(".pub").is_file():
        for stale in (key, key.with_suffix(".pub")):
            stale.unlink(missing_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{USER}@{PREFIX}",
             "-f", str(key)],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
    return key


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """In the main thread: SIGTERM raises SystemExit, so that the finally clauses remove the
    hosts (Ctrl-C raises KeyboardInterrupt already)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@dataclass
class LightHosts:
    """count light hosts, started in parallel; `with LightHosts(8) as hosts:` starts them,
    waits until each answers over SSH as `ops`, and always removes them at the end."""

    count: int
    progress: Progress = print
    key_dir: Path = KEY_DIR
    version: int = 1
    workers: int = 8
    ssh_wait_s: float = 90.0
    timings: dict[str, float] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    _stack: contextlib.ExitStack | None = None

    @property
    def names(self) -> list[str]:
        return [host_name(n) for n in range(1, self.count + 1)]

    @property
    def inventory(self) -> Path:
        return self.key_dir / "inventory.yml"

    def __enter__(self) -> LightHosts:
        if not 1 <= self.count <= MAX_HOSTS:
            raise ValueError(f"light hosts: 1-{MAX_HOSTS} (got {self.count})")
        stack = contextlib.ExitStack()
        stack.enter_context(_sigterm_as_exit())
        stack.callback(self.remove)
        self._stack = stack
        try:
            self.start()
        except BaseException:
            stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def _run_one(self, n: int, pubkey: str, provision: str) -> None:
        _docker(
            "run", "-d", "--name", host_name(n), "--hostname", host_name(n),
            "--label", f"{LABEL}={LABEL_VALUE}",
            "--cap-drop", "ALL", *[a for cap in CAPABILITIES for a in ("--cap-add", cap)],
            "--memory", "256m", "--pids-limit", "256", "--stop-signal", "SIGTERM",
            "-e", f"TFS_LIGHT_PROVISION={provision}",
            "-e", f"TFS_LIGHT_STATUS={status_json(self.version)}",
            "-e", f"TFS_LIGHT_RECORD={record_json(self.version)}",
            "-e", f"TFS_LIGHT_RESPONDER={RESPONDER.replace('MODELNAME', MODEL)}",
            "--entrypoint", "sh", IMAGE, "-c", BOOT, "light-boot", USER, pubkey,
            timeout=120,
        )  # fmt: skip

    def _host_key(self, n: int, deadline: float) -> str:
        """The host key the host printed at boot (its log), polled until the deadline."""
        while True:
            out = _docker("logs", host_name(n), timeout=30, check=False)
            for line in out.splitlines():
                if line.startswith(HOSTKEY_MARK):
                    return line[len(HOSTKEY_MARK) :].strip()
            if time.monotonic() > deadline:
                raise BenchError(f"{host_name(n)}: no host key in its log after "
                                 f"{self.ssh_wait_s:.0f} s:\n{out[-500:]}")  # fmt: skip
            time.sleep(0.3)

    def ssh_argv(self, n: int, *command: str) -> list[str]:
        return [
            "ssh", "-i", str(self.key_dir / "id_ed25519"), "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={self.key_dir / 'known_hosts'}",
            "-o", "ConnectTimeout=5", "-o", "ControlMaster=no",
            f"{USER}@{self.addresses[host_name(n)]}", *command,
        ]  # fmt: skip

    def _wait_ssh(self, n: int, deadline: float, attempts: int = 60) -> None:
        """Bounded (attempts and time): `ssh ops@host sudo -n true` must succeed."""
        last = ""
        for _ in range(attempts):
            proc = subprocess.run(
                self.ssh_argv(n, "sudo", "-n", "true"),
                capture_output=True, text=True, timeout=20, check=False,
            )  # fmt: skip
            if proc.returncode == 0:
                return
            last = proc.stderr.strip()
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        raise BenchError(f"{host_name(n)}: no SSH as {USER} with sudo: {last[:300]}")

    def _addresses(self) -> dict[str, str]:
        """Each host's address on the engine's bridge (one `docker inspect` for all)."""
        out = _docker("inspect", "-f",
                      "{{.Name}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                      *self.names, timeout=60)  # fmt: skip
        found = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2:
                found[parts[0].lstrip("/")] = parts[1]
        missing = [name for name in self.names if name not in found]
        if missing:
            raise BenchError(f"light hosts without an address on the bridge: {missing}")
        return found

    def _pool(self, fn: Callable[[int], Any]) -> list[Any]:
        with ThreadPoolExecutor(max_workers=min(self.workers, self.count)) as pool:
            return list(pool.map(fn, range(1, self.count + 1)))

    def start(self) -> None:
        t0 = time.monotonic()
        gone = remove_all()
        if gone:
            self.progress(f"light hosts: removed {gone} leftover(s) of an earlier run")
        if not _docker("images", "-q", IMAGE, timeout=30).strip():
            raise BenchError(f"image {IMAGE} is missing: run `make images` first")
        key = ensure_key(self.key_dir)
        pubkey = key.with_suffix(".pub").read_text().strip()
        provision = PROVISION.read_text()
        self.progress(f"light hosts: starting {self.count} ({PREFIX}-1..{self.count}, SSH at "
                      "their bridge addresses)")  # fmt: skip
        self._pool(lambda n: self._run_one(n, pubkey, provision))
        self.addresses = self._addresses()
        deadline = time.monotonic() + self.ssh_wait_s
        keys = self._pool(lambda n: self._host_key(n, deadline))
        pairs = zip(self.names, keys, strict=True)
        known = [known_hosts_line(self.addresses[name], key) for name, key in pairs]
        (self.key_dir / "known_hosts").write_text("\n".join(known) + "\n")
        self.inventory.write_text(inventory_yaml(self.count, self.key_dir, self.addresses))
        self._pool(lambda n: self._wait_ssh(n, deadline))
        self.timings["light_hosts_start_s"] = round(time.monotonic() - t0, 1)
        self.progress(f"light hosts: {self.count} answer over SSH as {USER} with sudo "
                      f"({time.monotonic() - t0:.1f} s)")  # fmt: skip

    def remove(self) -> None:
        t0 = time.monotonic()
        gone = remove_all()
        self.timings["light_hosts_remove_s"] = round(time.monotonic() - t0, 1)
        self.progress(f"light hosts: removed {gone} ({time.monotonic() - t0:.1f} s)")


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        proc = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def _cli(argv: Sequence[str]) -> int:  # pragma: no cover - by hand: start, wait, remove
    count = int(argv[0]) if argv else 3
    with LightHosts(count) as hosts:
        print(f"inventory: {hosts.inventory}; press Ctrl-C to remove the hosts")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(_cli(sys.argv[1:]))
