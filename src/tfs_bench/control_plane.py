"""The control-plane part of `make bench` (issue 16, "past one controller"): the rollout's and
the verify's control path (src/tfs_bench/playbooks/control_plane_{rollout,verify}.yml) timed on
light SSH hosts (tfs_bench.light_hosts: sshd and python3 only) for every host count x strategy
x forks, a straight line time = a + b * hosts fitted per path and setting, and the line read at
1,000 hosts:

  control_plane_rollout_1000host_s  estimate: the rollout's control path on 1,000 hosts
  control_plane_verify_1000host_s   estimate: the verify's control path on 1,000 hosts

Both are the estimate for the project's settings (ansible.cfg: the linear strategy, its forks)
when the sweep measured them, else for the first setting measured; every setting's fit and
every run are in `detail`. Estimates of the control path alone: no soak, no image, model or
container work (docs/bench.md adds those on paper).
"""

from __future__ import annotations

import configparser
import contextlib
import math
import os
import resource
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tfs_bench.figures import Figure, measured
from tfs_bench.fleet import BIN, PROJECT_CFG, Run, _Killer, recap
from tfs_bench.light_hosts import MAX_HOSTS, LightHosts, host_name, inventory_yaml
from tfs_bench.server import REPO, BenchError

Progress = Callable[[str], None]

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
PATHS = ("rollout", "verify")
STRATEGIES = ("linear", "free", "host_pinned")
TARGET_HOSTS = 1000
RUN_TIMEOUT_S = 600.0


# ---- options (pure) --------------------------------------------------------------------------
def parse_int_list(text: str, what: str, low: int, high: int) -> list[int]:
    """'4,12' -> [4, 12]: whole numbers from low to high, each once, in the given order."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"{what}: give a comma list of whole numbers (got {text!r})")
    values = []
    for item in items:
        if not item.isdigit():
            raise ValueError(f"{what}: {item!r} is not a whole number")
        value = int(item)
        if not low <= value <= high:
            raise ValueError(f"{what}: {value} is not within {low}-{high}")
        if value in values:
            raise ValueError(f"{what}: {value} given twice")
        values.append(value)
    return values


def parse_hosts(text: str) -> list[int]:
    """Host counts of the sweep: at least two different ones (the line needs two points),
    sorted."""
    counts = parse_int_list(text, "--cp-hosts", 1, MAX_HOSTS)
    if len(counts) < 2:
        raise ValueError(f"--cp-hosts: give at least two host counts for the fit (got {text!r})")
    return sorted(counts)


def parse_forks(text: str) -> list[int]:
    return parse_int_list(text, "--cp-forks", 1, 500)


def parse_paths(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    bad = [item for item in items if item not in PATHS]
    if not items or bad:
        raise ValueError(f"--cp-paths: choose from {', '.join(PATHS)} (got {text!r})")
    return [path for path in PATHS if path in items]


def parse_strategies(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    bad = [item for item in items if item not in STRATEGIES]
    if not items or bad:
        raise ValueError(f"--cp-strategies: choose from {', '.join(STRATEGIES)} (got {text!r})")
    return list(dict.fromkeys(items))


# ---- runs, checks and the fit (pure) ---------------------------------------------------------
@dataclass(frozen=True)
class CpRun:
    path: str  # "rollout" or "verify"
    hosts: int
    strategy: str
    forks: int
    seconds: float
    # CPU seconds (user + system) of ansible-playbook and the children it waited for: the
    # controller's own work (the light hosts' sshd and modules run in their containers).
    cpu_s: float | None = None

    @property
    def setting(self) -> str:
        return f"{self.strategy}, forks {self.forks}"

    def as_row(self) -> dict[str, object]:
        row: dict[str, object] = {"path": self.path, "hosts": self.hosts,
                                  "strategy": self.strategy, "forks": self.forks,
                                  "seconds": round(self.seconds, 2)}  # fmt: skip
        if self.cpu_s is not None:
            row["controller_cpu_s"] = round(self.cpu_s, 2)
        return row


def run_problem(rc: int, output: str, hosts: Sequence[str]) -> str | None:
    """Why a run does not count (None when it does): ansible-playbook failed, or a host is
    missing from the recap, failed or was unreachable, or did nothing."""
    problems = [] if rc == 0 else [f"ansible-playbook exited {rc}"]
    stats = recap(output)
    if not stats:
        problems.append("no PLAY RECAP")
    for host in hosts:
        entry = stats.get(host)
        if entry is None:
            if stats:
                problems.append(f"{host} not in the recap")
        elif entry.get("failed", 0) or entry.get("unreachable", 0):
            problems.append(f"{host} failed={entry.get('failed', 0)} "
                            f"unreachable={entry.get('unreachable', 0)}")  # fmt: skip
        elif not entry.get("ok", 0):
            problems.append(f"{host} ok=0")
    return "; ".join(problems) or None


def fit_line(points: Iterable[tuple[float, float]]) -> tuple[float, float]:
    """Least squares y = a + b x over (x, y) points; (a, b). Needs two different x."""
    pts = list(points)
    xs = {x for x, _ in pts}
    if len(xs) < 2:
        raise ValueError(f"a line needs points at two different x at least (got {sorted(xs)})")
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    b = sxy / sxx
    return my - b * mx, b


def extrapolate(fit: tuple[float, float], hosts: float) -> float:
    a, b = fit
    return a + b * hosts


@dataclass(frozen=True)
class Fit:
    path: str
    strategy: str
    forks: int
    a: float  # seconds
    b: float  # seconds per host
    points: int
    target_hosts: int

    @property
    def estimate_s(self) -> float:
        return extrapolate((self.a, self.b), self.target_hosts)

    @property
    def setting(self) -> str:
        return f"{self.strategy}, forks {self.forks}"

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path, "strategy": self.strategy, "forks": self.forks,
            "a_s": round(self.a, 3), "b_s_per_host": round(self.b, 4), "points": self.points,
            f"at_{self.target_hosts}_hosts_s": round(self.estimate_s, 1),
        }  # fmt: skip


def fits(runs: Sequence[CpRun], target_hosts: int = TARGET_HOSTS, cpu: bool = False) -> list[Fit]:
    """One line per path x strategy x forks (in the order first measured): of the wall time,
    or with cpu of the controller's CPU seconds (runs without them left out)."""
    keys = list(dict.fromkeys((r.path, r.strategy, r.forks) for r in runs))
    out = []
    for path, strategy, forks in keys:
        pts = [(float(r.hosts), (r.cpu_s if cpu else r.seconds)) for r in runs
               if (r.path, r.strategy, r.forks) == (path, strategy, forks)
               and not (cpu and r.cpu_s is None)]  # fmt: skip
        a, b = fit_line((x, float(y or 0.0)) for x, y in pts)
        out.append(Fit(path, strategy, forks, a, b, len(pts), target_hosts))
    return out


