"""How the serving image reaches the bench fleet (issue 25): the first converge of the fleet
with the image from the `docker save` archive (the controller ships it to every host) against
the same converge with the image pulled from the fleet's own registry host (Debian's
docker-registry, roles/tfserving_registry; the controller pushes it there once).

The bytes are counted where the controller's traffic enters the fleet: the fleet's Docker
network is a Linux bridge (br-<network id>), and its transmit counter
(/sys/class/net/br-*/statistics/tx_bytes) counts what this machine's own network stack sends
into that network: everything Ansible sends the hosts over SSH (the engine relays the published
SSH ports on 127.0.0.1 into the network) and what the machine routes in from outside (the Debian
mirror's packages). Frames the bridge forwards from one host to another (the registry's answers
to a pull) never pass the machine's stack and are not counted. The counter is read as the
image play starts and as the next play starts (the plays of site.yml run one after the other;
nothing is downloaded from outside in that play: the docker role installed what the image role
needs), so the figure is what the controller sent for the image, divided by the serving hosts.
The registry host's own transmit counter (eth0 in its network namespace) over the same play is
the bytes the registry served. (The engine's docker-proxy would be the natural per-host meter,
but it relays with splice(2): its /proc/PID/io counters stay near zero.)

  dist_archive_bytes_per_host          controller -> fleet bytes in the image play / serving
                                       hosts, first converge, archive
  dist_pull_bytes_per_host             the same with pull (goal: no image bytes)
  dist_converge_archive_s, _pull_s     wall time of those first converges (site.yml)
  dist_converge_pull_vs_archive_ratio  pull / archive
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tfs_bench.figures import Figure, measured
from tfs_bench.fleet import FLEET, REGISTRY_HOST, BenchFleet
from tfs_bench.server import BenchError
from tfs_bench.stats import ratio

SYS_NET = Path("/sys/class/net")
IMAGE_PLAY = "Image - TF Serving image"


# ---- pure ------------------------------------------------------------------------------------
def bridge_name(network_id: str) -> str:
    """The Linux bridge Docker makes for a user-defined network: br- and the ID's first 12."""
    network_id = network_id.strip()
    if len(network_id) < 12 or not all(c in "0123456789abcdef" for c in network_id):
        raise BenchError(f"not a Docker network ID: {network_id!r}")
    return f"br-{network_id[:12]}"


@dataclass
class Counters:
    """Counter readings at the start of each play of one run: {play name: (bridge tx, registry
    tx)}; "" is the reading when the run ended."""

    at: dict[str, tuple[int, int]] = field(default_factory=dict)

    def play_bytes(self, play: str, order: Sequence[str]) -> tuple[int, int]:
        """(bridge tx, registry tx) from the start of `play` to the start of the play after it
        in `order` (or the run's end)."""
        if play not in self.at or play not in order:
            raise BenchError(f"the play {play!r} did not run (plays: {list(order)})")
        after = [*order[order.index(play) + 1 :], ""]
        end = next((name for name in after if name in self.at), None)
        if end is None:
            raise BenchError(f"no reading after the play {play!r}")
        (b0, r0), (b1, r1) = self.at[play], self.at[end]
        if b1 < b0 or r1 < r0:
            raise BenchError(f"a counter went backwards over the play {play!r}")
        return b1 - b0, r1 - r0


@dataclass
class Converge:
    source: str  # "archive" or "pull"
    seconds: float
    hosts: int
    image_play_bytes: int  # controller -> fleet network during the image play
    registry_bytes: int  # registry host's transmit during the image play
    run_bytes: int  # controller -> fleet network during the whole converge


def distribution_figures(
    runs: Sequence[Converge], image_bytes: int, push: Mapping[str, float]
) -> list[Figure]:
    by = {run.source: run for run in runs}
    if set(by) != {"archive", "pull"} or len(runs) != 2:
        raise BenchError(f"need one archive and one pull converge (got {sorted(by)})")
    archive, pull = by["archive"], by["pull"]

    def detail(run: Converge) -> dict[str, object]:
        return {
            "serving_hosts": run.hosts,
            "image_play_bridge_tx_bytes": run.image_play_bytes,
            "registry_tx_bytes_per_host": run.registry_bytes // max(run.hosts, 1),
            "converge_bridge_tx_bytes_per_host": run.run_bytes // max(run.hosts, 1),
            "image_archive_bytes": image_bytes,
        }

    return [
        measured("dist_archive_bytes_per_host", archive.image_play_bytes // max(archive.hosts, 1),
                 **detail(archive)),
        measured("dist_pull_bytes_per_host", pull.image_play_bytes // max(pull.hosts, 1),
                 **detail(pull), push=dict(push)),
        measured("dist_converge_archive_s", round(archive.seconds, 1), hosts=archive.hosts),
        measured("dist_converge_pull_s", round(pull.seconds, 1), hosts=pull.hosts),
        measured("dist_converge_pull_vs_archive_ratio",
                 round(ratio(pull.seconds, archive.seconds), 3),
                 archive_s=round(archive.seconds, 1), pull_s=round(pull.seconds, 1)),
    ]  # fmt: skip


# ---- the machine -----------------------------------------------------------------------------
def bridge_tx(network: str = f"tfs-fleet-{FLEET}") -> int:
    """Bytes this machine's stack has sent into the Docker network `network` so far."""
    proc = subprocess.run(
        ["docker", "network", "inspect", "-f", "{{.Id}}", network],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BenchError(f"docker network inspect {network}: {proc.stderr.strip()}")
    path = SYS_NET / bridge_name(proc.stdout) / "statistics" / "tx_bytes"
    return int(path.read_text())


def registry_tx(fleet: BenchFleet) -> int:
    return int(fleet.in_host(REGISTRY_HOST, "cat", "/sys/class/net/eth0/statistics/tx_bytes"))


def first_converge(fleet: BenchFleet, source: str) -> Converge:
    """site.yml on the fresh fleet with the image from `source`, timed, bytes counted."""
    counters = Counters()
    order: list[str] = []

    def read(play: str) -> None:
        if play:
            order.append(play)
        counters.at.setdefault(play, (bridge_tx(), registry_tx(fleet)))

    start = bridge_tx()
    run = fleet.converge(source, on_play=read)
    image, registry = counters.play_bytes(IMAGE_PLAY, order)
    total = counters.at[""][0] - start
    hosts = len(fleet.serving)
    fleet.progress(f"distribution: {source}: {run.seconds:.0f} s; image play: {image} bytes from "
                   f"this machine into the fleet, {registry} from the registry")  # fmt: skip
    return Converge(source, run.seconds, hosts, image, registry, total)


def distribution(fleet: BenchFleet, archive: Path) -> tuple[list[Figure], list[Converge]]:
    """The fleet (created, its registry running and the image pushed: BenchFleet.create and
    push) converged first with the archive, then made fresh again (every host but the registry
    recreated with an empty engine) and converged with pull. It is left converged with pull."""
    runs = [first_converge(fleet, "archive")]
    fleet.recreate_hosts()
    runs.append(first_converge(fleet, "pull"))
    return distribution_figures(runs, os.path.getsize(archive), fleet.push_stats), runs
