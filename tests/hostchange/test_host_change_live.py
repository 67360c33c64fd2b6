"""Issue 24 item 2 on a 2-host sandbox fleet behind the sandbox's LB host (TFS_FLEET_SANDBOX=hchg,
SSH as the sandbox's login user with sudo), serving TF Serving's reference half_plus_two (no
manifest of ours) on the stand-in, with gRPC and REST load through the front door (every answer
checked) while site.yml applies a host change:

1. a daemon.json key dockerd reloads: no drain, dockerd's PID and the serving containers'
   StartedAt unchanged, 0 failed requests;
2. a key that needs an engine restart: each host is drained while its dockerd PID changes, one
   host at a time, the canary first; 0 failed requests; the re-run changes nothing;
3. a change that breaks the canary (data-root moved without its data: the engine comes back
   empty): the run stops at the canary, which stays drained (held in its deployment record, named
   in the failure), the other host is untouched, 0 failed requests; the operator lifts the hold,
   and one normal run serves on the canary again and puts it back in service;
4. a version change of the NVIDIA container toolkit's packages: each host is drained while its
   installed version changes, one host at a time, the canary first; 0 failed requests.

For 4, the hosts play GPU servers to the toolkit role: each carries the signed fixture apt
repository of the toolkit scenario (molecule/nvidia_container_toolkit/files/build_fixture_repo.sh:
empty packages with the real names and versions, a fake nvidia-ctk), and the role is told the host
has a GPU (nvidia_container_toolkit_gpu_present), so it installs, pins, configures daemon.json and
CDI through its normal path. The fake PCI tree of the driver scenario is not used here: with it
every GPU role would act (the driver role would install Debian's driver, the serving role would ask
for GPUs), and the stand-in serves on CPU. The first site.yml installs the older of the fixture's
two versions (a fresh fleet: at full speed); test 4 moves to the newer one.

A sampler reads each host's dockerd PID (and, for 4, the installed toolkit version) every 0.2 s
and the LB's admin state of its servers every 0.4 s, each by one loop inside its container; a
sample is each LB read with the hosts' latest reads before it.
Every wait is bounded."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.tfs_fleet.common.plugins.module_utils import haproxy_runtime as hr

from tfs_bench.fleet import ARCHIVE, sandbox_playbook_args
from tfs_fleet.load import Load, LoadSpec

from helpers import (
    BIN,
    HAPROXY_QUERY,
    REPO,
    docker,
    haproxy_runtime,
    require_docker_image,
    wait_for,
)

sys.path.insert(0, str(REPO / "tests" / "fleet"))
from fleet import Run
from fleet import env as fleet_env

pytestmark = [pytest.mark.docker, pytest.mark.hostchange]

FLEET = "hchg"
HOSTS = [f"tfs-fleet-{FLEET}-{n}" for n in (1, 2)]
LB = f"tfs-fleet-{FLEET}-lb"
# Below the kernel's ephemeral range, apart from every other sandbox (tests/test_lane_ports.py).
GRPC_BASE, REST_BASE, SSH_BASE = 31500, 31600, 31400
FRONT = LoadSpec(
    grpc=f"127.0.0.1:{GRPC_BASE}", rest=f"127.0.0.1:{REST_BASE}", interval_s=0.05,
    max_seconds=900,
)  # fmt: skip
REFERENCE = REPO.parent / "shared" / "reference-models" / "saved_model_half_plus_two_cpu"
SANDBOX_OPTIONS = {"log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}}
SOCKET = "/run/haproxy/admin.sock"
LOGS = REPO / "artifacts" / "hostchange"
FIXTURE_REPO_SCRIPT = REPO / "molecule/nvidia_container_toolkit/files/build_fixture_repo.sh"
FIXTURE_REPO = "/srv/tfsf-fixture/nvidia-repo"


def toolkit_versions() -> tuple[str, str]:
    """The fixture repository's two toolkit versions, older first (its `for v in A B; do`)."""
    found = re.search(r"^for v in ([^;]+); do$", FIXTURE_REPO_SCRIPT.read_text(), re.MULTILINE)
    assert found, f"{FIXTURE_REPO_SCRIPT}: no `for v in ...; do` line"
    versions = found.group(1).split()
    assert len(versions) == 2, versions

    def key(v: str) -> list[int]:
        return [int(n) for n in re.findall(r"\d+", v)]

    old, new = sorted(versions, key=key)
    return old, new


