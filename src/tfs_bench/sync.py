"""sync_vs_rsync_ratio, resync_bytes, resync_vs_full_ratio on the bench fleet's first host.

The new version is a real export of the demo half_plus_two (scripts/export_model.py) padded
with an incompressible file under assets/ (os.urandom, written in chunks) of about 1 GiB and
listed in its manifest, so the role's checks (sha256 of every file, sizes) pass as for any
version. Through the role: `ansible-playbook playbooks/models.yml --limit <host>` with an
export base that holds version 1 (served) and the new one: the whole run is timed (the role
plans, stages, rsyncs, hands the files to root, checks every sha256 and publishes). Against it:
a bare `rsync -a` of the same directory to the same host over the same ssh command that
ansible.posix.synchronize runs for the role (user, key, known_hosts, ssh_args of ansible.cfg,
`-S none`: no multiplexing on either side), into the login user's home; removed afterwards.
Then the role again with nothing changed: its time, and the bytes of model files it wrote on
the host (files under the model's directory that are new or whose inode, size or mtime changed,
staging directories included), read with `find` through the engine before and after. Several
rounds alternate which side goes first; between rounds the role's copy is removed from the host
so the next round's version is new again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tfs_bench.figures import Figure, measured
from tfs_bench.fleet import (
    PROFILE_ENV,
    BenchFleet,
    Run,
    idempotence_problem,
    profile_tasks,
    task_seconds,
)
from tfs_bench.fleet import recap as parse_recap
from tfs_bench.server import MODEL, REPO, BenchError, export_demo
from tfs_bench.stats import median, ratio

MODELS_DIR = f"/srv/tfserving/models/{MODEL}"
RETIRED_DIR = f"/srv/tfserving/retired/{MODEL}"
STAGING_PREFIX = ".tfs-fleet-incoming-"
MANIFEST = "tfs_fleet_manifest.json"
PADDING = "assets/padding.bin"
CHUNK = 8 * 1024 * 1024
# The new version (the fleet serves version 1 from an export base of its own).
SYNC_VERSION = 2
_SNAPSHOT = "%i %s %T@ %P\\n"
_TOTAL_SENT = re.compile(r"^Total bytes sent:\s*([\d,]+)", re.MULTILINE)


# ---- the version (controller side) -----------------------------------------------------------
def pad_version(version_dir: Path, mib: int, chunk: int = CHUNK) -> int:
    """Add an incompressible file of mib MiB under assets/ and list it (sha256, size) in the
    manifest; return its size in bytes."""
    if mib <= 0:
        raise ValueError("mib must be positive")
    path = version_dir / PADDING
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    left = mib * 1024 * 1024
    with path.open("wb") as out:
        while left > 0:
            data = os.urandom(min(chunk, left))
            digest.update(data)
            out.write(data)
            left -= len(data)
    manifest_path = version_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    size = path.stat().st_size
    manifest["files"][PADDING] = {"sha256": digest.hexdigest(), "size": size}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return size


def make_sync_base(base: Path, served: Path, version: int, mib: int) -> Path:
    """An export base holding the served version 1 (copied) and a new padded export as
    `version`; returns the new version's directory."""
    model = base / MODEL
    model.mkdir(parents=True, exist_ok=True)
    if not (model / "1").exists():
        shutil.copytree(served, model / "1")
    manifest = export_demo(base, version=version)
    pad_version(manifest.parent, mib)
    return manifest.parent


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


# ---- host-side measurements (pure parsing) ---------------------------------------------------
def parse_snapshot(text: str) -> dict[str, tuple[int, int, str]]:
    """`find -printf '%i %s %T@ %P\\n'` output: {path: (inode, size, mtime)}."""
    out = {}
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[0].isdigit() and parts[1].isdigit():
            out[parts[3]] = (int(parts[0]), int(parts[1]), parts[2])
    return out


def bytes_written(
    before: Mapping[str, tuple[int, int, str]], after: Mapping[str, tuple[int, int, str]]
) -> int:
    """Bytes of the files in after that are new or changed (inode, size or mtime) since before."""
    return sum(entry[1] for path, entry in after.items() if before.get(path) != entry)


