#!/usr/bin/env python3
"""Time the tfserving_models role's plan step (tfs_fleet.common.model_sources: find every version
under the export base and hash the files of the versions to deploy, the newest --keep) on a
temporary export base, without and with the hash cache, beside a bare `sha256sum` of the files of
every version. Run it with the venv python:

    .venv/bin/python scripts/bench_model_sources.py [--versions 20] [--mib 100] [--keep 3]
        [--rounds 3]

Each round: the plan step with an empty cache (every file of the kept versions hashed), then
again with that cache (no file opened), through ansible-playbook
(roles/tfserving_models/tasks/plan.yml, the project's ansible.cfg, a host that is never
contacted), and `sha256sum` over the files of every version. The files were just written, so they
are in the page cache: the times are hashing and overhead, not disk reads.
Prints a Markdown table; the temporary directory is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PLAY = """
- name: The plan step of tfserving_models
  hosts: all
  gather_facts: false
  tasks:
    - name: Plan
      ansible.builtin.include_role:
        name: tfserving_models
        tasks_from: plan.yml
    - name: Keep the scan's stats
      ansible.builtin.copy:
        content: "{{ _tfserving_models_sources.stats | to_json }}"
        dest: "{{ out }}"
        mode: "0644"
      delegate_to: localhost
"""


def write_versions(base: Path, versions: int, mib: int) -> list[Path]:
    """versions SavedModel-shaped directories, each with a variables file of mib MiB."""
    block = os.urandom(8 << 20)
    files = []
    for v in range(1, versions + 1):
        root = base / "bench" / str(v)
        (root / "variables").mkdir(parents=True)
        (root / "saved_model.pb").write_bytes(os.urandom(64 << 10))
        (root / "variables" / "variables.index").write_bytes(os.urandom(4 << 10))
        data = root / "variables" / "variables.data-00000-of-00001"
        with data.open("wb") as handle:
            left = mib << 20
            handle.write(v.to_bytes(8, "big"))  # each version's content differs
            left -= 8
            while left > 0:
                handle.write(block[: min(left, len(block))])
                left -= len(block)
        files += [root / "saved_model.pb", root / "variables" / "variables.index", data]
    return files


def plan_step(work: Path, base: Path, cache: Path, keep: int) -> tuple[float, dict[str, float]]:
    out = work / "stats.json"
    extra = {
        "tfserving_models_export_base": str(base),
        "tfserving_models_list": [{"name": "bench", "keep": keep}],
        "tfserving_models_hash_cache_dir": str(cache),
        "out": str(out),
    }
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    start = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(work / "hosts.yml"), str(work / "play.yml"),
         "-e", json.dumps(extra)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=1200, check=False,
    )  # fmt: skip
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"ansible-playbook failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return wall, json.loads(out.read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--versions", type=int, default=20)
    p.add_argument("--mib", type=int, default=100, help="size of each version's variables file")
    p.add_argument("--keep", type=int, default=3, help="versions deployed (and hashed)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dir", type=Path, default=None, help="parent of the temporary directory")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tfs-fleet-bench-sources-", dir=args.dir))
    try:
        (work / "play.yml").write_text(PLAY)
        (work / "hosts.yml").write_text(
            "all:\n  hosts:\n    h1: {ansible_host: 127.0.0.1, ansible_port: 9}\n"
        )
        base = work / "export"
        files = write_versions(base, args.versions, args.mib)
        time.sleep(2.5)  # past the cache's 2 s window for files changed just before hashing
        rows: dict[str, list[float]] = {"cold": [], "warm": [], "sha256sum": [], "scan_cold": [],
                                        "scan_warm": []}  # fmt: skip
        stats: dict[str, dict[str, float]] = {}
        for n in range(args.rounds):
            cache = work / f"cache-{n}"
            wall, stats["cold"] = plan_step(work, base, cache, args.keep)
            rows["cold"].append(wall)
            rows["scan_cold"].append(stats["cold"]["seconds"])
            wall, stats["warm"] = plan_step(work, base, cache, args.keep)
            rows["warm"].append(wall)
            rows["scan_warm"].append(stats["warm"]["seconds"])
            start = time.monotonic()
            subprocess.run(["sha256sum", *map(str, files)], check=True, capture_output=True)
            rows["sha256sum"].append(time.monotonic() - start)
        total = sum(f.stat().st_size for f in files)
        med = {k: statistics.median(v) for k, v in rows.items()}
        print(f"{args.versions} versions x {args.mib} MiB ({total / 2**30:.2f} GiB, "
              f"{len(files)} files), keep {args.keep}, {args.rounds} rounds, medians; load average "
              f"{os.getloadavg()[0]:.1f}\n")  # fmt: skip
        print(
            "| Run | ansible-playbook wall (s) | scan (s) | hashed files | hashed bytes | cached |"
        )
        print("|---|---|---|---|---|---|")
        for kind, label in (("cold", "empty cache (first run)"), ("warm", "cache (re-run)")):
            s = stats[kind]
            counts = f"{s['hashed_files']:.0f} | {s['hashed_bytes']:.0f} | {s['cached_files']:.0f}"
            print(f"| {label} | {med[kind]:.2f} | {med['scan_' + kind]:.3f} | {counts} |")
        print(f"| `sha256sum` of the same files | - | {med['sha256sum']:.3f} | {len(files)} | "
              f"{total} | - |")  # fmt: skip
        print(
            "\nper round (s):", json.dumps({k: [round(x, 3) for x in v] for k, v in rows.items()})
        )
    finally:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
