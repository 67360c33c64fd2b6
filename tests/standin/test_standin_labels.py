"""Version labels at start-up, as TF Serving's binary does them (a stand-in process each).

server_core.cc: ServerCore::Create -> ReloadConfig -> UpdateModelVersionLabelMap() runs before
AddModelsViaModelConfigList(), so a start-up config with labels cannot start without
--allow_version_labels_for_unavailable_models (main.cc exits with "Failed to start server.
Error: FAILED_PRECONDITION: ..."); the tests follow server_core_test.cc
AssignLabelToUnavailableVersion / AssignLabelToUnavailableVersionAllowed at the process level.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from standin_helpers import StandinProcess, half_plus_two_base, http, run_cli

from helpers import free_ports, wait_for

REFERENCE_VERSION = half_plus_two_base() / "00000123"


def labelled_config(root: Path, labels: dict[str, int], versions: list[int]) -> Path:
    for version in versions:
        if not (root / "m" / str(version)).exists():
            shutil.copytree(REFERENCE_VERSION, root / "m" / str(version))
    entries = "".join(f' version_labels {{ key: "{k}" value: {v} }}' for k, v in labels.items())
    policy = " ".join(f"versions: {v}" for v in versions)
    path = root / "models.config"
    tmp = root / "models.config.tmp"
    tmp.write_text(
        f'model_config_list {{ config {{ name: "m" base_path: "{root / "m"}" '
        f'model_platform: "tensorflow" model_version_policy {{ specific {{ {policy} }} }}'
        f"{entries} }} }}\n"
    )
    tmp.replace(path)
    return path


@pytest.mark.slow
def test_start_with_labels_needs_the_allow_flag(tmp_path: Path) -> None:
    """The production bug: models.config with version_labels and no allow flag refuses to
    start (before any model loads). With --allow_version_labels_for_unavailable_models every
    label is new at start, so the start and a restart on the same file serve the labels."""
    config = labelled_config(tmp_path, {"stable": 1, "canary": 2}, [1, 2])
    grpc_port, rest_port = free_ports(2)
    result = run_cli(
        [
            f"--port={grpc_port}",
            f"--rest_api_port={rest_port}",
            f"--model_config_file={config}",
        ],
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert (
        "Failed to start server. Error: FAILED_PRECONDITION: Request to assign label to version "
    ) in result.stderr and "of model m, which is not currently available for inference" in (
        result.stderr
    )
    assert "Loading servable" not in result.stderr, "labels are checked before any model loads"
    for attempt in range(2):  # the second start is the restart
        grpc_port, rest_port = free_ports(2)
        server = StandinProcess(
            [
                f"--port={grpc_port}",
                f"--rest_api_port={rest_port}",
                f"--model_config_file={config}",
                "--allow_version_labels_for_unavailable_models",
            ],
            tmp_path / f"server-{attempt}.log",
            rest_port,
        )
        server.start("m")
        try:
            for label, version in (("stable", 1), ("canary", 2)):
                status, body = http(
                    "GET", f"{server.url}/v1/models/m/labels/{label}/metadata", timeout=10
                )
                assert status == 200, body
                assert body["model_spec"]["version"] == str(version)  # type: ignore[index]
        finally:
            assert server.stop() == 0, server.log()


@pytest.mark.slow
def test_poll_moving_a_label_to_a_loading_version(tmp_path: Path) -> None:
    """A canary label moved in the same config write that adds its version: the poll's reload
    fails (server_core.cc, the label moves before the models update) and is retried at every
    poll, as Server::PollFilesystemAndReloadConfig does; the two-phase write (version first,
    label after it is AVAILABLE) goes through."""
    config = labelled_config(tmp_path, {"canary": 1}, [1])
    grpc_port, rest_port = free_ports(2)
    server = StandinProcess(
        [
            f"--port={grpc_port}",
            f"--rest_api_port={rest_port}",
            f"--model_config_file={config}",
            "--model_config_file_poll_wait_seconds=1",
            "--file_system_poll_wait_seconds=1",
            "--allow_version_labels_for_unavailable_models",
        ],
        tmp_path / "server.log",
        rest_port,
    )
    server.start("m")
    try:
        labelled_config(tmp_path, {"canary": 2}, [1, 2])
        wait_for(
            lambda: "failed to ReloadConfig: Request to assign label to version 2" in server.log(),
            30,
            "the refused reload",
        )
        status, body = http("GET", f"{server.url}/v1/models/m/versions/2")
        assert status == 404, body  # the refused reload added nothing
        labelled_config(tmp_path, {"canary": 1}, [1, 2])  # phase 1: the version
        wait_for(
            lambda: http("GET", f"{server.url}/v1/models/m/versions/2")[0] == 200,
            30,
            "version 2 served",
        )
        labelled_config(tmp_path, {"canary": 2}, [1, 2])  # phase 2: the label

        def canary_version() -> str:
            status, body = http("GET", f"{server.url}/v1/models/m/labels/canary/metadata")
            return body["model_spec"]["version"] if status == 200 else ""  # type: ignore[index]

        wait_for(lambda: canary_version() == "2", 30, "canary on version 2")
    finally:
        assert server.stop() == 0, server.log()
