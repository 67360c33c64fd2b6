"""Users' own SavedModels for the fleet stage (issue 22): the models, the list that names them and
the helpers that write them, shared by test_4_user_models.py (site.yml, the gate, broken
versions) and test_5_ansible_runner.py (the re-run that must change and hash nothing)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from fleet import BIN, REPO, Fleet, FrontDoor, env

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
# test_4's rollouts are judged by the smoke gate on the users' models; the metric gate (a soak of
# 60 s a batch by default, with no load here) is test_3's subject, so it is left out.
SMOKE_GATE_ONLY = '{"tfserving_rollout_prometheus_url": ""}'
SERVED = "/srv/tfserving/models"
RETIRED = "/srv/tfserving/retired"
# Ansible's YAML output may fold a long message: the words may stand on several lines.
SCAN = re.compile(
    r"model sources:.*?(\d+)\s+wanted:\s+(\d+)\s+file\(s\)\s+hashed\s+\((\d+)\s+bytes\),"
    r"\s+(\d+)\s+from\s+the\s+cache",
    re.DOTALL,
)


# Every export test_4 uses, written at once by one process (TensorFlow imported once, not once a
# version): name in the library -> the maker's arguments. The tests copy them into the export
# base when their step comes (take()).
LIBRARY = {
    "v1": ["--models", *USER_MODELS, "--version", "1"],
    "mnist_tf1-2-warmup": ["--models", "mnist_tf1", "--version", "2", "--warmup"],
    "keras3-2-nan": ["--models", "keras3", "--version", "2", "--variant", "nan"],
    "seed_tf1-2-bad_shape": ["--models", "seed_tf1", "--version", "2", "--variant", "bad_shape"],
    "mnist_tf1-3-no_signature": [
        "--models", "mnist_tf1", "--version", "3", "--variant", "no_signature",
    ],
}  # fmt: skip


def make_library(library: Path) -> None:
    """Writes every entry of LIBRARY under library/<name>/ and keras3's golden file (from the
    maker's own expected answers: numpy, not the server) as library/keras3-golden.json."""
    jobs = {name: [str(library / name), *args] for name, args in LIBRARY.items()}
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(MAKER.parent)!r})\n"
        "import make_user_models as m\n"
        "for argv in json.loads(sys.argv[1]).values():\n"
        "    assert m.main(argv) == 0, argv\n"
        "g = m.golden('keras3')\n"
        "doc = {'requests': [{'signature': g['signature'],\n"
        "  'inputs': {k: v.tolist() for k, v in g['inputs'].items()},\n"
        "  'outputs': {k: v.tolist() for k, v in g['expected_outputs'].items()},\n"
        "  'rtol': 1e-4, 'atol': 1e-5}]}\n"
        f"open({str(library / 'keras3-golden.json')!r}, 'w').write(json.dumps(doc))\n"
    )
    proc = subprocess.run(
        [str(BIN / "python"), "-c", script, json.dumps(jobs)],
        capture_output=True, text=True, env=env(), timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def take(export: Path, name: str, model: str, version: int) -> None:
    """Copies one version of the library's entry `name` into the export base (as a team's
    pipeline would write it there)."""
    library = export.parent / "library"
    shutil.copytree(library / name / model / str(version), export / model / str(version))


def users_fleet(front_door: FrontDoor, work: Path) -> Fleet:
    """The three users' models at version 1 (no manifest of ours) beside the half_plus_two the
    fleet already serves, in an export base of their own (work/export; work/library holds the
    versions the later steps add)."""
    export, library = work / "export", work / "library"
    make_library(library)
    for model in USER_MODELS:
        take(export, "v1", model, 1)
    shutil.copy(library / "keras3-golden.json", export / "keras3" / "golden.json")
    shutil.copytree(front_door.export / "half_plus_two", export / "half_plus_two")
    return Fleet(export, work / "runs")