def rsync_bytes_sent(output: str) -> int | None:
    """'Total bytes sent' of `rsync --stats`; None when absent."""
    match = _TOTAL_SENT.search(output)
    return int(match.group(1).replace(",", "")) if match else None


@dataclass
class SyncRound:
    order: list[str]
    role_s: float
    rsync_s: float
    resync_s: float
    role_bytes_written: int
    resync_bytes_written: int
    rsync_bytes_sent: int | None
    role_rx_bytes: int
    resync_rx_bytes: int
    role_tasks: dict[str, float | None] = field(default_factory=dict)
    resync_tasks: dict[str, float | None] = field(default_factory=dict)


def sync_figures(rounds: list[SyncRound], version_bytes: int) -> list[Figure]:
    if not rounds:
        raise BenchError("no sync round was measured")
    role = median([r.role_s for r in rounds])
    bare = median([r.rsync_s for r in rounds])
    resync = median([r.resync_s for r in rounds])
    per_round = [dataclasses.asdict(r) for r in rounds]
    transfer = [r.role_tasks.get("transfer") for r in rounds]
    inside = round(ratio(median([t for t in transfer if t]), bare), 3) if all(transfer) else None
    return [
        measured("sync_vs_rsync_ratio", round(ratio(role, bare), 3), role_s=round(role, 2),
                 rsync_s=round(bare, 2), version_bytes=version_bytes,
                 rsync_task_vs_rsync_ratio=inside, rounds=per_round),
        measured("resync_bytes", float(max(r.resync_bytes_written for r in rounds)),
                 measured_as="bytes of model files written on the host (new or changed files "
                             "under the model's directory, staging included)",
                 eth0_rx_bytes=[r.resync_rx_bytes for r in rounds],
                 eth0_note="the host's eth0 rx bytes: Ansible's own SSH traffic included"),
        measured("resync_vs_full_ratio", round(ratio(resync, role), 4),
                 resync_s=round(resync, 2), first_sync_s=round(role, 2)),
    ]  # fmt: skip


# ---- the part --------------------------------------------------------------------------------
ROLE_TASKS = {
    "transfer": "Transfer missing versions with rsync",
    "hand_to_root": "Hand the staged versions to root",
    "verify_publish": "Verify the staged versions",
    "staging": "Create the staging directories",
    "find_exported": "Find the exported versions on the controller",
}


