"""PNG plots of a run (matplotlib, no display): written beside docs/bench.md."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from tfs_bench.control_plane import CpRun, Fit
from tfs_bench.figures import Figure
from tfs_bench.fleet import Rerun
from tfs_bench.rollout import Call, Span
from tfs_bench.stats import percentile
from tfs_bench.swap import LoadThreads, Window
from tfs_bench.sync import SyncRound


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def latency_histogram(samples: Mapping[str, Sequence[float]], path: Path) -> Path:
    """Per-call latency of both clients (cut at the 99.5th percentile of all calls)."""
    everything = [v for values in samples.values() for v in values]
    top = percentile(everything, 99.5)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in samples.items():
        shown = [v for v in values if v <= top]
        ax.hist(shown, bins=60, alpha=0.6, label=f"{name} (n={len(values)})")
    ax.set_xlabel("Predict round trip (ms)")
    ax.set_ylabel("calls")
    ax.set_title("client_vs_stub: tfs_fleet GrpcClient vs bare stub, same server")
    ax.legend()
    return _save(fig, path)


def cold_start_bars(samples: Mapping[str, Sequence[float]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.4
    for i, (name, values) in enumerate(samples.items()):
        xs = [n + i * width for n in range(len(values))]
        ax.bar(xs, values, width=width, label=name)
    ax.set_xlabel("run (alternating order)")
    ax.set_ylabel("wall time, process start to answer (s)")
    ax.set_title("smoke_cold_start: smoke_test.py vs a client importing TensorFlow")
    ax.legend()
    return _save(fig, path)


def swap_timeline(load: LoadThreads, windows: Sequence[Window], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4))
    ok = [s for s in load.samples if not s.error]
    bad = [s for s in load.samples if s.error]
    ax.scatter([s.t for s in ok], [s.ms for s in ok], s=2, label="answered")
    if bad:
        ax.scatter([s.t for s in bad], [s.ms for s in bad], s=12, c="red", label="failed")
    for n, w in enumerate(w for w in windows if w.kind == "swap"):
        label = "swap window" if n == 0 else None
        ax.axvspan(w.start, w.end, color="orange", alpha=0.3, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("time since the load started (s)")
    ax.set_ylabel("Predict latency (ms, log)")
    ax.set_title("swap: a new version loaded under steady load")
    ax.legend(loc="upper right")
    return _save(fig, path)


def rerun_bars(runs: Sequence[Rerun], path: Path) -> Path:
    """Every timed idempotent re-run, by case."""
    cases = list(dict.fromkeys(r.case for r in runs))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for n, case in enumerate(cases):
        times = [r.seconds for r in runs if r.case == case]
        ax.barh([n], [max(times)], color="lightgray")
        ax.barh([n], [min(times)], color="tab:blue")
        for t in times:
            ax.plot([t, t], [n - 0.4, n + 0.4], color="black")
        ax.text(max(times), n, f" {', '.join(f'{t:.0f}' for t in times)} s", va="center")
    ax.set_yticks(range(len(cases)), cases)
    ax.set_xlabel("idempotent site.yml re-run over SSH, changed=0 (s; a line per run)")
    ax.set_title("rerun: 1 and 6 hosts, project vs stock Ansible settings")
    return _save(fig, path)


def sync_bars(rounds: Sequence[SyncRound], path: Path) -> Path:
    """Per round: the role's first sync (its rsync task inside it), bare rsync, the re-sync."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.25
    for n, r in enumerate(rounds):
        transfer = r.role_tasks.get("transfer") or 0.0
        ax.bar(n - width, r.role_s, width, color="tab:blue", label="role: models.yml" if not n
               else None)  # fmt: skip
        ax.bar(n - width, transfer, width, color="tab:cyan",
               label="role: its rsync task" if not n else None)  # fmt: skip
        ax.bar(n, r.rsync_s, width, color="tab:orange", label="bare rsync -a" if not n else None)
        ax.bar(n + width, r.resync_s, width, color="tab:green",
               label="role: unchanged re-sync" if not n else None)  # fmt: skip
    ax.set_xticks(range(len(rounds)), [f"round {n + 1}" for n in range(len(rounds))])
    ax.set_ylabel("wall time (s)")
    ax.set_title("sync: a new ~1 GiB version to one host over SSH")
    ax.legend(fontsize="small")
    return _save(fig, path)


