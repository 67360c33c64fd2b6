"""The fleet stage (`make test-fleet`): one 3-host sandbox fleet (TFS_FLEET_SANDBOX=rollout),
reached over SSH as the unprivileged `ops` with a sudo password from a vault file, created once
for the session and removed at its end (TFS_FLEET_ROLLOUT_KEEP=1 keeps it). The files run in
their order, each starting from where the one before left the fleet:

  test_1_rollout_faults.py  the rollout's fault matrix, clients on each host's own ports;
  test_2_lb_front_door.py   a load balancer host and a monitoring host join the fleet, site.yml
                            sets them up, and the LB cases run under load through the front door;
  test_3_metric_gate.py     the rollout's metric gate on the monitoring host's Prometheus;
  test_4_user_models.py     users' own SavedModels (no manifest of ours) deployed by site.yml,
                            a new version through the gate, broken ones stopped at the canary;
  test_5_ansible_runner.py  the re-run of site.yml through ansible-runner as AWX runs it, after
                            all of the above: it changes nothing and hashes no model file.

One fleet instead of one per file: creating hosts and installing their engine is most of what
a fleet costs here (README, Tests)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet import (
    FRONT_MODELS,
    PLAYBOOK_LOGS,
    REPO,
    Fleet,
    FrontDoor,
    Run,
    add_front_door,
    create_fleet,
    destroy_fleet,
    make_models,
    playbook,
)
from fleet_users import users_fleet

SETUP_TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    start = time.monotonic()
    shutil.rmtree(PLAYBOOK_LOGS, ignore_errors=True)  # this session's runs only
    create_fleet()
    runs = REPO / "artifacts" / "rollout" / "tests"
    the_fleet = Fleet(export_base=tmp_path_factory.mktemp("export"), runs_dir=runs)
    SETUP_TIMINGS["fleet"] = time.monotonic() - start
    yield the_fleet
    if os.environ.get("TFS_FLEET_ROLLOUT_KEEP") != "1":
        destroy_fleet()
    print(f"\nfleet stage set-up timings (s): { {k: round(v) for k, v in SETUP_TIMINGS.items()} }")


@pytest.fixture(scope="session")
def front_door(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> FrontDoor:
    """The LB host and the monitoring host join the fleet left by test_1, and site.yml (the
    production path: SSH, sudo password) sets up all five hosts with version 11 exported."""
    start = time.monotonic()
    work = tmp_path_factory.mktemp("front-door")
    library, export = work / "library", work / "export"
    make_models(library, *FRONT_MODELS)
    door = FrontDoor(Fleet(export, work / "runs"), library, site=Run(0, "", 0))
    door.export_version(11)
    add_front_door()
    # Prometheus scrapes every 5 s (its default here 15 s): the metric gate soaks 30 s (6 scrapes).
    door.site = playbook(
        *door.site_args("-e", "tfserving_monitoring_scrape_interval=5s"), timeout=2400
    )
    assert door.site.rc == 0, door.site.tail()
    SETUP_TIMINGS["front_door_site"] = time.monotonic() - start
    return door


@pytest.fixture(scope="session")
def users(front_door: FrontDoor, tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    """Users' own models beside half_plus_two (tests/fleet/fleet_users.py): test_4 deploys and
    rolls them out, test_5 re-runs site.yml over them."""
    return users_fleet(front_door, tmp_path_factory.mktemp("user-models"))
