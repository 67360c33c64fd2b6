"""The rollout's fault matrix on the fleet stage's 3-host sandbox fleet (docs/rollout.md;
tests/fleet/conftest.py), before any load balancer or monitoring host joins it.

The fleet is created once for the session and reused; every scenario first converges the fleet to
its starting point (a rollout, only when some host is elsewhere) and asserts each host's final
state: image, model versions present on disk and AVAILABLE, and the client requests that failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fleet import (
    BECOME_VAULT,
    BIN,
    CANARY,
    HOSTS,
    IMAGE,
    MODEL,
    MODELS_DIR,
    REPO,
    VAULT_PASSWORD_FILE,
    Fleet,
    Load,
    available_versions,
    container,
    docker,
    env,
    in_host,
    kill_group,
    playbook,
    standin_image_id,
    state,
    wait_available,
)

from helpers import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.fleet]

GOOD_ANSWER = 2.5  # half_plus_two(1.0)
# Converging and re-running need no canary: every host in one batch.
ONE_BATCH = '{"tfserving_rollout_serial": ["100%"]}'
TIMINGS: dict[str, float] = {}
# An undrain hook as a task file (the drain hook is a command): appends to a controller file.
UNDRAIN_TASKS = """\
- name: Put the host back into the load balancer (test marker)
  ansible.builtin.lineinfile:
    path: {marker}
    line: undrain {{{{ inventory_hostname }}}}
    insertafter: EOF
  delegate_to: localhost
  become: false
