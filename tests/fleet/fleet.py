"""The fleet stage's 3-host sandbox fleet (TFS_FLEET_SANDBOX=rollout): creation, the load
balancer and monitoring hosts that join it (the front door), the rollout playbook, per-host
state as the tests assert it, and a bounded client load (tests/fleet/conftest.py: the order)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
from ansible_collections.tfs_fleet.common.plugins.module_utils import haproxy_runtime as hr

from tfs_bench.fleet import ARCHIVE, sandbox_playbook_args
from tfs_fleet.client import GrpcClient, RestClient, RetryPolicy, ServingError
from tfs_fleet.load import LoadSpec

from helpers import (
    BIN,
    REPO,
    docker,
    haproxy_runtime,
    recap_changed,
    require_docker_image,
    wait_for,
)

FLEET = "rollout"
HOSTS = [f"tfs-fleet-{FLEET}-{n}" for n in (1, 2, 3)]
CANARY = HOSTS[0]
# Below the kernel's ephemeral range (32768-60999): an outgoing connection can never hold them.
GRPC_BASE, REST_BASE, SSH_BASE = 30500, 30600, 30400
# The front door (test_2 on): the LB host listens on the bases themselves (gRPC 30500, REST 30600,
# SSH 30400); the monitoring host (number 90: SSH 30490) publishes Prometheus on 30090.
LB = f"tfs-fleet-{FLEET}-lb"
MONITORING = f"tfs-fleet-{FLEET}-90"
PROMETHEUS_PORT = 30090
PROMETHEUS = f"http://127.0.0.1:{PROMETHEUS_PORT}"
FRONT_GRPC, FRONT_REST = f"127.0.0.1:{GRPC_BASE}", f"127.0.0.1:{REST_BASE}"
# Clients through the front door (test_2, test_4): a request every 50 ms per client (about 35 a
# second in all); a host taken out without a drain fails requests for seconds, far longer than
# that. At 20 ms the clients, HAProxy and the stand-ins took about 0.37 of a core on this 2-core
# machine (measured), beside the other lanes.
FRONT = LoadSpec(grpc=FRONT_GRPC, rest=FRONT_REST, interval_s=0.05)
LB_SOCKET = "/run/haproxy/admin.sock"
# The fleet's OS (env below): mixed (make test: serving hosts 1 and 3 on Debian 12, host 2 and
# the LB and monitoring hosts on Debian 13, a fleet in the middle of an OS upgrade), or every host
# on debian12 or debian13 (TFS_FLEET_FLEET_OS).
FLEET_OS = os.environ.get("TFS_FLEET_FLEET_OS") or "mixed"
EXPECTED_RELEASE = (
    {**{h: "12" if n % 2 else "13" for n, h in enumerate(HOSTS, 1)}, LB: "13", MONITORING: "13"}
    if FLEET_OS == "mixed"
    else dict.fromkeys([*HOSTS, LB, MONITORING], FLEET_OS.removeprefix("debian"))
)
# The rollout fleet is the sandbox's sudo-password flavour: Ansible logs in over SSH as the
# unprivileged login user, and sudo asks for that user's password, which comes from a vault file
# whose password comes from a file (as many fleets run it).
SANDBOX_DIR = REPO / "artifacts" / "sandbox" / FLEET
VAULT_PASSWORD_FILE = SANDBOX_DIR / "vault-password"
BECOME_VAULT = SANDBOX_DIR / "become.vault.yml"
BECOME_ARGS = ["--vault-password-file", str(VAULT_PASSWORD_FILE), "-e", f"@{BECOME_VAULT}"]
MODEL = "half_plus_two"
IMAGE = "tfs-fleet/serving-standin:latest"
MODELS_DIR = f"/srv/tfserving/models/{MODEL}"
RETIRED_DIR = f"/srv/tfserving/retired/{MODEL}"
NO_RETRY = RetryPolicy(attempts=1)
PLAYBOOK_LOGS = REPO / "artifacts" / "fleet" / "playbooks"


def lb_stat() -> dict[tuple[str, str], dict[str, str]]:
    """The LB's `show stat`, by (backend, server)."""
    return {
        (r["pxname"], r["svname"]): r
        for r in hr.parse_stat(haproxy_runtime(LB, "show stat", LB_SOCKET))
    }


