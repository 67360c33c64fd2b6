"""Flags: TF Serving's names and defaults, strict unknown-flag errors, warnings, config files.
These run the CLI's flag stage, which fails before TensorFlow is imported."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from standin_helpers import reference_models, run_cli

from tfs_standin import flags, protos


def test_defaults_match_tensorflow_model_server() -> None:
    options = flags.parse_flags([])
    assert options.port == 8500
    assert options.rest_api_port == 0
    assert options.model_name == "default"
    assert options.file_system_poll_wait_seconds == 1
    assert options.model_config_file_poll_wait_seconds == 0
    assert options.enable_model_warmup is True
    assert options.enable_batching is False
    assert options.max_num_load_retries == 5
    assert options.load_retry_interval_micros == 60_000_000
    assert options.rest_api_timeout_in_ms == 30000
    assert options.saved_model_tags == "serve"


def test_values_and_bool_forms() -> None:
    options = flags.parse_flags(
        ["--port=9000", "--enable_batching", "--enable_model_warmup=false", "--model_name=m"]
    )
    assert (options.port, options.enable_batching, options.enable_model_warmup) == (
        9000,
        True,
        False,
    )
    assert options.model_name == "m"
    assert options.explicit == {"port", "enable_batching", "enable_model_warmup", "model_name"}


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--model_nme=x"], "did you mean --model_name"),
        (["--port", "9000"], "needs a value"),
        (["--port=nine"], "not an integer"),
        (["--enable_batching=maybe"], "Couldn't interpret value 'maybe'"),
        (["model"], "unknown argument"),
    ],
)
def test_bad_arguments_are_errors(argv: list[str], needle: str) -> None:
    with pytest.raises(flags.FlagError, match=needle):
        flags.parse_flags(argv)


def test_cross_flag_validation() -> None:
    with pytest.raises(flags.FlagError, match="model_base_path and --model_config_file"):
        flags.validate(flags.parse_flags([]))
    with pytest.raises(flags.FlagError, match="without --enable_batching"):
        flags.validate(flags.parse_flags(["--model_base_path=/m", "--batching_parameters_file=b"]))
    with pytest.raises(flags.FlagError, match="cannot configure all"):
        flags.validate(
            flags.parse_flags(
                [
                    "--model_base_path=/m",
                    "--tensorflow_session_parallelism=1",
                    "--tensorflow_intra_op_parallelism=1",
                    "--tensorflow_inter_op_parallelism=1",
                ]
            )
        )


def test_unimplemented_flags_warn_only_when_given() -> None:
    assert flags.unimplemented_warnings(flags.parse_flags(["--model_base_path=/m"])) == []
    warnings = flags.unimplemented_warnings(
        flags.parse_flags(["--per_process_gpu_memory_fraction=0.5", "--platform_config_file=p"])
    )
    assert len(warnings) == 2
    assert "--per_process_gpu_memory_fraction" in warnings[0] and "CPU only" in warnings[0]


def test_cli_unknown_flag_exits_2_fast() -> None:
    started = time.monotonic()
    result = run_cli(["--model_base_path=/models/x", "--rest_port=8501"])
    assert result.returncode == 2, result
    assert "unknown argument: '--rest_port=8501'" in result.stderr
    assert "did you mean --rest_api_port" in result.stderr
    assert time.monotonic() - started < 15, "flag errors must not wait for TensorFlow"


def test_cli_help_and_version() -> None:
    help_text = run_cli(["--help"])
    assert help_text.returncode == 0
    assert "NOT TensorFlow Serving" in help_text.stdout
    assert "--model_config_file_poll_wait_seconds=0" in help_text.stdout
    version = run_cli(["--version"])
    assert version.returncode == 0 and "NOT TF Serving" in version.stdout


def test_reference_batching_config_is_valid() -> None:
    path = reference_models() / "batching_config.txt"
    params = protos.parse_text_file(
        str(path), protos.BatchingParameters(), "batching_parameters_file"
    )
    assert params.max_batch_size.value == 128
    assert params.num_batch_threads.value == 8
    assert protos.validate_batching_parameters(params, str(path)) == []


def test_bad_batching_configs_are_rejected(tmp_path: Path) -> None:
    typo = tmp_path / "typo.txt"
    typo.write_text("max_batch_sise { value: 8 }\n")
    with pytest.raises(
        protos.ConfigFileError, match=r"--batching_parameters_file: Invalid protobuf"
    ):
        protos.parse_text_file(str(typo), protos.BatchingParameters(), "batching_parameters_file")
    sizes = tmp_path / "sizes.txt"
    sizes.write_text(
        "max_batch_size { value: 8 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 4\n"
    )
    params = protos.parse_text_file(
        str(sizes), protos.BatchingParameters(), "batching_parameters_file"
    )
    problems = protos.validate_batching_parameters(params, str(sizes))
    assert problems and "must equal max_batch_size (8)" in problems[0]


@pytest.mark.slow
def test_cli_bad_batching_file_fails_before_loading(tmp_path: Path) -> None:
    bad = tmp_path / "batching.txt"
    bad.write_text("max_batch_size { value: -1 }\n")
    result = run_cli(
        [
            f"--model_base_path={tmp_path / 'no-such-model'}",
            "--enable_batching",
            f"--batching_parameters_file={bad}",
        ]
    )
    assert result.returncode == 1, result
    assert "max_batch_size must be positive" in result.stderr
    assert "Loading servable" not in result.stderr


def test_monitoring_and_ssl_configs_parse(tmp_path: Path) -> None:
    path = reference_models() / "monitoring_config.txt"
    config = protos.parse_text_file(str(path), protos.MonitoringConfig(), "monitoring_config_file")
    assert config.prometheus_config.enable
    assert config.prometheus_config.path == "/monitoring/prometheus/metrics"
    ssl = tmp_path / "ssl.txt"
    ssl.write_text('server_key: "K"\nserver_cert: "C"\nclient_verify: true\n')
    parsed = protos.parse_text_file(str(ssl), protos.SSLConfig(), "ssl_config_file")
    assert (parsed.server_key, parsed.client_verify) == ("K", True)
