"""site.yml through ansible-runner, the way AWX / Ansible Automation Platform runs a job
template: a private data directory of its own, the project directory as the working directory
(so the project's ansible.cfg applies), the inventory and extra variables handed to the runner,
the vault password file on the command line as a vault credential gives it, and the job's events
written as the controller reads them.

It runs last, on the fleet test_2 set up and test_3 and test_4 left behind (3 serving hosts, the
LB host and the monitoring host, over SSH as `ops` with the sudo password from the vault; the
users' models of test_4 beside half_plus_two, after a rollout through the gate and a failed one
rolled back), so it is also the re-run of site.yml on the production path: it must succeed,
change nothing on any host, and hash no model file on the controller (the hash cache)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import ansible_runner
import pytest
import yaml
from fleet import (
    ARCHIVE,
    BECOME_VAULT,
    BIN,
    FLEET,
    HOSTS,
    LB,
    MONITORING,
    REPO,
    VAULT_PASSWORD_FILE,
    Fleet,
    env,
)
from fleet_users import MODELS_LIST, SCAN

pytestmark = [pytest.mark.docker, pytest.mark.fleet]


def become_password() -> str:
    view = subprocess.run(
        [str(BIN / "ansible-vault"), "view", "--vault-password-file", str(VAULT_PASSWORD_FILE),
         str(BECOME_VAULT)],
        capture_output=True, text=True, timeout=60, env=env(), check=True,
    )  # fmt: skip
    return str(yaml.safe_load(view.stdout)["ansible_become_password"])


def test_site_through_ansible_runner_changes_nothing(users: Fleet, tmp_path: Path) -> None:
    private = tmp_path / "job"
    (private / "env").mkdir(parents=True)
    # The variables test_4's site.yml ran with (tfs_bench.fleet.sandbox_playbook_args).
    extravars = {
        "tfserving_models_export_base": str(users.export_base),
        "tfserving_verify_export_base": str(users.export_base),
        "tfserving_image_archive_path": str(ARCHIVE),
        "tfserving_models_list": MODELS_LIST,
    }
    runner = ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(REPO),
        playbook="site.yml",
        inventory=str(REPO / "inventories/sandbox"),
        extravars=extravars,
        cmdline=f"--vault-password-file {VAULT_PASSWORD_FILE} -e @{BECOME_VAULT}",
        envvars={
            "TFS_FLEET_SANDBOX": FLEET,
            "ANSIBLE_NOCOLOR": "1",
            "PATH": f"{BIN}:{os.environ['PATH']}",
        },
        quiet=True,
        timeout=1800,
    )
    stdout = runner.stdout.read()
    assert (runner.status, runner.rc) == ("successful", 0), stdout[-4000:]
    every = {*HOSTS, LB, MONITORING}
    stats = runner.stats
    assert set(stats["ok"]) == every, stats
    assert not stats["changed"], f"site.yml changed something on a re-run: {stats['changed']}"
    assert not stats["failures"] and not stats["dark"], stats
    # The models role's scan line: nothing hashed, every file of the wanted versions from the
    # hash cache (no model file opened on the controller).
    scans = SCAN.findall(stdout)
    assert scans, stdout[-4000:]
    for wanted, hashed, hashed_bytes, cached in scans:
        assert int(wanted) > 0 and int(cached) > 0, scans
        assert (int(hashed), int(hashed_bytes)) == (0, 0), scans
    # The job's events, as AWX stores them: one playbook_on_stats at the end, task results
    # for every host, and the artifacts directory with the job's stdout.
    events = list(runner.events)
    kinds = [e["event"] for e in events]
    # (A callback that prints after the recap, as profile_tasks does, adds only verbose events.)
    at = [i for i, kind in enumerate(kinds) if kind == "playbook_on_stats"]
    assert len(at) == 1 and set(kinds[at[0] + 1 :]) <= {"verbose"}, kinds[-5:]
    hosts_with_results = {
        e["event_data"].get("host") for e in events if e["event"] == "runner_on_ok"
    }
    assert every <= hosts_with_results, hosts_with_results
    artifacts = Path(runner.config.artifact_dir)
    assert (artifacts / "stdout").is_file() and (artifacts / "job_events").is_dir()
    # Neither the sudo password nor the vault password is in the output or the events.
    secrets = [become_password(), VAULT_PASSWORD_FILE.read_text().strip()]
    dumped = stdout + json.dumps(events)
    for secret in secrets:
        assert len(secret) >= 8 and secret not in dumped