def batches(hosts: int, serial: Sequence[int | str] = (1, "25%", "100%")) -> list[int]:
    """The batch sizes Ansible makes of serial for hosts (a percentage of all hosts, at least 1;
    the last size repeats until every host is in a batch)."""
    sizes = []
    for item in serial:
        text = str(item)
        size = int(hosts * int(text[:-1]) / 100) if text.endswith("%") else int(text)
        sizes.append(max(1, size))
    out: list[int] = []
    left, n = hosts, 0
    while left > 0:
        size = min(sizes[min(n, len(sizes) - 1)], left)
        out.append(size)
        left -= size
        n += 1
    return out


def soak_waves(hosts: int, forks: int, serial: Sequence[int | str] = (1, "25%", "100%")) -> int:
    """How many soak windows a rollout waits in a row: per batch, its hosts' soak waits run at
    most forks at a time (one worker each), so ceil(batch / forks) windows per batch."""
    return sum(math.ceil(size / forks) for size in batches(hosts, serial))


def project_forks(config: Path = PROJECT_CFG) -> int:
    """forks of the project's ansible.cfg (Ansible's default 5 when it sets none)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(config)
    return parser.getint("defaults", "forks", fallback=5)


def control_plane_figures(
    runs: Sequence[CpRun], headline: tuple[str, int] | None = None
) -> list[Figure]:
    """The estimates of the paths measured: per path, the line of the headline setting
    (strategy, forks; default the project's: linear and ansible.cfg's forks) read at 1,000
    hosts, or the first setting measured when the sweep did not measure the headline one."""
    if not runs:
        raise BenchError("control plane: no runs to fit")
    strategy, forks = headline or ("linear", project_forks())
    lines = fits(runs, TARGET_HOSTS)
    with_cpu = [r for r in runs if r.cpu_s is not None]
    cpu_lines = (
        fits(with_cpu, TARGET_HOSTS, cpu=True) if len({r.hosts for r in with_cpu}) > 1 else []
    )
    counts = sorted({r.hosts for r in runs})
    figures = []
    for path in [p for p in PATHS if any(r.path == p for r in runs)]:
        mine = [f for f in lines if f.path == path]
        pick = next((f for f in mine if (f.strategy, f.forks) == (strategy, forks)), mine[0])
        figure = measured(
            f"control_plane_{path}_{TARGET_HOSTS}host_s",
            round(pick.estimate_s, 1),
            estimate=True,
            target_hosts=TARGET_HOSTS,
            setting=pick.setting,
            fit=f"time = {pick.a:.2f} s + {pick.b:.3f} s x hosts ({pick.points} points)",
            fits=[f.as_dict() for f in mine],
            controller_cpu_fits=[f.as_dict() for f in cpu_lines if f.path == path],
            runs=[r.as_row() for r in runs if r.path == path],
        )  # fmt: skip
        span = f"{counts[0]}-{counts[-1]} light hosts"
        if pick.b > 0:
            figure.status = f"estimate: {pick.setting}, a line fitted on {span}"
        else:
            # A time that does not grow with the hosts says the runs' noise is larger than the
            # growth over this range: read at 1,000 hosts it is no estimate (it can be < 0).
            figure.value = None
            figure.status = (
                f"not estimated: on {span} the time of {pick.setting} did not grow with the "
                f"hosts ({pick.b:.3f} s/host: the runs' noise is larger than the growth); sweep "
                "more hosts, e.g. --cp-hosts 8,32"
            )
        figures.append(figure)
    return figures


# ---- running ---------------------------------------------------------------------------------
def _env(strategy: str, forks: int, control_dir: Path) -> dict[str, str]:
    """The project's ansible.cfg, with only the strategy, forks and the directory of the
    ControlPersist sockets (one per run: every run starts with cold connections) set."""
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(PROJECT_CFG),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_STRATEGY": strategy,
        "ANSIBLE_FORKS": str(forks),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
        "PYTHONPATH": str(REPO / "src"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def playbook(args: Sequence[str], env: Mapping[str, str], timeout: float = RUN_TIMEOUT_S) -> Run:
    """ansible-playbook in a session of its own, killed with its children on timeout."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [str(BIN / "ansible-playbook"), *args], cwd=REPO, env=dict(env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    timer = _Killer(proc, timeout)
    try:
        out, _ = proc.communicate()
        rc = proc.returncode
    except BaseException:
        # Ctrl-C or SIGTERM (SystemExit): the run has a session of its own, so end it here.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        timer.cancel()
    if timer.fired:
        out += f"\nbench: ansible-playbook killed after {timeout:.0f} s\n"
        rc = 124
    return Run(rc, out, time.monotonic() - start)


