"""The labelled deploy through the roles: tfserving_models on a throwaway systemd test host,
and the stand-in image (built from this tree) run with the serving role's flags in the test
host's network namespace, on the same models directory.

TF Serving sets version labels before it loads any model (server_core.cc ReloadConfig ->
UpdateModelVersionLabelMap before AddModelsViaModelConfigList), so the roles must (1) start the
server with --allow_version_labels_for_unavailable_models (a start reads every label as new)
and (2) move a label onto a new version only once it is AVAILABLE (g3doc/serving_config.md).
Cases: a first start with labels, a rollout that moves the canary label onto a new version, a
restart with labels. The stand-in follows server_core.cc, so each fails on the old roles.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from standin_helpers import REPO, http

from helpers import (
    SYSTEMD_FLAGS,
    TEST_IMAGE,
    ansible_playbook,
    docker,
    require_docker_image,
    wait_for,
    write_inventory,
)

pytestmark = pytest.mark.docker
IMAGE = os.environ.get("TFS_FLEET_STANDIN_IMAGE", "tfs-fleet/serving-standin")
PLAYBOOK = Path(__file__).parent / "role_labels" / "playbook.yml"
MODEL = "half_plus_two"


class Fleet:
    def __init__(self, host: str, inventory: Path, export: Path, served: Path, rest: str) -> None:
        self.host, self.inventory, self.export, self.served = host, inventory, export, served
        self.url = f"http://127.0.0.1:{rest}"
        self.server = ""

    def deploy(self, versions: list[int], labels: dict[str, int]) -> subprocess.CompletedProcess:
        models = [
            {"name": MODEL, "version_policy": "specific", "versions": versions, "labels": labels}
        ]
        extra = {
            "tfserving_models_list": models,
            "tfserving_models_export_base": str(self.export),
            "tfserving_model_config_poll_wait_seconds": 1,
            "tfserving_file_system_poll_wait_seconds": 1,
            "tfserving_models_label_wait_seconds": 120,
            # The stand-in here gets only the models directory, not the config directory that
            # holds monitoring.config: metrics are not what this test is about.
            "tfserving_monitoring_path": "",
        }
        return ansible_playbook(PLAYBOOK, self.inventory, "-e", json.dumps(extra), timeout=900)

    def start_server(self, image: str) -> None:
        handed = json.loads(docker("exec", self.host, "cat", "/tmp/tfserving-args.json").stdout)
        env = [f"--env={k}={v}" for k, v in handed["env"].items()]
        self.server = f"tfsf-labels-standin-{uuid.uuid4().hex[:8]}"
        docker(
            "run", "-d", "--name", self.server, f"--network=container:{self.host}",
            "-v", f"{self.served}:/models:ro", *env, image, *handed["args"],
        )  # fmt: skip

    def logs(self) -> str:
        result = docker("logs", self.server, check=False)
        return result.stdout + result.stderr

    def running(self) -> bool:
        state = docker("inspect", "-f", "{{.State.Running}}", self.server, check=False)
        return state.stdout.strip() == "true"

    def label_answer(self, label: str) -> tuple[int, object]:
        """(status, body) of the metadata through a label; (0, error) while nothing answers."""
        if not self.running():
            raise AssertionError(f"the stand-in exited:\n{self.logs()[-4000:]}")
        try:
            return http("GET", f"{self.url}/v1/models/{MODEL}/labels/{label}/metadata")
        except OSError as exc:
            return 0, repr(exc)

    def label_version(self, label: str) -> str:
        status, body = self.label_answer(label)
        return body["model_spec"]["version"] if status == 200 else ""  # type: ignore[index]

    def wait_label(self, label: str, version: str, timeout: float, what: str) -> None:
        answers: list[tuple[int, object]] = []

        def reached() -> bool:
            answers.append(self.label_answer(label))
            status, body = answers[-1]
            return status == 200 and body["model_spec"]["version"] == version  # type: ignore[index]

        try:
            wait_for(reached, timeout, what, interval=1.0)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\nlast answers: {answers[-3:]}\nserver log:\n{self.logs()[-3000:]}"
            ) from None


def task_output(output: str, name: str) -> str:
    """The output of the task whose name starts with `name` (empty when it did not run)."""
    for section in output.split("TASK [")[1:]:
        if section.split(" : ", 1)[-1].startswith(name):
            return section
    return ""


@pytest.fixture(scope="module")
def image() -> str:
    env = {**os.environ, "PIP": os.environ.get("PIP", f"{sys.executable} -m pip")}
    result = subprocess.run(
        [str(REPO / "scripts" / "build_standin_image.sh")],
        capture_output=True, text=True, timeout=900, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"image build failed:\n{result.stderr[-3000:]}"
    return f"{IMAGE}:latest"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, image: str) -> Iterator[Fleet]:
    require_docker_image()
    root = Path(tmp_path_factory.mktemp("role-labels"))
    export, served = root / "export", root / "served"
    served.mkdir()
    subprocess.run(
        [sys.executable, str(REPO / "tests" / "rollout" / "make_models.py"), str(export),
         "good:1", "good:2", "good:3"],
        check=True, capture_output=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    host = f"tfsf-test-labels-{uuid.uuid4().hex[:8]}"
    docker(
        "run", "-d", "--name", host, *SYSTEMD_FLAGS, "-p", "127.0.0.1::8501",
        "-v", f"{served}:/srv/tfserving/models", TEST_IMAGE, "/lib/systemd/systemd",
    )  # fmt: skip
    fleet = None
    try:
        rest = docker("port", host, "8501").stdout.split()[0].rsplit(":", 1)[1]
        inventory = write_inventory(root / "hosts.yml", [host])
        fleet = Fleet(host, inventory, export, served, rest)
        yield fleet
    finally:
        if fleet is not None and fleet.server:
            docker("rm", "-f", fleet.server, check=False)
        docker("rm", "-f", "-v", host, check=False)


def test_first_deploy_with_labels_starts(fleet: Fleet, image: str) -> None:
    result = fleet.deploy([1, 2], {"stable": 1, "canary": 2})
    assert result.returncode == 0, result.stdout[-4000:]
    fleet.start_server(image)
    fleet.wait_label("canary", "2", 300, "canary on version 2")
    assert fleet.label_version("stable") == "1"


def test_rollout_moves_the_canary_label_onto_a_new_version(fleet: Fleet) -> None:
    result = fleet.deploy([1, 2, 3], {"stable": 2, "canary": 3})
    assert result.returncode == 0, result.stdout[-4000:]
    step1 = task_output(result.stdout, "Write models.config, step 1")
    assert "changed: [" in step1, f"the label move must go in two writes:\n{step1}"
    fleet.wait_label("canary", "3", 60, "canary on version 3")
    assert fleet.label_version("stable") == "2"
    assert "failed to ReloadConfig" not in fleet.logs(), fleet.logs()[-4000:]
    again = fleet.deploy([1, 2, 3], {"stable": 2, "canary": 3})
    assert again.returncode == 0, again.stdout[-4000:]
    assert "skipping: [" in task_output(again.stdout, "Write models.config, step 1")
    assert "changed=0" in again.stdout.split("PLAY RECAP")[-1], again.stdout[-3000:]


def test_restart_with_labels(fleet: Fleet) -> None:
    docker("restart", "-t", "10", fleet.server)
    fleet.wait_label("canary", "3", 300, "canary after the restart")
    assert fleet.label_version("stable") == "2"
