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


def users_fleet(front_door: FrontDoor, work: Path) -> Fleet:
    """The three users' models at version 1 (no manifest of ours) beside the half_plus_two the
    fleet already serves, in an export base of their own."""
    export = work / "export"
    make(export, "--models", *USER_MODELS, "--version", "1")
    write_golden(export)
    shutil.copytree(front_door.export / "half_plus_two", export / "half_plus_two")
    return Fleet(export, work / "runs")