def toolkit_vars(version: str) -> dict[str, Any]:
    """The toolkit role on these hosts: the fixture repository, a GPU as far as the role knows,
    and no GPU check container (it needs nvidia-smi and an image from a registry)."""
    return {
        "nvidia_container_toolkit_gpu_present": True,
        "nvidia_container_toolkit_repo_url": f"file://{FIXTURE_REPO}",
        "nvidia_container_toolkit_repo_key_url": f"file://{FIXTURE_REPO}/gpgkey",
        "nvidia_container_toolkit_gpu_check": False,
        "nvidia_container_toolkit_version": version,
    }


def playbook(name: str, *args: str, timeout: int = 1500) -> Run:
    """ansible-playbook on this fleet; its output is kept in artifacts/hostchange/NAME.log."""
    start = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), *args], capture_output=True, text=True, cwd=REPO,
        env=fleet_env(FLEET), timeout=timeout,
    )  # fmt: skip
    run = Run(proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start)
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / f"{name}.log").write_text(f"# {' '.join(args)}\n# rc={run.rc}\n{run.output}")
    return run


def sandbox(*extra: str) -> Run:
    return playbook(
        f"sandbox{len(extra)}", str(REPO / "playbooks/sandbox.yml"),
        "-e", "sandbox_host_count=2", "-e", "sandbox_lb=true",
        "-e", f"sandbox_grpc_port_base={GRPC_BASE}", "-e", f"sandbox_rest_port_base={REST_BASE}",
        "-e", f"sandbox_ssh_port_base={SSH_BASE}", *extra,
    )  # fmt: skip


def in_host(host: str, *argv: str) -> str:
    return docker("exec", host, *argv, check=False).stdout.strip()


def dockerd_pid(host: str) -> str:
    """The engine's main PID as systemd knows it ("" while it is down), not `pidof dockerd`: the
    roles run `dockerd --version` too, which is another dockerd process for a moment."""
    pid = in_host(host, "systemctl", "show", "--property", "MainPID", "--value", "docker")
    return "" if pid in ("", "0") else pid


def started(host: str) -> str:
    return in_host(host, "docker", "inspect", "-f", "{{.State.StartedAt}}", "tfserving")


def drained_in(state: str) -> set[str]:
    """Hosts with a server the LB holds out (admin state drain or maint) in an answer of
    `show servers state`."""
    rows = hr.parse_servers_state(state) if state else []
    return {h for r in rows for h in HOSTS if r["srv_name"] == h and hr.admin_flags(r)}


def drained_hosts() -> set[str]:
    return drained_in(haproxy_runtime(LB, "show servers state", SOCKET))


def daemon_json(host: str) -> dict[str, Any]:
    return json.loads(in_host(host, "cat", "/etc/docker/daemon.json") or "{}")


def toolkit_version(host: str) -> str:
    """The installed nvidia-container-toolkit version ("" when none)."""
    return in_host(host, "dpkg-query", "-W", "-f=${Version}", "nvidia-container-toolkit")


def build_fixture_repo(host: str) -> None:
    """The fixture apt repository on the host (kept when it is there already)."""
    if docker("exec", host, "test", "-f", f"{FIXTURE_REPO}/gpgkey", check=False).returncode == 0:
        return
    docker("cp", str(FIXTURE_REPO_SCRIPT), f"{host}:/tmp/build_fixture_repo.sh")
    docker("exec", host, "bash", "/tmp/build_fixture_repo.sh", FIXTURE_REPO)


# The sampler's readers: one `docker exec` each for the whole test, looping inside the host (a
# `docker exec` a read costs about 75 ms of CPU, and the machine is CPU-bound while the stages
# run). Each prints its own PID first (the sampler kills it on exit: a killed `docker exec`
# client leaves its process running in the container), and ends by itself after 25 minutes.
_HOST_LOOP = (
    "echo $$; i=0; while [ $i -lt 7500 ]; do i=$((i+1));"
    " p=$(systemctl show --property MainPID --value docker);"
    " v=$( [ \"$1\" = toolkit ] && dpkg-query -W -f='${Version}' nvidia-container-toolkit"
    " 2>/dev/null);"
    ' echo "$p $v" || exit 0; sleep 0.2; done'
)
_LB_LOOP = HAPROXY_QUERY + (
    "import json,os,time\n"
    "print(os.getpid(),flush=True)\nend=time.monotonic()+1500\n"
    "while time.monotonic()<end:\n"
    "    try:\n"
    "        print(json.dumps(query(sys.argv[1],'show servers state')),flush=True)\n"
    "    except OSError:\n"
    "        pass\n"
    "    time.sleep(0.4)\n"
)