def servers_status() -> dict[str, str]:
    rows = lb_stat()
    return {f"{b}/{s}": r["status"] for (b, s), r in rows.items() if b in {"tfs_rest", "tfs_grpc"}
            and s not in {"FRONTEND", "BACKEND"}}  # fmt: skip


def admin_states() -> dict[str, int]:
    rows = hr.parse_servers_state(haproxy_runtime(LB, "show servers state", LB_SOCKET))
    return {f"{r['be_name']}/{r['srv_name']}": hr.admin_flags(r) for r in rows}


def all_up() -> bool:
    status = servers_status()
    return len(status) == 2 * len(HOSTS) and set(status.values()) == {"UP"}


def wait_until(predicate: Callable[[], bool], seconds: float, poll: float = 0.5) -> bool:
    """helpers.wait_for as a verdict: True once predicate() is, False after `seconds`, so the
    caller's assert names what it saw (the servers' states)."""
    try:
        wait_for(predicate, seconds, "the load balancer's state", interval=poll)
    except AssertionError:
        return False
    return True


def grpc_port(host: str) -> int:
    return GRPC_BASE + int(host.rsplit("-", 1)[1])


def rest_port(host: str) -> int:
    return REST_BASE + int(host.rsplit("-", 1)[1])


def env(sandbox: str = FLEET) -> dict[str, str]:
    """The environment of a playbook run on the sandbox fleet `sandbox` (default: this stage's)."""
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "TFS_FLEET_SANDBOX": sandbox,
        # The fleet's OS (playbooks/sandbox.yml): mixed, a fleet in the middle of an OS upgrade
        # (issue 26), unless TFS_FLEET_FLEET_OS names one release.
        "SANDBOX_OS": FLEET_OS,
        "PYTHONPATH": str(REPO / "src"),
    }


def playbook(
    *args: str,
    timeout: int = 900,
    extra_env: dict[str, str] | None = None,
    become_args: Sequence[str] | None = None,
) -> Run:
    """Run ansible-playbook against the rollout fleet (with the fleet's vault password file and
    vaulted sudo password unless become_args says otherwise); returns its output and recap."""
    start = time.monotonic()
    argv = [str(BIN / "ansible-playbook"), *(BECOME_ARGS if become_args is None else become_args),
            *args]  # fmt: skip
    proc = subprocess.run(
        argv, capture_output=True, text=True, cwd=REPO, env={**env(), **(extra_env or {})},
        timeout=timeout,
    )  # fmt: skip
    run = Run(proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start)
    _keep_log(argv, run)
    return run


def _keep_log(argv: Sequence[str], run: Run) -> None:
    """Each playbook run's output in artifacts/fleet/playbooks/ (numbered in the order they ran),
    for a failure in CI and for the time each task took (ANSIBLE_CALLBACKS_ENABLED=
    ansible.posix.profile_tasks in the environment of `make test-fleet` adds it)."""
    PLAYBOOK_LOGS.mkdir(parents=True, exist_ok=True)
    number = len(list(PLAYBOOK_LOGS.glob("*.log"))) + 1
    name = next((Path(a).stem for a in argv if a.endswith(".yml") and not a.startswith("@")), "run")
    header = f"# {' '.join(argv)}\n# rc={run.rc} seconds={run.seconds:.1f}\n"
    (PLAYBOOK_LOGS / f"{number:03d}-{name}.log").write_text(header + run.output)


@dataclass
class Run:
    rc: int
    output: str
    seconds: float

    @property
    def changed(self) -> dict[str, int]:
        return recap_changed(self.output)

    def tail(self, lines: int = 60) -> str:
        """The first failures (where a run went wrong) and the last lines (how it ended)."""
        out = self.output.splitlines()
        first = [i for i, line in enumerate(out) if line.startswith(("fatal:", "failed:"))][:3]
        head = ["--- first failures:", *[ln for i in first for ln in out[max(0, i - 3) : i + 12]]]
        return "\n".join([*(head if first else []), "--- last lines:", *out[-lines:]])


def in_host(host: str, *argv: str, check: bool = True) -> str:
    return docker("exec", host, *argv, check=check).stdout


# The models role's publish record of each version, beside it (tfs_fleet.common.published_versions).
RECORD_PREFIX = ".tfs-fleet-published-"


