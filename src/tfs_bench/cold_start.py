"""smoke_cold_start_ratio: wall time of a fresh `scripts/smoke_test.py` run (process start to
its verdict: status, REST metadata, golden Predict) against a fresh seed-style client that
imports TensorFlow and makes one Predict (seed_client.py), alternating, median of each."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tfs_bench.figures import Figure, measured
from tfs_bench.server import REPO, BenchError, quiet_env
from tfs_bench.stats import median, ratio

Progress = Callable[[str], None]


def _run(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=quiet_env(), timeout=300, check=False
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise BenchError(f"{Path(cmd[1]).name} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return elapsed


def cold_start(
    manifest: Path,
    grpc_target: str,
    rest_target: str,
    runs: int = 5,
    python: str = sys.executable,
    progress: Progress = print,
) -> tuple[Figure, dict[str, list[float]]]:
    if runs <= 0:
        raise ValueError("runs must be positive")
    smoke = [python, str(REPO / "scripts" / "smoke_test.py"), "--manifest", str(manifest),
             "--grpc", grpc_target, "--rest", rest_target, "--repeat", "1"]  # fmt: skip
    seed = [python, str(Path(__file__).with_name("seed_client.py")), grpc_target]
    samples: dict[str, list[float]] = {"smoke_test": [], "seed_client": []}
    for n in range(runs):
        order = [("smoke_test", smoke), ("seed_client", seed)]
        for name, cmd in order if n % 2 == 0 else order[::-1]:
            samples[name].append(_run(cmd))
        progress(
            f"cold_start: run {n + 1}/{runs}: smoke_test {samples['smoke_test'][-1]:.2f} s, "
            f"seed client {samples['seed_client'][-1]:.2f} s"
        )
    med_smoke, med_seed = median(samples["smoke_test"]), median(samples["seed_client"])
    figure = measured(
        "smoke_cold_start_ratio",
        round(ratio(med_smoke, med_seed), 4),
        runs_each=runs,
        smoke_test_median_s=round(med_smoke, 3),
        seed_client_median_s=round(med_seed, 3),
    )
    return figure, samples
