"""The sandbox fleet of `make bench` (TFS_FLEET_SANDBOX=bench: containers tfs-fleet-bench-*, SSH
on 127.0.0.1:37401+, gRPC 37501+, REST 37601+, the load balancer host on the bases themselves),
reached over SSH as the unprivileged `ops` with passwordless sudo, exactly as `make demo` reaches
its fleet. Creation, one untimed converge with site.yml, ansible-playbook runs (their recap and
the profile_tasks summary parsed), and the re-run figures:

  rerun_1host_s, rerun_6host_s  idempotent re-runs of site.yml limited to the first 1 and 6
                                serving hosts (every timed run must report changed=0 on every
                                host of its limit, or the part fails)
  rerun_scaling_ratio           rerun_6host_s / rerun_1host_s
  rerun_vs_stock_ratio          1-host re-run with the project's ansible.cfg / with stock
                                settings (no pipelining, default forks, no ControlPersist)
"""

from __future__ import annotations

import configparser
import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tfs_bench.figures import Figure, measured
from tfs_bench.server import REPO, BenchError
from tfs_bench.stats import median, ratio

Progress = Callable[[str], None]

BIN = Path(sys.executable).parent
FLEET = "bench"
PREFIX = f"tfs-fleet-{FLEET}"
LB_HOST = f"{PREFIX}-lb"
# The registry host (playbooks/tasks/sandbox_registry.yml): number 80, SSH on the SSH base + 80,
# the registry on 127.0.0.1:REGISTRY_PORT for the controller's push.
REGISTRY_HOST = f"{PREFIX}-80"
REGISTRY_PORT = 37780
# Serving host n publishes SSH, gRPC and REST on base + n; the LB host on the bases themselves.
PORTS = {"ssh": 37400, "grpc": 37500, "rest": 37600}
SANDBOX_DIR = REPO / "artifacts" / "sandbox" / FLEET
# The fleet's generated secrets and vars, handed to every play as a user hands a vault
# (scripts/sandbox_args): the registry's vaulted passwords and the pushed image's digest.
FLEET_VAR_FILES = ("become.vault.yml", "registry.vault.yml", "image.yml")
ARCHIVE = Path(
    os.environ.get("TFS_FLEET_STANDIN_ARCHIVE", REPO / "artifacts/images/serving-standin.tar")
)
PROJECT_CFG = REPO / "ansible.cfg"
# Stock Ansible, as a user who never tuned it would run: no pipelining, default forks (5), no
# ControlMaster/ControlPersist. Only what the project needs to find its inventory, roles and
# collection is set.
STOCK_CFG = """\
[defaults]
inventory = {repo}/inventories/sandbox
roles_path = {repo}/roles
collections_path = {repo}/collections
collections_scan_sys_path = true
interpreter_python = auto_silent
retry_files_enabled = false
callback_result_format = yaml
timeout = 30

[ssh_connection]
pipelining = false
ssh_args = -o ControlMaster=no
"""
# Every timed run prints the profile_tasks summary (a timestamp per task: no measurable cost).
PROFILE_ENV = {
    "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
    "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "40",
}
_RECAP_LINE = re.compile(r"^(?P<host>\S+)\s*:\s*(?P<stats>ok=\d+.*)$")
_PROFILE_LINE = re.compile(r"^(?P<name>\S.*?) -+ (?P<s>\d+(?:\.\d+)?)s$")


def sandbox_playbook_args(playbook: str, export_base: Path, *extra: str) -> list[str]:
    """ansible-playbook's arguments for a playbook of the project (relative to the repository)
    on a sandbox fleet: the sandbox inventory, the export base the models and the smoke test
    read, and the stand-in archive the image role ships."""
    return [
        "-i", str(REPO / "inventories/sandbox"), str(REPO / playbook),
        "-e", f"tfserving_models_export_base={export_base}",
        "-e", f"tfserving_verify_export_base={export_base}",
        "-e", f"tfserving_image_archive_path={ARCHIVE}",
        *extra,
    ]  # fmt: skip