"""


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every version the scenarios use, exported once: 1, 2, 4 good, 3 bad, 5 big (24 MB)."""
    base = tmp_path_factory.mktemp("library")
    proc = subprocess.run(
        [str(BIN / "python"), str(REPO / "tests/rollout/make_models.py"), str(base),
         "good:1", "good:2", "bad:3", "good:4", "big:5:24"],
        capture_output=True, text=True, env=env(), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base


@pytest.fixture(scope="module", autouse=True)
def timings() -> Iterator[None]:
    yield
    print(
        "\nrollout scenario timings (s): " + json.dumps({k: round(v) for k, v in TIMINGS.items()})
    )


def converge(fleet: Fleet, library: Path, versions: list[int]) -> None:
    """Starting point of a scenario: the export base holds `versions`, every host serves the
    newest of them with the controller's stand-in image (a fleet kept from an earlier run may
    still run an older build). A rollout runs only when some host is elsewhere."""
    fleet.set_exported(versions, library)
    newest = max(versions)
    image = docker("image", "inspect", "-f", "{{.Id}}", IMAGE).stdout.strip()
    if all(available_versions(h) == [newest] and container(h).get("Image") == image for h in HOSTS):
        return
    run = fleet.rollout("-e", ONE_BATCH, run_id=f"converge-{newest}-{time.time_ns()}")
    assert run.rc == 0, run.tail()
    for host in HOSTS:
        assert wait_available(host, newest) == [newest], host


def statuses(report: dict) -> dict[str, str]:
    return {entry["host"]: entry["status"] for entry in report["hosts"]}


def test_good_model_rolls_out_under_load(fleet: Fleet, library: Path, tmp_path: Path) -> None:
    """Scenario 1: version 2 under continuous client load, default batches [1, 25%, 100%], with
    a drain command and an undrain task file that write a marker file on the controller."""
    converge(fleet, library, [1])
    before = {h: state(h) for h in HOSTS}
    fleet.set_exported([1, 2], library)
    marker = tmp_path / "lb.log"
    undrain = tmp_path / "undrain.yml"
    undrain.write_text(UNDRAIN_TASKS.format(marker=marker))
    hooks = {
        "tfserving_rollout_drain_command": [
            "sh",
            "-c",
            f"echo drain {{{{ inventory_hostname }}}} >>{marker}",
        ],
        "tfserving_rollout_undrain_tasks": str(undrain),
    }
    start = time.monotonic()
    with Load(HOSTS) as load:
        run = fleet.rollout("-e", json.dumps(hooks), run_id="s1-good-v2")
        time.sleep(2)
    TIMINGS["s1_good_under_load"] = time.monotonic() - start
    assert run.rc == 0, run.tail()
    report = fleet.report("s1-good-v2")
    assert report["ok"] and report["hosts"][0]["host"] == CANARY
    image_id = standin_image_id(CANARY)
    for host in HOSTS:
        after = state(host)
        assert after.available == [2], host
        assert after.served_dirs == ["1", "2"], host  # no staging directory left
        assert after.image_id == image_id
        # A model-only update: same container, never restarted.
        assert (after.container_id, after.started) == (
            before[host].container_id,
            before[host].started,
        )
    for entry in report["hosts"]:
        assert (entry["status"], entry["gate"], entry["container"]) == ("updated", "passed", "kept")
        assert entry["before"]["models"] == {MODEL: [1]} and entry["after"]["models"] == {
            MODEL: [1, 2]
        }
    assert load.failures == [], load.failures[:5]
    assert load.sent > 100 and set(load.answers) == {GOOD_ANSWER}, (load.sent, load.answers)
    assert "rollout s1-good-v2: OK" in run.output  # the table is printed
    order = [entry["host"] for entry in report["hosts"]]
    assert marker.read_text().split("\n") == [
        *[line for host in order for line in (f"drain {host}", f"undrain {host}")],
        "",
    ]


def test_sudo_password_from_the_vault_is_used_and_never_printed(
    fleet: Fleet, library: Path, tmp_path: Path
) -> None:
    """The fleet's sudo asks for a password (sandbox_sudo=password), given as a vault-encrypted
    ansible_become_password whose vault password comes from a file: a wrong vault password stops
    the run before any host changes, naming the file; the right one works at -vvv and the
    password appears nowhere in the output."""
    converge(fleet, library, [1, 2])
    probe = docker("exec", "-u", "ops", CANARY, "sudo", "-n", "true", check=False)
    assert probe.returncode != 0 and "password is required" in probe.stderr, probe.stderr
    before = {h: state(h) for h in HOSTS}
    wrong = tmp_path / "wrong-vault-password"
    wrong.write_text("not-the-vault-password\n")
    site = ["-i", str(REPO / "inventories/sandbox"), str(REPO / "site.yml"),
            "-e", f"tfserving_models_export_base={fleet.export_base}"]  # fmt: skip
    bad = playbook(
        "--vault-password-file", str(wrong), "-e", f"@{BECOME_VAULT}", *site, become_args=[]
    )
    assert bad.rc != 0, bad.tail()
    assert "Decryption failed" in bad.output and str(BECOME_VAULT) in bad.output, bad.tail()
    assert "PLAY [" not in bad.output  # stopped before the first play
    assert {h: state(h) for h in HOSTS} == before
    view = subprocess.run(
        [str(BIN / "ansible-vault"), "view", "--vault-password-file", str(VAULT_PASSWORD_FILE),
         str(BECOME_VAULT)],
        capture_output=True, text=True, timeout=60, env=env(),
    )  # fmt: skip
    assert view.returncode == 0, view.stderr
    password = yaml.safe_load(view.stdout)["ansible_become_password"]
    assert len(password) >= 16
    good = playbook(
        "-vvv", "-i", str(REPO / "inventories/sandbox"), str(REPO / "playbooks/models.yml"),
        "-e", f"tfserving_models_export_base={fleet.export_base}",
    )  # fmt: skip
    assert good.rc == 0, good.tail()
    assert good.changed == {h: 0 for h in HOSTS}, good.tail(20)
    assert "BECOME-SUCCESS" in good.output and "sudo" in good.output  # sudo was used
    assert password not in good.output


def test_bad_model_stops_at_the_canary(fleet: Fleet, library: Path) -> None:
    """Scenario 2: a bad version 3 fails the canary's gate, is moved aside there, and no other
    host is touched."""
    converge(fleet, library, [1, 2])
    before = {h: state(h) for h in HOSTS}
    fleet.set_exported([1, 2, 3], library)
    seen: set[str] = set()
    stop = threading.Event()

    def watch_others() -> None:  # bounded by the rollout below
        while not stop.is_set():
            for host in HOSTS[1:]:
                seen.update(in_host(host, "sh", "-c", f"ls -A {MODELS_DIR}", check=False).split())
            time.sleep(0.5)

    watcher = threading.Thread(target=watch_others, daemon=True)
    watcher.start()
    start = time.monotonic()
    try:
        with Load(HOSTS) as load:
            run = fleet.rollout(run_id="s2-bad-v3")
    finally:
        stop.set()
        watcher.join(timeout=30)
        fleet.set_exported([1, 2], library)  # the fix: the bad export is withdrawn
    TIMINGS["s2_bad_canary"] = time.monotonic() - start
    assert run.rc != 0, run.tail()
    assert "failed the smoke test" in run.output and "predict" in run.output
    report = fleet.report("s2-bad-v3")
    assert statuses(report) == {CANARY: "rolled-back", **{h: "not-reached" for h in HOSTS[1:]}}
    canary = report["hosts"][0]
    assert canary["gate"] == "failed" and canary["after"]["models"] == {MODEL: [1, 2]}
    after = state(CANARY)
    assert after.available == [2] and after.served_dirs == ["1", "2"]
    assert "3" in after.retired_dirs  # moved aside, not deleted
    assert after.container_id == before[CANARY].container_id
    deployed = json.loads(in_host(CANARY, "cat", "/etc/tfs-fleet/serving-state.json"))
    assert deployed["current"]["models"] == {MODEL: [1, 2]}  # the state records the rollback
    for host in HOSTS[1:]:
        now = state(host)
        assert now.served_dirs == before[host].served_dirs == ["1", "2"], host
        assert (now.container_id, now.started) == (before[host].container_id, before[host].started)
        assert now.available == [2]
    assert not {"3", ".tfs-fleet-incoming-3"} & seen, seen
    assert load.failures == [], load.failures[:5]


def test_serving_comes_back_after_dockerd_restart_and_a_killed_server(
    fleet: Fleet, library: Path
) -> None:
    """Scenario 5: dockerd restarted on one host, the server process killed on another; the
    restart policy brings both back and a re-run changes nothing."""
    converge(fleet, library, [1, 2])
    image_id = standin_image_id(CANARY)
    dockerd_host, killed_host = HOSTS[1], HOSTS[2]
    start = time.monotonic()
    before_kill = state(killed_host)
    in_host(dockerd_host, "systemctl", "restart", "docker")
    pid = in_host(killed_host, "docker", "inspect", "-f", "{{.State.Pid}}", "tfserving").strip()
    in_host(killed_host, "kill", "-9", pid)
    for host in (dockerd_host, killed_host):
        assert wait_available(host, 2, 120) == [2], f"{host} did not serve again"
    restarted = state(killed_host)
    assert restarted.container_id == before_kill.container_id
    assert restarted.started != before_kill.started  # restarted by the policy, not recreated
    run = fleet.rollout("-e", ONE_BATCH, run_id="s5-rerun")
    TIMINGS["s5_restart_policy"] = time.monotonic() - start
    assert run.rc == 0, run.tail()
    assert run.changed == {"localhost": 0, **{h: 0 for h in HOSTS}}, run.tail(20)
    assert set(statuses(fleet.report("s5-rerun")).values()) == {"unchanged"}
    with Load(HOSTS, max_seconds=5) as load:
        time.sleep(5)
    for host in HOSTS:
        now = state(host)
        assert (now.available, now.served_dirs, now.image_id) == ([2], ["1", "2"], image_id)
    assert load.failures == [] and load.sent > 20, load.failures[:5]


def test_unreachable_host_mid_rollout(fleet: Fleet, library: Path) -> None:
    """Scenario 3: a host of the second batch is unreachable (docker pause) after the canary
    batch; with max_fail_percentage 50 the other host of that batch goes on; a re-run with the
    host back converges."""
    converge(fleet, library, [1, 2])
    fleet.set_exported([1, 2, 4], library)
    victim, other = HOSTS[2], HOSTS[1]
    settings = '{"tfserving_rollout_serial": [1, 2], "tfserving_rollout_max_fail_percentage": 50}'
    record = fleet.runs_dir / "s3-unreachable" / "hosts" / f"{CANARY}.json"
    record.unlink(missing_ok=True)
    start = time.monotonic()
    args = fleet.rollout_args("-e", settings, run_id="s3-unreachable")
    proc = subprocess.Popen(args, cwd=REPO, env=env(), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        wait_for(
            lambda: record.is_file() and json.loads(record.read_text())["status"] == "updated",
            240,
            "the canary batch to finish",
            interval=0.2,
        )
        docker("pause", victim)
        with Load([CANARY, other]) as load:
            output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            kill_group(proc)
        docker("unpause", victim, check=False)
    assert proc.returncode != 0, output[-3000:]
    report = fleet.report("s3-unreachable")
    assert statuses(report) == {CANARY: "updated", other: "updated", victim: "unreachable"}
    assert f"{victim} is unreachable" in output
    assert available_versions(victim) == [2] and "4" not in state(victim).served_dirs
    for host in (CANARY, other):
        assert available_versions(host) == [4], host
    assert load.failures == [], load.failures[:5]
    # The re-run in one batch: the host that missed the update catches up, the others are kept.
    rerun = fleet.rollout("-e", ONE_BATCH, run_id="s3-rerun")
    TIMINGS["s3_unreachable"] = time.monotonic() - start
    assert rerun.rc == 0, rerun.tail()
    assert statuses(fleet.report("s3-rerun")) == {
        CANARY: "unchanged",
        other: "unchanged",
        victim: "updated",
    }
    for host in HOSTS:
        now = state(host)
        assert now.available == [4] and now.served_dirs == ["1", "2", "4"], host


def test_sync_killed_mid_transfer_never_serves_a_partial_version(
    fleet: Fleet, library: Path, tmp_path: Path
) -> None:
    """Scenario 4: ansible-playbook killed while rsync (throttled) copies a 24 MB version 5 to
    the canary: no numeric directory, the server never reports version 5; a re-run completes."""
    converge(fleet, library, [1, 2, 4])
    fleet.set_exported([1, 2, 4, 5], library)
    throttle = tmp_path / "bin"
    throttle.mkdir()
    rsync = throttle / "rsync"
    rsync.write_text('#!/bin/sh\nexec /usr/bin/rsync --bwlimit=1500 "$@"\n')
    rsync.chmod(0o755)
    staging = f"{MODELS_DIR}/.tfs-fleet-incoming-5"
    seen_versions: set[int] = set()
    stop = threading.Event()

    def watch_status() -> None:
        while not stop.is_set():
            seen_versions.update(available_versions(CANARY, timeout=2))
            time.sleep(0.3)

    start = time.monotonic()
    args = fleet.rollout_args(run_id="s4-killed")
    throttled = {**env(), "PATH": f"{throttle}:{os.environ['PATH']}"}
    proc = subprocess.Popen(args, cwd=REPO, env=throttled, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    watcher = threading.Thread(target=watch_status, daemon=True)
    watcher.start()
    try:

        def staged_bytes() -> int:
            out = in_host(
                CANARY, "sh", "-c", f"du -sb {staging} 2>/dev/null | cut -f1", check=False
            )
            return int(out.strip() or 0)

        wait_for(lambda: staged_bytes() > 2_000_000, 240, "the transfer to start", interval=0.2)
    finally:
        kill_group(proc)
    partial = staged_bytes()
    time.sleep(4)  # two poll periods of the server
    stop.set()
    watcher.join(timeout=30)
    canary = state(CANARY)
    assert "5" not in canary.served_dirs and ".tfs-fleet-incoming-5" in canary.served_dirs
    assert 0 < partial < 24 * 1024 * 1024
    assert 5 not in seen_versions and canary.available == [4], seen_versions
    rerun = fleet.rollout("-e", ONE_BATCH, run_id="s4-rerun")
    TIMINGS["s4_killed_sync"] = time.monotonic() - start
    assert rerun.rc == 0, rerun.tail()
    for host in HOSTS:
        now = state(host)
        assert now.available == [5], host
        assert now.served_dirs == ["2", "4", "5"], host  # staging published, 1 retired
        assert "1" in now.retired_dirs


BAD_IMAGE = "tfsf-rollout-badimage:latest"


@pytest.fixture
def bad_image(tmp_path: Path) -> Iterator[Path]:
    """A serving image that starts and never serves (sleep on the 2 MB probe image), as a
    `docker save` archive on the controller: the image step ships it like any new image."""
    build = subprocess.run(
        ["docker", "build", "-q", "-t", BAD_IMAGE, "-"],
        input='FROM tfs-fleet/probe:latest\nENTRYPOINT ["sh", "-c", "sleep 3600", "bad-serving"]\n',
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    archive = tmp_path / "bad-image.tar"
    docker("save", "-o", str(archive), BAD_IMAGE)
    yield archive
    docker("image", "rm", BAD_IMAGE, check=False)


def test_bad_image_is_rolled_back_to_the_previous_image_id(
    fleet: Fleet, library: Path, bad_image: Path
) -> None:
    """A new image that never serves, shipped by the image step (archive source): the canary's
    container is recreated with it, fails the gate, and is recreated again from the previous
    image ID; no other host is touched."""
    converge(fleet, library, fleet.exported() or [1, 2])
    newest = max(fleet.exported())
    before = {h: state(h) for h in HOSTS}
    start = time.monotonic()
    run = fleet.rollout(
        "-e", f"tfserving_image_archive_path={bad_image}",
        "-e", f"tfserving_image_archive_ref={BAD_IMAGE}",
        "-e", "tfserving_verify_wait_seconds=15",
        run_id="s6-bad-image",
    )  # fmt: skip
    TIMINGS["s6_bad_image"] = time.monotonic() - start
    assert run.rc != 0, run.tail()
    report = fleet.report("s6-bad-image")
    assert statuses(report) == {CANARY: "rolled-back", **{h: "not-reached" for h in HOSTS[1:]}}
    canary = report["hosts"][0]
    bad_id = in_host(CANARY, "docker", "image", "inspect", "-f", "{{.Id}}", BAD_IMAGE).strip()
    assert canary["gate"] == "failed" and "status" in canary["detail"], canary["detail"]
    after = state(CANARY)
    assert after.image_id == before[CANARY].image_id != bad_id
    assert after.container_id != before[CANARY].container_id  # recreated twice
    assert wait_available(CANARY, newest) == [newest]
    deployed = json.loads(in_host(CANARY, "cat", "/etc/tfs-fleet/serving-state.json"))
    assert deployed["current"]["image_id"] == before[CANARY].image_id
    assert deployed["previous"]["image_id"] == bad_id
    for host in HOSTS[1:]:
        now = state(host)
        assert (now.container_id, now.started) == (before[host].container_id, before[host].started)
        assert now.available == [newest]
        assert docker("exec", host, "docker", "image", "inspect", BAD_IMAGE, check=False).returncode