def rollout_timeline(calls: Sequence[Call], spans: Sequence[Span], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4))
    for kind, color in (("grpc", "tab:blue"), ("rest", "tab:purple")):
        ok = [c for c in calls if c.kind == kind and not c.error]
        ax.scatter([c.t for c in ok], [c.ms for c in ok], s=2, c=color, label=f"{kind} answered")
    bad = [c for c in calls if c.error]
    if bad:
        ax.scatter([c.t for c in bad], [c.ms for c in bad], s=14, c="red", label="failed")
    for span in spans:
        color = "orange" if span.kind == "rollout" else "tab:green"
        ax.axvspan(span.start, span.end, color=color, alpha=0.15, label=f"{span.kind} window")
    ax.set_yscale("log")
    ax.set_xlabel("time since the load started (s)")
    ax.set_ylabel("latency through the front door (ms, log)")
    ax.set_title("rollout: every container recreated behind the load balancer, under load")
    ax.legend(loc="upper right", fontsize="small")
    return _save(fig, path)


def control_plane_lines(runs: Sequence[CpRun], fits: Sequence[Fit], path: Path) -> Path:
    """Wall time against hosts, one line per strategy x forks (points measured, the fitted line
    dashed), the rollout's and the verify's control path side by side."""
    paths = list(dict.fromkeys(r.path for r in runs))
    fig, axes = plt.subplots(1, len(paths), figsize=(5.5 * len(paths), 4), squeeze=False)
    for ax, kind in zip(axes[0], paths, strict=True):
        settings = list(dict.fromkeys((r.strategy, r.forks) for r in runs if r.path == kind))
        for n, (strategy, forks) in enumerate(settings):
            color = f"C{n}"
            mine = sorted((r for r in runs if (r.path, r.strategy, r.forks) == (kind, strategy,
                           forks)), key=lambda r: r.hosts)  # fmt: skip
            line = next((f for f in fits if (f.path, f.strategy, f.forks) == (kind, strategy,
                         forks)), None)  # fmt: skip
            label = f"{strategy}, forks {forks}"
            if line is not None:
                label += f": {line.a:.1f} s + {line.b:.2f} s/host ({line.estimate_s:.0f} s at "
                label += f"{line.target_hosts})"
                xs = [0, max(r.hosts for r in mine)]
                ax.plot(xs, [line.a + line.b * x for x in xs], "--", color=color, linewidth=1)
            ax.plot([r.hosts for r in mine], [r.seconds for r in mine], "o-", color=color,
                    label=label)  # fmt: skip
        ax.set_xlabel("light SSH hosts")
        ax.set_ylabel("ansible-playbook wall time (s)")
        ax.set_title(f"{kind}: control path against hosts")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="x-small", loc="upper left")
    return _save(fig, path)


def ratio_summary(figures: Sequence[Figure], path: Path) -> Path:
    """Every measured ratio against its goal."""
    shown = [f for f in figures if f.value is not None and f.spec.units == "ratio" and f.spec.goal]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = [f.name for f in shown]
    values = [float(f.value or 0.0) for f in shown]
    colors = ["tab:red" if f.missed else "tab:green" for f in shown]
    ax.barh(names, values, color=colors)
    for n, f in enumerate(shown):
        assert f.spec.goal is not None
        ax.plot([f.spec.goal.limit] * 2, [n - 0.4, n + 0.4], color="black")
    ax.set_xlabel("ratio (black line: goal; green met, red missed)")
    ax.set_title("measured ratios")
    return _save(fig, path)