def fleet_var_args(sandbox_dir: Path) -> list[str]:
    """--vault-password-file and -e @FILE for the fleet's generated files that exist."""
    args = []
    if (sandbox_dir / "vault-password").is_file():
        args += ["--vault-password-file", str(sandbox_dir / "vault-password")]
    for name in FLEET_VAR_FILES:
        if (sandbox_dir / name).is_file():
            args += ["-e", f"@{sandbox_dir / name}"]
    return args


def serving_hosts(count: int) -> list[str]:
    return [f"{PREFIX}-{n}" for n in range(1, count + 1)]


# ---- output parsing (pure) -------------------------------------------------------------------
def recap(output: str) -> dict[str, dict[str, int]]:
    """{host: {ok, changed, unreachable, failed, skipped, rescued, ignored}} from the last PLAY
    RECAP of an ansible-playbook run; {} when there is none."""
    if "PLAY RECAP" not in output:
        return {}
    out: dict[str, dict[str, int]] = {}
    for line in output.rsplit("PLAY RECAP", 1)[1].splitlines():
        match = _RECAP_LINE.match(line.strip())
        if not match:
            continue
        stats = {}
        for item in match["stats"].split():
            key, _, value = item.partition("=")
            if value.isdigit():
                stats[key] = int(value)
        out[match["host"]] = stats
    return out


def recap_changed(output: str) -> dict[str, int]:
    return {host: stats.get("changed", 0) for host, stats in recap(output).items()}


def idempotence_problem(rc: int, output: str, hosts: Sequence[str]) -> str | None:
    """Why a re-run does not count (None when it does): it failed, a host of its limit is
    missing from the recap, failed, was unreachable or changed anything."""
    if rc != 0:
        return f"ansible-playbook exited {rc}"
    stats = recap(output)
    problems = []
    for host in hosts:
        entry = stats.get(host)
        if entry is None:
            problems.append(f"{host} not in the recap")
        elif entry.get("failed", 0) or entry.get("unreachable", 0):
            problems.append(f"{host} failed={entry.get('failed')} unreachable="
                            f"{entry.get('unreachable')}")  # fmt: skip
        elif entry.get("changed", 0):
            problems.append(f"{host} changed={entry['changed']}")
    return "; ".join(problems) or None


def profile_tasks(output: str) -> list[tuple[str, float]]:
    """The TASKS RECAP of ansible.posix.profile_tasks: (task name, seconds), slowest first."""
    if "TASKS RECAP" not in output:
        return []
    rows = []
    for line in output.rsplit("TASKS RECAP", 1)[1].splitlines():
        match = _PROFILE_LINE.match(line.rstrip())
        if match:
            rows.append((match["name"], float(match["s"])))
    return sorted(rows, key=lambda row: -row[1])


def task_seconds(profile: Sequence[tuple[str, float]], fragment: str) -> float | None:
    """Seconds of the profiled tasks whose name contains fragment (summed); None if none."""
    hits = [s for name, s in profile if fragment in name]
    return round(sum(hits), 2) if hits else None


# ---- running ansible-playbook ----------------------------------------------------------------
@dataclass
class Run:
    rc: int
    output: str
    seconds: float

    def tail(self, lines: int = 40) -> str:
        """The first failures (where a run went wrong) and the last lines (how it ended)."""
        out = self.output.splitlines()
        first = [i for i, line in enumerate(out) if line.startswith(("fatal:", "failed:"))][:2]
        head = [ln for i in first for ln in out[max(0, i - 2) : i + 8]]
        return "\n".join([*head, "...", *out[-lines:]] if head else out[-lines:])


def _ssh_args(config: Path) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(config)
    return parser.get("ssh_connection", "ssh_args", fallback="")


