"""Users' own SavedModels on the fleet (issue 22), on the 5 hosts test_2 set up (3 serving hosts,
the LB host, the monitoring host), over SSH as `ops` with the sudo password from the vault.

Three models are written the way teams write them, with no tfs_fleet manifest
(tests/usermodels/make_user_models.py): the runbook's TF1 `SavedModelBuilder` export as text with
a tf.Example parse graph (seed_tf1), a Keras 3 `model.export()` (keras3, with a golden file named
by its `golden:` key) and a TF1 model in the shape of TF Serving's mnist tutorial (mnist_tf1: a
classify signature on serialized tf.Examples beside the numeric `predict_images`).

1. site.yml deploys all three as they are; the fleet table shows each check that ran, and the
   classify signature NOT RUN with its reason (no warmup records yet);
2. mnist_tf1 version 2 with warmup records rolls out through the gate, where the classify
   signature now passes through the warmup replay;
3. three broken versions, exported together, are stopped at the canary and rolled back, each
   named by the smoke test, nothing deleted: one that answers NaN, one whose outputs do not match
   its own signature's shapes, and one that lacks a signature the previous version served; under
   load through the LB's front door, with no failed request (the LB's bad-rollout case).

The re-run of site.yml over the same models (changed=0, no model file hashed: the hash cache) is
test_5_ansible_runner.py's, after all of this.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
import time
import urllib.request

import pytest
from fleet import (
    CANARY,
    FRONT,
    HOSTS,
    Fleet,
    Run,
    admin_states,
    all_up,
    host_versions,
    in_host,
    playbook,
    rest_port,
    servers_status,
    wait_until,
)
from fleet_users import (
    MODELS_VAR,
    ONE_BATCH,
    RETIRED,
    SERVED,
    SMOKE_GATE_ONLY,
    USER_MODELS,
    take,
)

from tfs_fleet.load import Load

pytestmark = [pytest.mark.docker, pytest.mark.fleet]


def served_dirs(host: str, model: str) -> list[str]:
    return host_versions(host, f"{SERVED}/{model}")


def retired_dirs(host: str, model: str) -> list[str]:
    return host_versions(host, f"{RETIRED}/{model}")


def available(host: str, model: str) -> list[int]:
    url = f"http://127.0.0.1:{rest_port(host)}/v1/models/{model}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            doc = json.load(response)
    except OSError:
        return []
    return sorted(
        int(v["version"]) for v in doc.get("model_version_status", []) if v["state"] == "AVAILABLE"
    )


def rows(output: str, model: str) -> list[str]:
    """The fleet table of one model as the verify role prints it (once per verify run), with
    its whitespace collapsed: the YAML callback folds and quotes long lines."""
    flat = " ".join(output.split())
    parts = re.split(r"model (\S+?):", flat)
    # parts: [before, name1, text1, name2, text2, ...]; a text ends where the task output does.
    return [
        text.split("TASK [", 1)[0]
        for name, text in zip(parts[1::2], parts[2::2], strict=True)
        if name == model
    ]


def has_row(output: str, model: str, check: str, result: str) -> bool:
    pattern = re.compile(rf"\s{re.escape(check)} {re.escape(result)}(\s|$)")
    return any(pattern.search(" " + table) for table in rows(output, model))


def site(users: Fleet, *extra: str) -> Run:
    from tfs_bench.fleet import sandbox_playbook_args

    args = sandbox_playbook_args("site.yml", users.export_base, "-e", MODELS_VAR, *extra)
    return playbook(*args, timeout=2400)


def test_site_deploys_user_models_as_they_are(users: Fleet) -> None:
    run = site(users)
    assert run.rc == 0, run.tail()
    for host in HOSTS:
        for model in USER_MODELS:
            assert served_dirs(host, model) == ["1"], (host, model)
            assert available(host, model) == [1], (host, model)
            listing = in_host(host, "find", f"{SERVED}/{model}/1", "-name", "tfs_fleet_*")
            assert listing.strip() == "", listing  # nothing of ours inside the served version
    # Nothing was written into the user's export directory.
    for model in USER_MODELS:
        assert not list((users.export_base / model).rglob("tfs_fleet_*")), model
    out = run.output
    for model in USER_MODELS:
        assert has_row(out, model, "status", "PASS"), rows(out, model)
        assert has_row(out, model, "signatures", "PASS"), rows(out, model)
    assert has_row(out, "seed_tf1", "predict serving_default", "PASS"), rows(out, "seed_tf1")
    assert has_row(out, "keras3", "golden", "PASS"), rows(out, "keras3")
    assert has_row(out, "mnist_tf1", "predict predict_images", "PASS"), rows(out, "mnist_tf1")
    # The classify signature takes serialized tf.Examples: no warmup, no golden file, so it
    # did not run, and the table says so with its reason.
    assert has_row(out, "mnist_tf1", "predict serving_default", "NOT RUN"), rows(out, "mnist_tf1")
    assert any(
        re.search(
            r"predict serving_default NOT RUN .{0,130}?(warmup|golden|serialized|Example)", table
        )
        for table in rows(out, "mnist_tf1")
    ), rows(out, "mnist_tf1")


def test_new_user_version_passes_the_gate(users: Fleet) -> None:
    take(users.export_base, "mnist_tf1-2-warmup", "mnist_tf1", 2)
    run = users.rollout(
        "-e", MODELS_VAR, "-e", ONE_BATCH, "-e", SMOKE_GATE_ONLY, run_id="user-mnist-v2"
    )  # fmt: skip
    assert run.rc == 0, run.tail()
    for host in HOSTS:
        assert available(host, "mnist_tf1") == [2], host
        assert {"1", "2"} <= set(served_dirs(host, "mnist_tf1")), host
    out = run.output
    assert has_row(out, "mnist_tf1", "warmup", "PASS"), rows(out, "mnist_tf1")
    assert has_row(out, "mnist_tf1", "predict serving_default", "PASS"), rows(out, "mnist_tf1")


# model, the broken variant, the version served before, the broken version
BROKEN = [
    ("keras3", "nan", 1, 2),
    ("seed_tf1", "bad_shape", 1, 2),
    ("mnist_tf1", "no_signature", 2, 3),
]


def test_broken_user_versions_stop_at_the_canary(users: Fleet) -> None:
    """The three broken versions go out in one rollout, under gRPC and REST load through the
    load balancer's front door: the canary's gate fails each of them (its table names every
    model with a FAIL) while the canary is drained, the canary is rolled back to the versions it
    served and undrained, the other hosts are not reached, nothing is deleted, and no request
    through the front door fails (test_2's LB case of a bad rollout)."""
    models = [model for model, *_ in BROKEN]
    before = {(h, m): (served_dirs(h, m), available(h, m)) for h in HOSTS for m in models}
    for model, variant, _, version in BROKEN:
        take(users.export_base, f"{model}-{version}-{variant}", model, version)
    run_id = f"user-broken-{time.time_ns()}"
    assert wait_until(all_up, 120), servers_status()
    try:
        with Load(FRONT) as load:
            time.sleep(5)
            load.mark("during")
            run = users.rollout("-e", MODELS_VAR, "-e", SMOKE_GATE_ONLY, run_id=run_id)
            load.mark("after")
            time.sleep(5)
    finally:
        # The fix: the broken exports are withdrawn.
        for model, _, _, version in BROKEN:
            subprocess.run(["rm", "-rf", str(users.export_base / model / str(version))], check=True)
    assert run.rc != 0, run.tail()
    assert "failed the smoke test" in run.output, run.tail()
    report = load.report()
    assert report["failed"] == 0, report
    assert report["phases"]["during"]["grpc"]["ok"] > 50, report
    assert wait_until(all_up, 60), servers_status()
    assert set(admin_states().values()) == {0}, admin_states()  # the canary is back in service
    out = run.output
    # The canary's failure names each broken model ("<model>: <check>: <detail>"), and each
    # model's table has a failed row.
    failure = " ".join(out.split()).split("failed the smoke test:", 1)[1][:6000]
    for model in models:
        assert f"{model}: " in failure, (model, failure)
        assert any(" FAIL" in table for table in rows(out, model)), (model, rows(out, model))
    status = {entry["host"]: entry["status"] for entry in users.report(run_id)["hosts"]}
    assert status == {CANARY: "rolled-back", **{h: "not-reached" for h in HOSTS[1:]}}, status
    for model, _, previous, version in BROKEN:
        assert available(CANARY, model) == [previous], model
        # Nothing deleted: the broken version is kept on the canary, moved aside (not served).
        assert str(version) in retired_dirs(CANARY, model), (model, retired_dirs(CANARY, model))
        assert str(version) not in served_dirs(CANARY, model), (model, served_dirs(CANARY, model))
        for host in HOSTS[1:]:
            assert (served_dirs(host, model), available(host, model)) == before[(host, model)]


def sha256_in(host: str, path: str) -> str:
    return in_host(host, "sha256sum", path).split()[0]


def test_drifted_published_files_are_resynced_from_the_controller(users: Fleet) -> None:
    """Issue 23 item 1: a byte flipped in a published file (size and mtime put back) on one
    host and an extra file in a published version on another are noticed by the next run (the
    stat check: ctime moved), re-synced from the controller, verified and swapped in while the
    version stays served, and counted in the drift metrics; the third host is left alone."""
    from tfs_bench.fleet import sandbox_playbook_args

    flipped, extended, untouched = HOSTS[1], HOSTS[2], HOSTS[0]
    version_dir = f"{SERVED}/seed_tf1/1"
    data = in_host(flipped, "sh", "-c", f"ls {version_dir}/variables/variables.data-*").strip()
    controller = users.export_base / "seed_tf1" / "1" / data.split(f"{version_dir}/", 1)[1]
    want = hashlib.sha256(controller.read_bytes()).hexdigest()
    flip = (
        "import os, sys\n"
        "p = sys.argv[1]; st = os.stat(p)\n"
        "with open(p, 'r+b') as f:\n"
        "    b = f.read(1); f.seek(0); f.write(bytes([b[0] ^ 0xFF]))\n"
        "os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))\n"
    )
    in_host(flipped, "python3", "-c", flip, data)
    assert sha256_in(flipped, data) != want
    in_host(extended, "sh", "-c", f"echo stale > {version_dir}/variables/stale.bin")
    missing: list[tuple[str, float]] = []
    stop = threading.Event()

    def watch() -> None:  # bounded by the run below
        while not stop.is_set():
            for host in (flipped, extended):
                if 1 not in available(host, "seed_tf1"):
                    missing.append((host, time.monotonic()))
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = playbook(
            *sandbox_playbook_args("playbooks/models.yml", users.export_base, "-e", MODELS_VAR),
            timeout=1200,
        )
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert run.rc == 0, run.tail()
    assert run.changed[untouched] == 0, run.changed
    assert run.changed[flipped] > 0 and run.changed[extended] > 0, run.changed
    flat = " ".join(run.output.split())
    assert "model seed_tf1 version 1 on this host no longer matches the controller" in flat
    assert sha256_in(flipped, data) == want
    assert in_host(extended, "ls", f"{version_dir}/variables").split().count("stale.bin") == 0
    assert not missing, missing  # served all along (the verified copy was swapped in)
    for host in (flipped, extended):
        record = json.loads(in_host(host, "cat", f"{SERVED}/seed_tf1/.tfs-fleet-published-1.json"))
        assert record["repairs"] == 1, (host, record)
        prom = in_host(
            host, "cat", "/var/lib/prometheus/node-exporter/tfs_fleet_models_integrity.prom"
        )
        assert 'tfs_fleet_model_version_repairs_total{model="seed_tf1",version="1"} 1' in prom, prom
