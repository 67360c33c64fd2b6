#!/usr/bin/env python3
"""Time an idempotent re-run of site.yml over SSH on sandbox fleets of several sizes, with the
project's ansible.cfg and with stock Ansible settings (no pipelining, default forks, no
ControlPersist), and write the table.

    scripts/bench_ssh_rerun.py [--hosts 1,3,6] [--repeat 2] [--json PATH] [--markdown PATH]
                               [--keep] [--help]

A fleet of the largest size is created once (TFS_FLEET_SANDBOX=bench, SSH on 127.0.0.1:37401+,
gRPC 37501+, REST 37601+), converged once with site.yml (untimed), then each size is re-run
with `--limit` to its first N hosts. Every timed run must report changed=0 on every host, or the
benchmark fails. The fleet is removed at the end unless --keep.

Exit codes: 0 done, 1 a run failed or was not idempotent, 2 bad usage or missing prerequisite.
Progress goes to stderr; the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FLEET = "bench"
PORTS = {"ssh": 37400, "grpc": 37500, "rest": 37600}
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


def log(message: str) -> None:
    print(f"bench_ssh_rerun: {message}", file=sys.stderr, flush=True)


def env(config: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_NOCOLOR": "1",
        "TFS_FLEET_SANDBOX": FLEET,
        "PYTHONPATH": str(REPO / "src"),
    }


def playbook(args: list[str], config: Path, timeout: int) -> tuple[int, str, float]:
    start = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env(config),
        timeout=timeout,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


def recap_changed(output: str) -> dict[str, int]:
    recap = output.split("PLAY RECAP", 1)[-1]
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)", recap, re.MULTILINE)
    }


def hosts(count: int) -> list[str]:
    return [f"tfs-fleet-{FLEET}-{n}" for n in range(1, count + 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="1,3,6", help="fleet sizes, comma-separated (1-9)")
    parser.add_argument("--repeat", type=int, default=2, help="timed re-runs per case (median)")
    parser.add_argument("--json", type=Path, default=REPO / "artifacts/bench/ssh_rerun.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "artifacts/bench/ssh_rerun.md")
    parser.add_argument("--models", type=Path, default=REPO / "artifacts/models")
    parser.add_argument("--keep", action="store_true", help="keep the bench fleet afterwards")
    args = parser.parse_args(argv)
    try:
        sizes = sorted({int(s) for s in args.hosts.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--hosts takes whole numbers separated by commas (got {args.hosts!r})")
    if not sizes or sizes[0] < 1 or sizes[-1] > 9 or not 1 <= args.repeat <= 10:
        parser.error("--hosts sizes must be 1-9 and --repeat 1-10")
    if not (args.models / "half_plus_two").is_dir():
        log(f"{args.models}/half_plus_two is missing: run `make demo` or scripts/export_model.py")
        return 2

    project_cfg = REPO / "ansible.cfg"
    stock_dir = Path(tempfile.mkdtemp(prefix="tfsf-stock-cfg-"))
    stock_cfg = stock_dir / "ansible.cfg"
    stock_cfg.write_text(STOCK_CFG.format(repo=REPO))
    site = ["-i", str(REPO / "inventories/sandbox"), str(REPO / "site.yml"),
            "-e", f"tfserving_models_export_base={args.models}"]  # fmt: skip
    results: dict[str, object] = {"sizes": sizes, "repeat": args.repeat, "runs": []}
    try:
        log(f"creating a {sizes[-1]}-host sandbox fleet ({FLEET})")
        rc, out, secs = playbook(
            [str(REPO / "playbooks/sandbox.yml"), "-e", f"sandbox_host_count={sizes[-1]}",
             *[f"-esandbox_{k}_port_base={v}" for k, v in PORTS.items()]],
            project_cfg, 600,
        )  # fmt: skip
        if rc != 0:
            log("creating the fleet failed:\n" + out[-3000:])
            return 1
        log(f"converging {sizes[-1]} hosts with site.yml (untimed; several minutes)")
        rc, out, secs = playbook(site, project_cfg, 2400)
        if rc != 0:
            log("the converge failed:\n" + out[-3000:])
            return 1
        log(f"converged in {secs:.0f} s")
        cases = [(n, "project", project_cfg) for n in sizes] + [(sizes[0], "stock", stock_cfg)]
        for count, settings, config in cases:
            times = []
            for attempt in range(1, args.repeat + 1):
                limit = ",".join(hosts(count))
                rc, out, secs = playbook([*site, "--limit", limit], config, 1800)
                changed = recap_changed(out)
                wanted = {h: 0 for h in hosts(count)}
                if rc != 0 or {h: changed.get(h) for h in wanted} != wanted:
                    log(f"{count} hosts, {settings}: rc={rc}, changed={changed}\n{out[-3000:]}")
                    return 1
                times.append(secs)
                log(f"{count} host(s), {settings} settings, run {attempt}: {secs:.1f} s")
            results["runs"].append(  # type: ignore[union-attr]
                {"hosts": count, "settings": settings, "seconds": times,
                 "median_s": round(statistics.median(times), 1)}
            )  # fmt: skip
    finally:
        if not args.keep:
            playbook(
                [str(REPO / "playbooks/sandbox.yml"), "-e", "sandbox_state=absent"],
                project_cfg,
                600,
            )

    runs = results["runs"]  # type: ignore[assignment]
    median = {(r["hosts"], r["settings"]): r["median_s"] for r in runs}  # type: ignore[index]
    one = median[(sizes[0], "project")]
    results["ratio_largest_to_smallest"] = round(median[(sizes[-1], "project")] / one, 2)
    results["ratio_project_to_stock"] = round(one / median[(sizes[0], "stock")], 2)
    lines = [
        "| Hosts | Settings | Re-run (median s) | Runs (s) |",
        "|---|---|---|---|",
        *[
            f"| {r['hosts']} | {r['settings']} | {r['median_s']} | "  # type: ignore[index]
            + ", ".join(f"{t:.1f}" for t in r["seconds"])  # type: ignore[index]
            + " |"
            for r in runs  # type: ignore[union-attr]
        ],
        "",
        f"{sizes[-1]} hosts / {sizes[0]} host: {results['ratio_largest_to_smallest']}; "
        f"project settings / stock settings ({sizes[0]} host): {results['ratio_project_to_stock']}",
    ]
    table = "\n".join(lines)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
