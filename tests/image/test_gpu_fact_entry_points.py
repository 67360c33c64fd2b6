"""The GPU fact reaches the image role through every entry point (issue 17, defect 2).

A GPU host whose nvidia_driver role ran in an earlier run has only the fact it recorded,
/etc/ansible/facts.d/nvidia_driver.fact. The image role must pick the GPU tag from it when
run (a) alone (`playbooks/image.yml`), (b) through `site.yml --tags serving` (the GPU play is
skipped) and (c) from a play with `gather_facts: false`, as the rollout is. Each run is in
check mode on a throwaway systemd container; it stops where the role would install the
docker SDK (the container has no package lists), after the decision this test reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO, docker, playbook_report, systemd_container, write_inventory

pytestmark = pytest.mark.docker

FACT = {
    "gpu_present": True,
    "installed_version": "580.65.06",
    "branch": "580",
    "gpus_pci": [{"address": "0000:18:00.0", "device": "0x2330", "class": "0x030200"}],
}
DECISION = "Report the GPU fact and the image flavour"


@pytest.fixture(scope="module")
def gpu_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with systemd_container("gpu17-image") as name:
        docker("exec", name, "mkdir", "-p", "/etc/ansible/facts.d")
        docker(
            "exec", name, "sh", "-c",
            f"printf '%s\\n' '{json.dumps(FACT)}' >/etc/ansible/facts.d/nvidia_driver.fact",
        )  # fmt: skip
        inventory = write_inventory(tmp_path_factory.mktemp("inv") / "hosts.yml", [name])
        yield name, inventory


def _decision(playbook: str, inventory: Path, host: str, *extra: str) -> dict[str, Any]:
    _, report = playbook_report(
        REPO / playbook,
        inventory,
        "--check",
        "-e",
        "tfserving_image_version=2.19.0",
        *extra,
        timeout=300,
    )
    for play in report["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].endswith(DECISION) and host in task["hosts"]:
                return task["hosts"][host]
    raise AssertionError(f"{playbook}: the image role made no GPU decision on {host}")


def _assert_gpu_tag(result: dict[str, Any], host: str) -> None:
    assert result["msg"] == (
        f"{host}: GPU host (GPU fact from ansible_local), image source pull, "
        "pulls tensorflow/serving:2.19.0-gpu"
    )


def test_image_playbook_alone_picks_the_gpu_tag(gpu_host: tuple[str, Path]) -> None:
    name, inventory = gpu_host
    _assert_gpu_tag(_decision("playbooks/image.yml", inventory, name), name)


def test_site_tags_serving_picks_the_gpu_tag(gpu_host: tuple[str, Path]) -> None:
    name, inventory = gpu_host
    _assert_gpu_tag(_decision("site.yml", inventory, name, "--tags", "serving"), name)


def test_play_without_fact_gathering_picks_the_gpu_tag(gpu_host: tuple[str, Path]) -> None:
    # tests/image/playbooks/role.yml: gather_facts: false, like playbooks/rollout.yml.
    name, inventory = gpu_host
    _assert_gpu_tag(_decision("tests/image/playbooks/role.yml", inventory, name), name)


def test_the_variable_still_wins(gpu_host: tuple[str, Path]) -> None:
    name, inventory = gpu_host
    result = _decision("playbooks/image.yml", inventory, name, "-e", "tfserving_image_gpu=false")
    assert result["msg"] == (
        f"{name}: CPU host (GPU fact from variable), image source pull, "
        "pulls tensorflow/serving:2.19.0"
    )