@dataclass
class BenchFleet:
    """The bench fleet: `hosts` serving hosts and, with lb, the load balancer host (group lb)."""

    hosts: int
    lb: bool
    export_base: Path
    out: Path
    progress: Progress = print
    stock_cfg: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    push_stats: dict[str, float] = field(default_factory=dict)

    @property
    def serving(self) -> list[str]:
        return serving_hosts(self.hosts)

    def env(
        self, config: Path = PROJECT_CFG, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        return {
            **os.environ,
            "ANSIBLE_CONFIG": str(config),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "TFS_FLEET_SANDBOX": FLEET,
            "PYTHONPATH": str(REPO / "src"),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            **(extra or {}),
        }

    def playbook(
        self,
        args: Sequence[str],
        *,
        config: Path = PROJECT_CFG,
        timeout: float = 1800,
        extra_env: Mapping[str, str] | None = None,
        echo_plays: str | None = None,
        on_play: Callable[[str], None] | None = None,
    ) -> Run:
        """ansible-playbook with args (its own session: killed with its children on timeout).
        echo_plays: a label; every PLAY line is then passed to progress (long steps). on_play:
        called with each play's name as the play starts, and with "" when the run has ended."""
        start = time.monotonic()
        proc = subprocess.Popen(
            [str(BIN / "ansible-playbook"), *args, *fleet_var_args(SANDBOX_DIR)],
            cwd=REPO, env=self.env(config, extra_env), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        lines: list[str] = []
        timer = _Killer(proc, timeout)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("PLAY [") and (echo_plays or on_play):
                    name = line.split("[", 1)[1].rsplit("]", 1)[0]
                    if echo_plays:
                        self.progress(f"{echo_plays}: {name} ({time.monotonic() - start:.0f} s)")
                    if on_play:
                        on_play(name)
            rc = proc.wait()
            if on_play:
                on_play("")
        finally:
            timer.cancel()
        if timer.fired:
            lines.append(f"\nbench: ansible-playbook killed after {timeout:.0f} s\n")
            rc = 124
        return Run(rc, "".join(lines), time.monotonic() - start)

    def site_args(self, *extra: str) -> list[str]:
        return sandbox_playbook_args("site.yml", self.export_base, *extra)

    def sandbox_args(self, state: str = "present") -> list[str]:
        return [
            str(REPO / "playbooks/sandbox.yml"), "-e", f"sandbox_state={state}",
            "-e", f"sandbox_host_count={self.hosts}", "-e", f"sandbox_lb={str(self.lb).lower()}",
            "-e", "sandbox_monitoring=false",
            "-e", "sandbox_registry=true", "-e", f"sandbox_registry_port={REGISTRY_PORT}",
            *[a for k, v in PORTS.items() for a in ("-e", f"sandbox_{k}_port_base={v}")],
        ]  # fmt: skip

    def create(self) -> None:
        if not ARCHIVE.is_file():
            raise BenchError(f"{ARCHIVE} is missing: run `make standin-archive` first")
        what = f"{self.hosts} serving hosts" + (" and the load balancer host" if self.lb else "")
        self.progress(f"fleet: creating {what} ({PREFIX}-*)")
        run = self.playbook(self.sandbox_args(), timeout=900)
        self.timings["create_s"] = round(run.seconds, 1)
        if run.rc != 0:
            raise BenchError(f"creating the bench fleet failed:\n{run.tail()}")
        self.progress(f"fleet: created in {run.seconds:.0f} s")

    def push(self) -> None:
        """The fleet's registry (playbooks/registry.yml), then the stand-in pushed into it once
        (playbooks/sandbox_push.yml: skopeo from the archive; its digest in image.yml), with the
        bytes this machine sent into the fleet's network meanwhile (the one copy it sends)."""
        from tfs_bench.distribution import bridge_tx

        self.progress(f"fleet: the registry on {REGISTRY_HOST}, then the push of the stand-in")
        inventory = ["-i", str(REPO / "inventories/sandbox")]
        run = self.playbook([*inventory, str(REPO / "playbooks/registry.yml")], timeout=900)
        self.timings["registry_s"] = round(run.seconds, 1)
        (self.out / "registry.log").write_text(run.output)
        if run.rc != 0:
            raise BenchError(f"the registry play failed:\n{run.tail()}")
        before = bridge_tx()
        run = self.playbook(
            [*inventory, str(REPO / "playbooks/sandbox_push.yml"),
             "-e", f"sandbox_push_archive={ARCHIVE}"], timeout=900,
        )  # fmt: skip
        (self.out / "push.log").write_text(run.output)
        if run.rc != 0:
            raise BenchError(f"the push failed:\n{run.tail()}")
        sent = bridge_tx() - before
        self.timings["push_s"] = round(run.seconds, 1)
        self.push_stats = {"seconds": round(run.seconds, 1), "bridge_tx_bytes": sent}
        self.progress(f"fleet: pushed in {run.seconds:.0f} s ({sent} bytes into the network)")

    def converge(self, source: str = "pull", on_play: Callable[[str], None] | None = None) -> Run:
        """site.yml on every host: docker.io, the stand-in image (pulled from the fleet's
        registry, or `source` archive: shipped from the controller), the model, the container,
        the LB; then the re-runs have nothing to do."""
        self.progress(f"fleet: converging with site.yml, image by {source} (the longest step)")
        extra = ["-e", "tfserving_image_source=archive"] if source == "archive" else []
        run = self.playbook(
            self.site_args(*extra), timeout=3600, echo_plays="converge", on_play=on_play
        )
        self.timings[f"converge_{source}_s"] = round(run.seconds, 1)
        (self.out / f"converge-{source}.log").write_text(run.output)
        if run.rc != 0:
            raise BenchError(f"the converge failed (log: {self.out / f'converge-{source}.log'}):\n"
                             f"{run.tail()}")  # fmt: skip
        self.progress(f"fleet: converged in {run.seconds:.0f} s")
        return run

    def recreate_hosts(self) -> None:
        """Every host but the registry removed with its engine's volume and created again by
        sandbox.yml (same keys, vaults and registry): a fresh fleet for another first converge."""
        hosts = [*self.serving, *([LB_HOST] if self.lb else [])]
        self.progress(f"fleet: recreating {len(hosts)} hosts (the registry host stays)")
        subprocess.run(["docker", "rm", "-f", *hosts], capture_output=True, check=True, timeout=300)
        volumes = [f"{host}-docker" for host in self.serving]
        subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True, check=True,
                       timeout=300)  # fmt: skip
        run = self.playbook(self.sandbox_args(), timeout=900)
        if run.rc != 0:
            raise BenchError(f"recreating the bench fleet's hosts failed:\n{run.tail()}")

    def destroy(self) -> None:
        self.progress("fleet: removing the bench fleet")
        run = self.playbook(self.sandbox_args("absent"), timeout=900)
        self.timings["destroy_s"] = round(run.seconds, 1)
        if run.rc != 0:
            self.progress(f"fleet: removing it FAILED (rc {run.rc}):\n{run.tail(15)}")

    # ---- direct access (the engine, for measurements only) ------------------------------------
    def in_host(self, host: str, *argv: str, timeout: float = 120) -> str:
        proc = subprocess.run(
            ["docker", "exec", host, *argv],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise BenchError(f"docker exec {host} {shlex.join(argv)}: {proc.stderr.strip()}")
        return proc.stdout

    def ssh_command(self, host: str) -> list[str]:
        """The ssh that ansible.posix.synchronize runs for the role's transfer (use_ssh_args,
        verify_host, no multiplexing: -S none): the same user, key, known_hosts and options."""
        number = host.rsplit("-", 1)[1]
        port = PORTS["ssh"] + (0 if number == "lb" else int(number))
        return [
            "ssh", "-S", "none", "-i", str(SANDBOX_DIR / "id_ed25519"), "-o", f"Port={port}",
            *shlex.split(_ssh_args(PROJECT_CFG)),
            "-o", f"UserKnownHostsFile={SANDBOX_DIR / 'known_hosts'}", "-o", "IdentitiesOnly=yes",
        ]  # fmt: skip

    def write_stock_cfg(self) -> Path:
        path = self.out / "stock-ansible.cfg"
        path.write_text(STOCK_CFG.format(repo=REPO))
        self.stock_cfg = path
        return path


class _Killer:
    """SIGKILL a process group (ansible-playbook started in a session of its own, and its
    children) after timeout seconds, unless cancelled first."""

    def __init__(self, proc: subprocess.Popen[str], timeout: float) -> None:
        self.fired = False
        self._proc = proc
        self._timer = threading.Timer(timeout, self._kill)
        self._timer.daemon = True
        self._timer.start()

    def _kill(self) -> None:
        self.fired = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)

    def cancel(self) -> None:
        self._timer.cancel()


# ---- the re-run part -------------------------------------------------------------------------
@dataclass
class Rerun:
    case: str  # "1 host, project", "1 host, stock", "6 hosts, project"
    hosts: int
    settings: str
    seconds: float
    top_tasks: list[tuple[str, float]]


RERUN_SIZES = (1, 6)


def rerun_figures(runs: Sequence[Rerun]) -> list[Figure]:
    """The four re-run figures from the timed runs (medians per case)."""

    def times(hosts: int, settings: str) -> list[float]:
        found = [r.seconds for r in runs if r.hosts == hosts and r.settings == settings]
        if not found:
            raise BenchError(f"no timed re-run on {hosts} host(s) with {settings} settings")
        return found

    one, six, stock = times(1, "project"), times(6, "project"), times(1, "stock")
    m_one, m_six, m_stock = median(one), median(six), median(stock)
    top = next(r.top_tasks for r in runs if r.hosts == 1 and r.settings == "project")
    return [
        measured("rerun_1host_s", round(m_one, 2), runs_s=[round(t, 2) for t in one],
                 top_tasks=[[n, s] for n, s in top[:10]]),
        measured("rerun_6host_s", round(m_six, 2), runs_s=[round(t, 2) for t in six],
                 hosts="the first 6 serving hosts (--limit; the LB host is not in it)"),
        measured("rerun_scaling_ratio", round(ratio(m_six, m_one), 3),
                 median_6host_s=round(m_six, 2), median_1host_s=round(m_one, 2)),
        measured("rerun_vs_stock_ratio", round(ratio(m_one, m_stock), 3),
                 median_project_s=round(m_one, 2), median_stock_s=round(m_stock, 2),
                 stock_runs_s=[round(t, 2) for t in stock],
                 stock="pipelining off, forks 5 (default), ControlMaster=no"),
    ]  # fmt: skip


def rerun(fleet: BenchFleet, repeat: int = 1) -> tuple[list[Figure], list[Rerun]]:
    """Timed idempotent re-runs, interleaved per round: 1 host with the project's settings,
    1 host with stock settings, 6 hosts with the project's settings."""
    if fleet.hosts < max(RERUN_SIZES):
        raise BenchError(f"the re-run part needs {max(RERUN_SIZES)} serving hosts")
    stock = fleet.stock_cfg or fleet.write_stock_cfg()
    cases = [(1, "project", PROJECT_CFG), (1, "stock", stock), (6, "project", PROJECT_CFG)]
    runs: list[Rerun] = []
    for attempt in range(1, repeat + 1):
        for count, settings, config in cases:
            hosts = serving_hosts(count)
            label = f"{count} host{'s' if count > 1 else ''}, {settings}"
            fleet.progress(f"rerun: {label}, run {attempt}/{repeat} (site.yml, --limit)")
            run = fleet.playbook(
                fleet.site_args("--limit", ",".join(hosts)), config=config, timeout=1800,
                extra_env=PROFILE_ENV, echo_plays=f"rerun: {label}",
            )  # fmt: skip
            log = fleet.out / f"rerun-{count}host-{settings}-{attempt}.log"
            log.write_text(run.output)
            problem = idempotence_problem(run.rc, run.output, hosts)
            if problem:
                raise BenchError(f"re-run on {label} is not a clean re-run ({problem}); "
                                 f"log: {log}\n{run.tail()}")  # fmt: skip
            profile = profile_tasks(run.output)
            runs.append(Rerun(label, count, settings, run.seconds, profile))
            fleet.progress(f"rerun: {label}: {run.seconds:.1f} s, changed=0 on every host")
    return rerun_figures(runs), runs