@dataclass
class SyncPart:
    fleet: BenchFleet
    base: Path
    version: int
    host: str = ""

    def __post_init__(self) -> None:
        self.host = self.host or self.fleet.serving[0]

    def snapshot(self) -> dict[str, tuple[int, int, str]]:
        out = self.fleet.in_host(self.host, "find", MODELS_DIR, "-type", "f", "-printf", _SNAPSHOT)
        return parse_snapshot(out)

    def rx_bytes(self) -> int:
        return int(self.fleet.in_host(self.host, "cat", "/sys/class/net/eth0/statistics/rx_bytes"))

    def role(self) -> tuple[Run, int, int]:
        """models.yml on the host: (run, model-file bytes written, eth0 rx bytes)."""
        before, rx = self.snapshot(), self.rx_bytes()
        run = self.fleet.playbook(
            ["-i", str(REPO / "inventories/sandbox"), str(REPO / "playbooks/models.yml"),
             "--limit", self.host, "-e", f"tfserving_models_export_base={self.base}"],
            timeout=1200, extra_env=PROFILE_ENV,
        )  # fmt: skip
        return run, bytes_written(before, self.snapshot()), self.rx_bytes() - rx

    def bare_rsync(self) -> tuple[float, int | None]:
        dest = f"tfs-bench-rsync-{self.version}"
        src = self.base / MODEL / str(self.version)
        ssh = shlex.join(self.fleet.ssh_command(self.host))
        argv = ["rsync", "-a", "--stats", "-e", ssh, f"{src}/", f"ops@127.0.0.1:{dest}/"]
        start = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=1200, check=False)
        seconds = time.monotonic() - start
        try:
            if proc.returncode != 0:
                raise BenchError(f"bare rsync failed ({proc.returncode}): {proc.stderr[-1500:]}")
            return seconds, rsync_bytes_sent(proc.stdout)
        finally:
            self.fleet.in_host(self.host, "rm", "-rf", f"/home/ops/{dest}")

    def forget_version(self) -> None:
        """Remove the role's copy from the host, so the version is new to it again."""
        v = str(self.version)
        self.fleet.in_host(
            self.host, "rm", "-rf", f"{MODELS_DIR}/{v}", f"{RETIRED_DIR}/{v}",
            f"{MODELS_DIR}/{STAGING_PREFIX}{v}",
        )  # fmt: skip

    def check_first(self, run: Run, n: int) -> None:
        log = self.fleet.out / f"sync-first-{n + 1}.log"
        log.write_text(run.output)
        stats = parse_recap(run.output).get(self.host, {})
        if run.rc != 0 or not stats.get("changed"):
            raise BenchError(f"the role's first sync failed or changed nothing (rc {run.rc}, "
                             f"{stats}); log {log}\n{run.tail()}")  # fmt: skip
        self.fleet.in_host(self.host, "test", "-f", f"{MODELS_DIR}/{self.version}/{PADDING}")

    def round(self, n: int) -> SyncRound:
        order = ["role", "rsync"] if n % 2 == 0 else ["rsync", "role"]
        role_run: Run | None = None
        role_bytes = role_rx = 0
        rsync_s, sent = 0.0, None
        say = self.fleet.progress
        for side in order:
            if side == "role":
                say(f"sync: round {n + 1}: first sync of version {self.version} via "
                    "tfserving_models (models.yml)")  # fmt: skip
                role_run, role_bytes, role_rx = self.role()
                self.check_first(role_run, n)
                say(f"sync: round {n + 1}: role {role_run.seconds:.1f} s")
            else:
                say(f"sync: round {n + 1}: bare rsync -a of the same directory")
                rsync_s, sent = self.bare_rsync()
                say(f"sync: round {n + 1}: bare rsync {rsync_s:.1f} s")
        assert role_run is not None
        say(f"sync: round {n + 1}: unchanged re-sync via tfserving_models")
        resync, resync_bytes, resync_rx = self.role()
        log = self.fleet.out / f"resync-{n + 1}.log"
        log.write_text(resync.output)
        problem = idempotence_problem(resync.rc, resync.output, [self.host])
        if problem:
            raise BenchError(f"the unchanged re-sync is not clean ({problem}); log {log}")
        say(f"sync: round {n + 1}: re-sync {resync.seconds:.1f} s, {resync_bytes} bytes of "
            "model files written")  # fmt: skip
        first_profile, re_profile = profile_tasks(role_run.output), profile_tasks(resync.output)
        return SyncRound(
            order=order, role_s=round(role_run.seconds, 2), rsync_s=round(rsync_s, 2),
            resync_s=round(resync.seconds, 2), role_bytes_written=role_bytes,
            resync_bytes_written=resync_bytes, rsync_bytes_sent=sent, role_rx_bytes=role_rx,
            resync_rx_bytes=resync_rx,
            role_tasks={k: task_seconds(first_profile, v) for k, v in ROLE_TASKS.items()},
            resync_tasks={k: task_seconds(re_profile, v) for k, v in ROLE_TASKS.items()},
        )  # fmt: skip


def sync(
    fleet: BenchFleet, served: Path, work: Path, mib: int = 1024, rounds: int = 1
) -> tuple[list[Figure], list[SyncRound]]:
    """served: the export of version 1 the fleet serves; work: a directory for the export."""
    base = work / "sync-export"
    version = SYNC_VERSION
    fleet.progress(f"sync: exporting version {version} padded with {mib} MiB (os.urandom)")
    version_dir = make_sync_base(base, served, version, mib)
    version_bytes = tree_bytes(version_dir)
    part = SyncPart(fleet, base, version)
    results = []
    try:
        for n in range(rounds):
            if n:
                part.forget_version()
            results.append(part.round(n))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return sync_figures(results, version_bytes), results