class Reader:
    """One looping reader inside a container: its lines, as they come, to `on_line`."""

    def __init__(self, container: str, argv: list[str], on_line: Callable[[str], None]) -> None:
        self.container, self.on_line, self.remote_pid = container, on_line, ""
        self.proc = subprocess.Popen(
            ["docker", "exec", container, *argv], stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, bufsize=1,
        )  # fmt: skip
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        self.remote_pid = self.proc.stdout.readline().strip()
        for line in self.proc.stdout:
            self.on_line(line.rstrip("\n"))

    def close(self) -> None:
        if self.remote_pid.isdigit():
            docker("exec", self.container, "kill", self.remote_pid, check=False)
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.thread.join(timeout=30)


@dataclass
class Sampler:
    """(seconds, {host: dockerd PID}, drained hosts): a sample at each read of the LB's admin
    state (0.4 s apart), with each host's latest dockerd PID, read every 0.2 s before it (and,
    for 4, the installed toolkit version), for 25 min at most."""

    samples: list[tuple[float, dict[str, str], set[str]]] = field(default_factory=list)
    # With read_toolkit: each host's installed toolkit version, one dict per sample.
    read_toolkit: bool = False
    toolkit: list[dict[str, str]] = field(default_factory=list)
    _latest: dict[str, tuple[str, str]] = field(default_factory=dict)
    _readers: list[Reader] = field(default_factory=list)
    _start: float = 0.0

    def __enter__(self) -> Sampler:
        self._start = time.monotonic()
        mode = "toolkit" if self.read_toolkit else "pid"
        for host in HOSTS:
            self._readers.append(
                Reader(host, ["sh", "-c", _HOST_LOOP, "loop", mode], self._host_line(host))
            )
        # Samples start once every host has been read.
        wait_for(lambda: len(self._latest) == len(HOSTS), 60, "the hosts' first reads")
        self._readers.append(Reader(LB, ["python3", "-c", _LB_LOOP, SOCKET], self._lb_line))
        wait_for(lambda: self.samples, 60, "the LB's first read")
        return self

    def _host_line(self, host: str) -> Callable[[str], None]:
        def on_line(line: str) -> None:
            pid, _, version = line.partition(" ")
            self._latest[host] = ("" if pid in ("", "0") else pid, version.strip())

        return on_line

    def _lb_line(self, line: str) -> None:
        drained = drained_in(json.loads(line))
        latest = dict(self._latest)
        if self.read_toolkit:
            self.toolkit.append({h: version for h, (_, version) in latest.items()})
        pids = {h: pid for h, (pid, _) in latest.items()}
        self.samples.append((time.monotonic() - self._start, pids, drained))

    def __exit__(self, *exc: object) -> None:
        for reader in self._readers:
            reader.close()

    def save(self, name: str) -> None:
        """The samples in artifacts/hostchange/NAME.samples.json (what a failure is read from)."""
        LOGS.mkdir(parents=True, exist_ok=True)
        rows = [{"t": round(t, 2), "pids": p, "drained": sorted(d)} for t, p, d in self.samples]
        for row, versions in zip(rows, self.toolkit, strict=False):
            row["toolkit"] = versions
        (LOGS / f"{name}.samples.json").write_text(json.dumps(rows, indent=1) + "\n")


@dataclass
class HostChangeFleet:
    export: Path
    toolkit: str  # the toolkit version site.yml pins

    def site(self, name: str, options: dict[str, Any] | None = None, *extra: str) -> Run:
        opts = ("-e", json.dumps({"docker_daemon_options": options})) if options else ()
        # The image from the stand-in's archive (the air-gap path): this stage's subject is the
        # host change, not the image's distribution.
        image = ("-e", "tfserving_image_source=archive")
        toolkit = ("-e", json.dumps(toolkit_vars(self.toolkit)))
        args = sandbox_playbook_args("site.yml", self.export, *image, *toolkit, *opts, *extra)
        return playbook(name, *args)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostChangeFleet]:
    """The 2 hosts and the LB host, from nothing, set up by site.yml serving the reference
    half_plus_two as version 123."""
    require_docker_image()
    assert ARCHIVE.is_file(), f"{ARCHIVE} is missing: run `make standin-archive` first"
    assert REFERENCE.is_dir(), f"{REFERENCE} is missing (shared/ beside the clone)"
    shutil.rmtree(LOGS, ignore_errors=True)
    export = tmp_path_factory.mktemp("hostchange-export")
    shutil.copytree(REFERENCE / "00000123", export / "half_plus_two" / "123")
    # TFS_FLEET_HOSTCHANGE_KEEP=1 keeps the fleet at the end; TFS_FLEET_HOSTCHANGE_REUSE=1 takes
    # a kept one as it is (for working on the tests; site-first is then a re-run).
    reuse = os.environ.get("TFS_FLEET_HOSTCHANGE_REUSE") == "1" and bool(dockerd_pid(HOSTS[0]))
    if not reuse:
        sandbox("-e", "sandbox_state=absent")
    up = sandbox()
    assert up.rc == 0, up.tail()
    for host in HOSTS:
        build_fixture_repo(host)
    old, _ = toolkit_versions()
    the_fleet = HostChangeFleet(export, old)
    first = the_fleet.site("site-first", SANDBOX_OPTIONS)
    assert first.rc == 0, first.tail()
    # A fresh fleet serves nothing yet: no host goes through the drained path.
    assert "drained at the load balancers, changed and gated" not in first.output
    assert all(toolkit_version(h) == old for h in HOSTS), {h: toolkit_version(h) for h in HOSTS}
    yield the_fleet
    if os.environ.get("TFS_FLEET_HOSTCHANGE_KEEP") != "1":
        sandbox("-e", "sandbox_state=absent")