def close_masters(control_dir: Path) -> None:
    """End the ControlPersist masters of a run (they would linger for ControlPersist's 120 s)."""
    for sock in control_dir.glob("*"):
        subprocess.run(
            ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "light-host"],
            capture_output=True, timeout=10, check=False,
        )  # fmt: skip


def rollout_lines_problem(run_dir: Path, hosts: Sequence[str]) -> str | None:
    """Every host's line of the run must say `updated` (the playbook's own record)."""
    import json

    bad = []
    for host in hosts:
        line = run_dir / "hosts" / f"{host}.json"
        try:
            status = json.loads(line.read_text()).get("status")
        except (OSError, ValueError) as exc:
            bad.append(f"{host}: no line ({exc})")
            continue
        if status != "updated":
            bad.append(f"{host}: {status}")
    return "; ".join(bad) or None


def sweep(
    counts: Sequence[int],
    strategies: Sequence[str],
    forks: Sequence[int],
    out: Path,
    progress: Progress = print,
    timings: dict[str, float] | None = None,
    paths: Sequence[str] = PATHS,
) -> list[CpRun]:
    """Start max(counts) light hosts once; for each count (an inventory of its first hosts),
    strategy and forks: the rollout (a new version on every host), then the verify of that
    version. Every run must succeed on every host, or the sweep fails. Hosts always removed."""
    out.mkdir(parents=True, exist_ok=True)
    timings = {} if timings is None else timings
    runs: list[CpRun] = []
    version = 1
    with LightHosts(max(counts), progress=progress, timings=timings) as light, \
            tempfile.TemporaryDirectory(prefix="tfs-cp-") as tmp:  # fmt: skip
        t0 = time.monotonic()
        total = len(counts) * len(strategies) * len(forks) * len(paths)
        for count in counts:
            inventory = out / f"inventory-{count}.yml"
            inventory.write_text(inventory_yaml(count, light.key_dir, light.addresses))
            hosts = [host_name(n) for n in range(1, count + 1)]
            for strategy in strategies:
                for fk in forks:
                    for path in paths:
                        if path == "rollout":
                            version += 1  # every rollout updates every host
                        label = f"{path}-{count}h-{strategy}-f{fk}"
                        control = Path(tmp) / f"cp-{len(runs)}"
                        run_dir = Path(tmp) / f"run-{label}"
                        args = [
                            "-i", str(inventory), str(PLAYBOOKS / f"control_plane_{path}.yml"),
                            "-e", f"cp_version={version}", "-e", f"cp_run_dir={run_dir}",
                        ]  # fmt: skip
                        before = resource.getrusage(resource.RUSAGE_CHILDREN)
                        run = playbook(args, _env(strategy, fk, control))
                        after = resource.getrusage(resource.RUSAGE_CHILDREN)
                        close_masters(control)
                        (out / f"{label}.log").write_text(run.output)
                        problem = run_problem(run.rc, run.output, hosts)
                        if problem is None and path == "rollout":
                            problem = rollout_lines_problem(run_dir, hosts)
                        if problem:
                            raise BenchError(f"control plane: {label} failed ({problem}); log: "
                                             f"{out / (label + '.log')}\n{run.tail()}")  # fmt: skip
                        cpu = (after.ru_utime + after.ru_stime) - (
                            before.ru_utime + before.ru_stime
                        )
                        runs.append(CpRun(path, count, strategy, fk, run.seconds, cpu))
                        progress(f"control_plane: {len(runs)}/{total} {path} on {count} hosts, "
                                 f"{strategy}, forks {fk}: {run.seconds:.1f} s (controller CPU "
                                 f"{cpu:.1f} s)")  # fmt: skip
        timings["control_plane_runs_s"] = round(time.monotonic() - t0, 1)
    return runs
