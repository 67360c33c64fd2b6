"""Fixtures of the stand-in tests: one conformance server per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from standin_helpers import StandinProcess, half_plus_two_base, reference_models

from helpers import free_ports


@pytest.fixture(scope="session")
def conformance_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinProcess]:
    """The reference model as half_plus_two, started with the flags TF Serving's image uses,
    plus monitoring, batching and one accepted-but-unimplemented flag."""
    refs = reference_models()
    grpc_port, rest_port = free_ports(2)
    workdir = Path(tmp_path_factory.mktemp("standin-conformance"))
    log = workdir / "server.log"
    server = StandinProcess(
        [
            f"--port={grpc_port}",
            f"--rest_api_port={rest_port}",
            "--model_name=half_plus_two",
            f"--model_base_path={half_plus_two_base()}",
            f"--monitoring_config_file={refs / 'monitoring_config.txt'}",
            "--enable_batching",
            f"--batching_parameters_file={refs / 'batching_config.txt'}",
            "--num_load_threads=2",
            "--max_num_load_retries=0",
            f"--grpc_socket_path={workdir / 'grpc.sock'}",
        ],
        log,
        rest_port,
    )
    server.grpc_port = grpc_port  # type: ignore[attr-defined]
    server.grpc_socket = workdir / "grpc.sock"  # type: ignore[attr-defined]
    server.start("half_plus_two")
    yield server
    assert server.stop() == 0, f"stand-in did not shut down cleanly:\n{server.log()}"


@pytest.fixture(scope="session")
def grpc_channel(conformance_server: StandinProcess) -> Iterator[grpc.Channel]:
    port = conformance_server.grpc_port  # type: ignore[attr-defined]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield channel