def wait_in_service(seconds: float = 120) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not drained_hosts():
            return True
        time.sleep(1)
    return False


def canary_first_then_nothing_to_change(
    fleet: HostChangeFleet, changed_at: dict[str, float], name: str, options: dict[str, Any]
) -> None:
    """The canary changed first, every host is back in service, and a re-run changes nothing."""
    assert changed_at[HOSTS[0]] < changed_at[HOSTS[1]], changed_at
    assert wait_in_service(), drained_hosts()
    again = fleet.site(name, options)
    assert again.rc == 0, again.tail()
    assert again.changed == {**{h: 0 for h in HOSTS}, LB: 0}, again.tail()


def test_a_key_dockerd_reloads_restarts_nothing_and_drains_nothing(fleet: HostChangeFleet) -> None:
    pids, starts = {h: dockerd_pid(h) for h in HOSTS}, {h: started(h) for h in HOSTS}
    assert all(pids.values()) and all(starts.values()), (pids, starts)
    # A value the hosts do not run yet (4 unless a kept fleet has it already).
    value = 5 if daemon_json(HOSTS[0]).get("max-concurrent-downloads") == 4 else 4
    with Sampler() as sampler, Load(FRONT) as load:
        time.sleep(2)
        run = fleet.site("site-reload", {**SANDBOX_OPTIONS, "max-concurrent-downloads": value})
        time.sleep(2)
    sampler.save("site-reload")
    report = load.report()
    assert run.rc == 0, run.tail()
    assert report["failed"] == 0, report
    assert report["requests"] >= 100, report
    assert {h: dockerd_pid(h) for h in HOSTS} == pids
    assert {h: started(h) for h in HOSTS} == starts
    assert all(daemon_json(h)["max-concurrent-downloads"] == value for h in HOSTS)
    assert not any(drained for _, _, drained in sampler.samples), "a reload drained a host"
    assert "docker: reload (daemon.json max-concurrent-downloads (reload))" in run.output, (
        run.tail()
    )
    assert "Reloaded configuration" in run.output or "reload docker" in run.output.lower()


def test_a_key_that_needs_a_restart_drains_each_host_in_turn(fleet: HostChangeFleet) -> None:
    level = "error" if daemon_json(HOSTS[0]).get("log-level") == "warn" else "warn"
    options = {**SANDBOX_OPTIONS, "log-level": level}
    pids, starts = {h: dockerd_pid(h) for h in HOSTS}, {h: started(h) for h in HOSTS}
    assert all(pids.values()) and all(starts.values()), (pids, starts)
    with Sampler() as sampler, Load(FRONT) as load:
        time.sleep(2)
        run = fleet.site("site-restart", options)
        time.sleep(2)
    sampler.save("site-restart")
    report = load.report()
    assert run.rc == 0, run.tail()
    assert report["failed"] == 0, report
    after = {h: dockerd_pid(h) for h in HOSTS}
    assert all(after[h] != pids[h] for h in HOSTS), (pids, after)
    # live-restore (the docker role's default): the serving containers kept running.
    assert {h: started(h) for h in HOSTS} == starts
    samples = sampler.samples
    assert all(len(drained) <= 1 for _, _, drained in samples), "two hosts out at once"
    changed_at = {}
    for host in HOSTS:
        first_new = next(
            i for i, (_, p, _) in enumerate(samples) if p[host] not in ("", pids[host])
        )
        # Drained before the engine went down (a sample between the drain and the new PID), and
        # at the first sample of the new PID.
        gone = next(i for i, (_, p, _) in enumerate(samples) if p[host] != pids[host])
        assert host in samples[first_new][2], (host, gone, first_new, samples[first_new])
        assert any(host in d for _, p, d in samples[:gone] if p[host] == pids[host]), host
        changed_at[host] = samples[first_new][0]
    canary_first_then_nothing_to_change(fleet, changed_at, "site-restart-again", options)