def host_versions(host: str, directory: str = MODELS_DIR) -> list[str]:
    """Entries of a model directory on a host (numeric versions and anything else, a staging
    directory left behind included), without the publish records."""
    out = in_host(host, "sh", "-c", f"ls -A {directory} 2>/dev/null || true")
    return sorted(name for name in out.split() if not name.startswith(RECORD_PREFIX))


def container(host: str) -> dict[str, Any]:
    out = in_host(host, "docker", "inspect", "tfserving", check=False)
    docs = json.loads(out) if out.strip() else []
    return docs[0] if docs else {}


def available_versions(host: str, timeout: float = 5.0) -> list[int]:
    """Versions the host's server reports AVAILABLE (gRPC GetModelStatus); [] when none."""
    client = GrpcClient(f"127.0.0.1:{grpc_port(host)}", timeout_s=timeout, retry=NO_RETRY)
    try:
        statuses = client.get_model_status(MODEL)
    except ServingError:
        return []
    finally:
        client.close()
    return sorted(s.version for s in statuses if s.state == "AVAILABLE")


def wait_available(host: str, version: int, seconds: float = 90) -> list[int]:
    deadline = time.monotonic() + seconds
    versions: list[int] = []
    while time.monotonic() < deadline:
        versions = available_versions(host)
        if versions == [version]:
            return versions
        time.sleep(1)
    return versions


@dataclass
class HostState:
    image_id: str
    served_dirs: list[str]
    retired_dirs: list[str]
    available: list[int]
    started: str
    container_id: str


def state(host: str) -> HostState:
    info = container(host)
    return HostState(
        image_id=info.get("Image", ""),
        served_dirs=host_versions(host),
        retired_dirs=host_versions(host, RETIRED_DIR),
        available=available_versions(host),
        started=info.get("State", {}).get("StartedAt", ""),
        container_id=info.get("Id", ""),
    )


def standin_image_id(host: str) -> str:
    return in_host(host, "docker", "image", "inspect", "-f", "{{.Id}}", IMAGE).strip()


class Background:
    """A context manager that runs self._loop in a daemon thread until it is left (then sets
    self._stop and joins the thread, bounded): for the dataclasses below and the tests' samplers,
    which define _loop, _stop (a threading.Event) and _thread."""

    _loop: Callable[[], None]
    _stop: threading.Event
    _thread: threading.Thread | None

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


@dataclass
class Load(Background):
    """Bounded client load: gRPC Predict (no retry) round-robin on the hosts' published ports,
    and a REST predict every 5th request, until stopped or max_seconds / max_requests."""

    hosts: Sequence[str]
    max_seconds: float = 400
    max_requests: int = 100_000
    interval_s: float = 0.05
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    answers: dict[float, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _one(self, host: str, clients: dict[str, GrpcClient]) -> None:
        try:
            if self.sent % 5 == 4:
                rest = RestClient(f"127.0.0.1:{rest_port(host)}", timeout_s=5)
                value = float(rest.predict_rows(MODEL, [[1.0]]).reshape(-1)[0])
            else:
                result = clients[host].predict(MODEL, {"x": np.array([[1.0]], dtype=np.float32)})
                value = float(next(iter(result.outputs.values())).reshape(-1)[0])
            self.answers[value] = self.answers.get(value, 0) + 1
        except ServingError as exc:
            self.failures.append(f"{host}: {exc}")

    def _loop(self) -> None:
        clients = {
            h: GrpcClient(f"127.0.0.1:{grpc_port(h)}", timeout_s=5, retry=NO_RETRY)
            for h in self.hosts
        }
        deadline = time.monotonic() + self.max_seconds
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                if self.sent >= self.max_requests:
                    break
                self._one(self.hosts[self.sent % len(self.hosts)], clients)
                self.sent += 1
                time.sleep(self.interval_s)
        finally:
            for client in clients.values():
                client.close()


@dataclass
class Fleet:
    export_base: Path
    runs_dir: Path

    def rollout_args(self, *extra: str, run_id: str) -> list[str]:
        return [
            str(BIN / "ansible-playbook"), *BECOME_ARGS,
            *sandbox_playbook_args("playbooks/rollout.yml", self.export_base),
            "-e", f"tfserving_rollout_report_dir={self.runs_dir}",
            "-e", f"tfserving_rollout_run_id={run_id}",
            "-e", "tfserving_verify_wait_seconds=60",
            *extra,
        ]  # fmt: skip

    def rollout(self, *extra: str, run_id: str, timeout: int = 900) -> Run:
        return playbook(
            *self.rollout_args(*extra, run_id=run_id)[1:], timeout=timeout, become_args=[]
        )

    def report(self, run_id: str) -> dict[str, Any]:
        return json.loads((self.runs_dir / run_id / "report.json").read_text())

    def exported(self) -> list[int]:
        base = self.export_base / MODEL
        if not base.is_dir():
            return []
        return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit())

    def set_exported(self, versions: Sequence[int], library: Path) -> None:
        """Make the export base hold exactly these versions (from the library of exports)."""
        base = self.export_base / MODEL
        base.mkdir(parents=True, exist_ok=True)
        for path in base.iterdir():
            if path.name.isdigit() and int(path.name) not in versions:
                shutil.rmtree(path)
        for version in versions:
            if not (base / str(version)).exists():
                shutil.copytree(library / MODEL / str(version), base / str(version))


