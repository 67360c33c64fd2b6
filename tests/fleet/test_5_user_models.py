"""Users' own SavedModels on the fleet (issue 22), on the 5 hosts test_2 set up (3 serving hosts,
the LB host, the monitoring host), over SSH as `ops` with the sudo password from the vault.

Three models are written the way teams write them, with no tfs_fleet manifest
(tests/usermodels/make_user_models.py): the runbook's TF1 `SavedModelBuilder` export as text with
a tf.Example parse graph (seed_tf1), a Keras 3 `model.export()` (keras3, with a golden file named
by its `golden:` key) and a TF1 model in the shape of TF Serving's mnist tutorial (mnist_tf1: a
classify signature on serialized tf.Examples beside the numeric `predict_images`).

1. site.yml deploys all three as they are; the fleet table shows each check that ran, and the
   classify signature NOT RUN with its reason (no warmup records yet);
2. a re-run changes nothing and hashes no model file on the controller (the hash cache);
3. mnist_tf1 version 2 with warmup records rolls out through the gate, where the classify
   signature now passes through the warmup replay;
4. three broken versions are each stopped at the canary and rolled back, nothing deleted: one
   that answers NaN, one whose outputs do not match its own signature's shapes, and one that
   lacks a signature the previous version served.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from fleet import BIN, CANARY, HOSTS, REPO, Fleet, FrontDoor, Run, env, in_host, playbook, rest_port

pytestmark = [pytest.mark.docker, pytest.mark.fleet]

MAKER = REPO / "tests/usermodels/make_user_models.py"
USER_MODELS = ("seed_tf1", "keras3", "mnist_tf1")
# The team adds its models beside the one the fleet already serves (half_plus_two, which the
# load balancer's health check asks about until the LB play takes the new list).
MODELS_LIST = [
    {"name": "half_plus_two"},
    {"name": "seed_tf1"},
    {"name": "keras3", "golden": "golden.json"},
    {"name": "mnist_tf1"},
]
MODELS_VAR = json.dumps({"tfserving_models_list": MODELS_LIST})
ONE_BATCH = '{"tfserving_rollout_serial": [1, "100%"]}'
SERVED = "/srv/tfserving/models"
RETIRED = "/srv/tfserving/retired"
# Ansible's YAML output may fold a long message: the words may stand on several lines.
SCAN = re.compile(
    r"model sources:.*?(\d+)\s+wanted:\s+(\d+)\s+file\(s\)\s+hashed\s+\((\d+)\s+bytes\),"
    r"\s+(\d+)\s+from\s+the\s+cache",
    re.DOTALL,
)


def make(export: Path, *args: str) -> None:
    proc = subprocess.run(
        [str(BIN / "python"), str(MAKER), str(export), *args],
        capture_output=True, text=True, env=env(), timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def write_golden(export: Path) -> None:
    """keras3's golden file, from the maker's own expected answers (numpy, not the server)."""
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(MAKER.parent)!r})\n"
        "import make_user_models as m\n"
        "g = m.golden('keras3')\n"
        "doc = {'requests': [{'signature': g['signature'],\n"
        "  'inputs': {k: v.tolist() for k, v in g['inputs'].items()},\n"
        "  'outputs': {k: v.tolist() for k, v in g['expected_outputs'].items()},\n"
        "  'rtol': 1e-4, 'atol': 1e-5}]}\n"
        "print(json.dumps(doc))\n"
    )
    proc = subprocess.run(
        [str(BIN / "python"), "-c", script], capture_output=True, text=True, env=env(), timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (export / "keras3" / "golden.json").write_text(proc.stdout)


def served_dirs(host: str, model: str) -> list[str]:
    out = in_host(host, "sh", "-c", f"ls -A {SERVED}/{model} 2>/dev/null", check=False)
    return sorted(out.split())


def retired_dirs(host: str, model: str) -> list[str]:
    out = in_host(host, "sh", "-c", f"ls -A {RETIRED}/{model} 2>/dev/null", check=False)
    return sorted(out.split())


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


@pytest.fixture(scope="module")
def users(front_door: FrontDoor, tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    work = tmp_path_factory.mktemp("user-models")
    export = work / "export"
    make(export, "--models", *USER_MODELS, "--version", "1")
    write_golden(export)
    shutil.copytree(front_door.export / "half_plus_two", export / "half_plus_two")
    return Fleet(export, work / "runs")


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


def test_rerun_changes_nothing_and_hashes_nothing(users: Fleet) -> None:
    run = site(users)
    assert run.rc == 0, run.tail()
    assert set(HOSTS) <= set(run.changed), run.tail()
    assert run.changed == {h: 0 for h in run.changed}, run.tail()
    # The models role's scan line: nothing hashed, every file of the wanted versions from the
    # hash cache (no model file opened on the controller).
    scans = SCAN.findall(run.output)
    assert scans, run.tail()
    for wanted, hashed, hashed_bytes, cached in scans:
        assert int(wanted) > 0 and int(cached) > 0, scans
        assert (int(hashed), int(hashed_bytes)) == (0, 0), scans


def test_new_user_version_passes_the_gate(users: Fleet) -> None:
    make(users.export_base, "--models", "mnist_tf1", "--version", "2", "--warmup")
    run = users.rollout("-e", MODELS_VAR, "-e", ONE_BATCH, run_id="user-mnist-v2")
    assert run.rc == 0, run.tail()
    for host in HOSTS:
        assert available(host, "mnist_tf1") == [2], host
        assert {"1", "2"} <= set(served_dirs(host, "mnist_tf1")), host
    out = run.output
    assert has_row(out, "mnist_tf1", "warmup", "PASS"), rows(out, "mnist_tf1")
    assert has_row(out, "mnist_tf1", "predict serving_default", "PASS"), rows(out, "mnist_tf1")


@pytest.mark.parametrize(
    ("model", "variant", "previous", "version"),
    [
        ("keras3", "nan", 1, 2),
        ("seed_tf1", "bad_shape", 1, 2),
        ("mnist_tf1", "no_signature", 2, 3),
    ],
)
def test_broken_user_version_stops_at_the_canary(
    users: Fleet, model: str, variant: str, previous: int, version: int
) -> None:
    before = {h: (served_dirs(h, model), available(h, model)) for h in HOSTS}
    make(users.export_base, "--models", model, "--version", str(version), "--variant", variant)
    run_id = f"user-{model}-{variant}-{time.time_ns()}"
    try:
        run = users.rollout("-e", MODELS_VAR, run_id=run_id)
    finally:
        # The fix: the broken export is withdrawn.
        subprocess.run(["rm", "-rf", str(users.export_base / model / str(version))], check=True)
    assert run.rc != 0, run.tail()
    assert "failed the smoke test" in run.output, run.tail()
    report = users.report(run_id)
    status = {entry["host"]: entry["status"] for entry in report["hosts"]}
    assert status == {CANARY: "rolled-back", **{h: "not-reached" for h in HOSTS[1:]}}, status
    assert available(CANARY, model) == [previous]
    # Nothing deleted: the broken version is kept on the canary, moved aside (not served).
    assert str(version) in retired_dirs(CANARY, model), retired_dirs(CANARY, model)
    assert str(version) not in served_dirs(CANARY, model), served_dirs(CANARY, model)
    for host in HOSTS[1:]:
        assert (served_dirs(host, model), available(host, model)) == before[host], host