def test_a_change_that_breaks_the_canary_stops_there_and_leaves_it_drained(
    fleet: HostChangeFleet,
) -> None:
    options = {**SANDBOX_OPTIONS, "log-level": daemon_json(HOSTS[0]).get("log-level", "warn")}
    canary, other = HOSTS
    other_pid, other_json = dockerd_pid(other), daemon_json(other)
    broken = {**options, "data-root": "/var/lib/docker-moved"}
    with Load(FRONT) as load:
        time.sleep(2)
        run = fleet.site("site-broken", broken, "-e", "tfserving_verify_wait_seconds=20")
        time.sleep(2)
    report = load.report()
    try:
        assert run.rc != 0, run.tail()
        assert report["failed"] == 0, report
        flat = " ".join(run.output.split())
        assert f"HOST CHANGE FAILED on {canary}" in flat, run.tail()
        assert "The host stays drained at the load balancers" in flat, run.tail()
        # The canary is held out and its record says why; the later batch is untouched.
        assert drained_hosts() == {canary}
        record = json.loads(in_host(canary, "cat", "/etc/tfs-fleet/serving-state.json"))
        assert record["drained"]["hold"] is True, record
        assert "host change: docker: restart" in record["drained"]["reason"], record
        assert (dockerd_pid(other), daemon_json(other)) == (other_pid, other_json)
    finally:
        # The operator's fix: the hold lifted, then one normal run, which deploys the serving
        # container again on the canary's empty engine and puts the canary back in service.
        in_host(canary, "python3", "-c", _UNHOLD)
        fix = fleet.site("site-fix", options)
        assert fix.rc == 0, fix.tail()
        assert wait_in_service(), drained_hosts()


def test_a_toolkit_version_change_drains_each_host_in_turn(fleet: HostChangeFleet) -> None:
    old, new = toolkit_versions()
    assert {h: toolkit_version(h) for h in HOSTS} == {h: old for h in HOSTS}
    options = {**SANDBOX_OPTIONS, "log-level": daemon_json(HOSTS[0]).get("log-level", "warn")}
    assert wait_in_service(), drained_hosts()
    fleet.toolkit = new
    with Sampler(read_toolkit=True) as sampler, Load(FRONT) as load:
        time.sleep(2)
        run = fleet.site("site-toolkit", options)
        time.sleep(2)
    sampler.save("site-toolkit")
    report = load.report()
    (LOGS / "site-toolkit.load.json").write_text(json.dumps(report, indent=1) + "\n")
    assert run.rc == 0, run.tail()
    assert report["failed"] == 0, report
    assert report["requests"] >= 100, report
    assert {h: toolkit_version(h) for h in HOSTS} == {h: new for h in HOSTS}
    flat = " ".join(run.output.split())
    assert f"nvidia_container_toolkit: upgrade (packages to {new})" in flat, run.tail()
    samples, versions = sampler.samples, sampler.toolkit
    assert all(len(drained) <= 1 for _, _, drained in samples), "two hosts out at once"
    changed_at = {}
    for host in HOSTS:
        first_new = next(i for i, v in enumerate(versions) if v[host] == new)
        # Drained before the packages changed, and still drained once the new version is in.
        assert host in samples[first_new][2], (host, first_new, samples[first_new])
        assert any(host in samples[i][2] and versions[i][host] == old for i in range(first_new)), (
            host
        )
        changed_at[host] = samples[first_new][0]
    assert changed_at[HOSTS[0]] < changed_at[HOSTS[1]], changed_at  # the canary first
    # Back in service. No re-run here: test 2's re-run shows changed=0 on the live fleet, and the
    # toolkit scenario's idempotence step the toolkit role's own.
    assert wait_in_service(), drained_hosts()


_UNHOLD = (
    "import json;p='/etc/tfs-fleet/serving-state.json';r=json.load(open(p));"
    "r['drained']['hold']=False;json.dump(r,open(p,'w'))"
)