def sandbox_args(*extra: str) -> list[str]:
    return [
        str(REPO / "playbooks/sandbox.yml"), "-e", "sandbox_host_count=3",
        "-e", "sandbox_sudo=password", "-e", f"sandbox_grpc_port_base={GRPC_BASE}",
        "-e", f"sandbox_rest_port_base={REST_BASE}", "-e", f"sandbox_ssh_port_base={SSH_BASE}",
        *extra,
    ]  # fmt: skip


def create_fleet() -> None:
    """The 3 sandbox hosts with their engine, from nothing: a fleet left by a run that was
    killed keeps its engine volumes, and its serving containers and deployment records would
    come back with the new hosts (every test here expects a fresh fleet)."""
    require_docker_image()
    if not ARCHIVE.is_file():
        raise AssertionError(f"{ARCHIVE} is missing: run `make standin-archive` first")
    destroy_fleet()
    up = playbook(*sandbox_args(), become_args=[])
    assert up.rc == 0, up.tail()
    # Installs docker.io on 3 hosts at once: minutes on 2 busy cores.
    setup = playbook(
        "-i", str(REPO / "inventories/sandbox"), str(REPO / "playbooks/host_setup.yml"),
        timeout=1200,
    )  # fmt: skip
    assert setup.rc == 0, setup.tail()
    # The image reaches the hosts through the rollout's image step (the archive source).


def add_front_door() -> None:
    """The load balancer host (group lb) and the monitoring host (group monitoring) join the
    fleet; site.yml (run by the caller) sets them up as it would in production."""
    up = playbook(
        *sandbox_args("-e", "sandbox_lb=true", "-e", "sandbox_monitoring=true",
                      "-e", f"sandbox_prometheus_port={PROMETHEUS_PORT}"),
        become_args=[],
    )  # fmt: skip
    assert up.rc == 0, up.tail()


def destroy_fleet() -> None:
    playbook(str(REPO / "playbooks/sandbox.yml"), "-e", "sandbox_state=absent", become_args=[])


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL ansible-playbook and every process it started (its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


# The models the front-door files use, above the fault matrix's 1-5 (tests/rollout/make_models.py
# kinds): good 11 (site.yml deploys it), bad 12 (answers wrong), slow 13 (answers right, extra
# work per request), good 14.
FRONT_MODELS = ("good:11", "bad:12", "slow:13", "good:14")


def make_models(base: Path, *specs: str) -> None:
    proc = subprocess.run(
        [str(BIN / "python"), str(REPO / "tests/rollout/make_models.py"), str(base), *specs],
        capture_output=True, text=True, env=env(), timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


@dataclass
class FrontDoor:
    """The fleet with its LB and monitoring hosts, set up by site.yml serving version 11; its
    rollouts go through a Fleet of their own export base and reports."""

    rollouts: Fleet
    library: Path
    site: Run

    @property
    def export(self) -> Path:
        return self.rollouts.export_base

    def site_args(self, *extra: str) -> list[str]:
        return sandbox_playbook_args("site.yml", self.export, *extra)

    def export_version(self, version: int) -> None:
        self.rollouts.set_exported(sorted({*self.rollouts.exported(), version}), self.library)

    def withdraw_version(self, version: int) -> None:
        kept = [v for v in self.rollouts.exported() if v != version]
        self.rollouts.set_exported(kept, self.library)
