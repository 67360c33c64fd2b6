"""tensorflow_model_server's command-line flags: the same names, types and defaults.

Parsing follows TensorFlow's flag syntax (``--name=value``; a bare ``--name`` sets a bool flag)
with one deliberate difference: an argument that is not one of TF Serving's flags is an error
(TF Serving prints "unknown argument" and carries on), so a typo in a role's flags fails loudly.
Flags that TF Serving has but the stand-in does not implement are accepted with a warning.
This module does not import TensorFlow, so a bad command line fails in milliseconds.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _flag(default: Any, help_text: str, unimplemented: str = "") -> Any:
    return field(default=default, metadata={"help": help_text, "unimplemented": unimplemented})


NO_GPU = "the stand-in runs on CPU only"
NO_TFLITE = "the stand-in serves TensorFlow SavedModels only"


@dataclass
class Options:
    """Values of every tensorflow_model_server flag (main.cc / server.h defaults)."""

    port: int = _flag(8500, "TCP port to listen on for gRPC API. Disabled if port set to zero.")
    grpc_socket_path: str = _flag("", "If non-empty, listen to a UNIX socket for gRPC API.")
    rest_api_port: int = _flag(
        0, "Port for the HTTP/REST API; zero disables it. Must differ from --port."
    )
    rest_api_num_threads: int = _flag(4 * _cpus(), "Number of threads for HTTP/REST requests.")
    rest_api_timeout_in_ms: int = _flag(30000, "Timeout for HTTP/REST API calls.")
    rest_api_enable_cors_support: bool = _flag(False, "Enable CORS headers in response")
    enable_batching: bool = _flag(False, "enable batching")
    allow_version_labels_for_unavailable_models: bool = _flag(
        False, "Allow assigning version labels to versions that are not available yet."
    )
    batching_parameters_file: str = _flag(
        "", "Read an ascii BatchingParameters protobuf from this file (needs --enable_batching)."
    )
    enable_per_model_batching_parameters: bool = _flag(
        False,
        "Read batching_params.pbtxt from each SavedModel directory.",
        "the stand-in does not batch requests",
    )
    model_config_file: str = _flag(
        "", "Read an ascii ModelServerConfig protobuf from this file and serve its models."
    )
    model_config_file_poll_wait_seconds: int = _flag(
        0, "Seconds between polls of --model_config_file; zero polls once."
    )
    model_name: str = _flag("default", "name of model (ignored if --model_config_file is set)")
    model_base_path: str = _flag("", "path to export (ignored if --model_config_file is set)")
    num_load_threads: int = _flag(
        0, "Threads used to load servables.", "the stand-in loads versions one at a time"
    )
    num_unload_threads: int = _flag(
        0, "Threads used to unload servables.", "the stand-in unloads versions one at a time"
    )
    max_num_load_retries: int = _flag(5, "Retries of a failed load before giving up.")
    load_retry_interval_micros: int = _flag(60_000_000, "Interval between load retries.")
    file_system_poll_wait_seconds: int = _flag(
        1, "Seconds between polls of the base paths for new versions; zero polls once."
    )
    flush_filesystem_caches: bool = _flag(
        True, "Flush filesystem caches after loads.", "there are no filesystem caches to flush"
    )
    tensorflow_session_parallelism: int = _flag(0, "Threads for a TensorFlow session.")
    tensorflow_session_config_file: str = _flag(
        "", "Read an ascii TensorFlow ConfigProto for the sessions from this file."
    )
    tensorflow_intra_op_parallelism: int = _flag(0, "Threads to parallelize one op.")
    tensorflow_inter_op_parallelism: int = _flag(0, "Ops that can run simultaneously.")
    use_alts_credentials: bool = _flag(
        False, "Use Google ALTS credentials", "ALTS needs Google's infrastructure"
    )
    ssl_config_file: str = _flag(
        "", "Read an ascii SSLConfig protobuf from this file and serve gRPC over TLS."
    )
    platform_config_file: str = _flag(
        "",
        "Read an ascii PlatformConfigMap protobuf from this file.",
        "the stand-in has the TensorFlow platform only",
    )
    per_process_gpu_memory_fraction: float = _flag(0.0, "Fraction of GPU memory to use.", NO_GPU)
    saved_model_tags: str = _flag("serve", "Comma-separated tags of the meta graph to load.")
    grpc_channel_arguments: str = _flag(
        "", "Comma-separated gRPC server arguments (e.g. grpc.max_connection_age_ms=2000)."
    )
    grpc_max_threads: int = _flag(4 * _cpus(), "Max gRPC server threads.")
    enable_model_warmup: bool = _flag(
        True, "Replay assets.extra/tf_serving_warmup_requests when a version loads."
    )
    num_request_iterations_for_warmup: int = _flag(
        0, "Times each warmup request is replayed (used if > 0)."
    )
    version: bool = _flag(False, "Display version")
    monitoring_config_file: str = _flag(
        "", "Read an ascii MonitoringConfig protobuf from this file (Prometheus metrics)."
    )
    remove_unused_fields_from_bundle_metagraph: bool = _flag(
        True, "Remove unused MetaGraphDef fields.", "the stand-in keeps the MetaGraphDef"
    )
    prefer_tflite_model: bool = _flag(False, "Prefer model.tflite.", NO_TFLITE)
    num_tflite_pools: int = _flag(_cpus(), "TFLite interpreter pools.", NO_TFLITE)
    num_tflite_interpreters_per_pool: int = _flag(1, "TFLite interpreters per pool.", NO_TFLITE)
    enable_signature_method_name_check: bool = _flag(
        False, "Check SignatureDef method_name for classify/regress/predict."
    )
    xla_cpu_compilation_enabled: bool = _flag(
        False, "Enable XLA:CPU JIT.", "XLA JIT is left as TensorFlow's default"
    )
    xla_gpu_compilation_enabled: bool = _flag(False, "Enable XLA:GPU JIT.", NO_GPU)
    enable_profiler: bool = _flag(
        True, "Enable profiler service.", "the stand-in has no profiler service"
    )
    thread_pool_factory_config_file: str = _flag(
        "", "Read an ascii ThreadPoolConfig protobuf.", "custom thread pools are not supported"
    )
    mixed_precision: str = _flag("", "specify mixed_precision mode", NO_GPU)
    skip_initialize_tpu: bool = _flag(False, "Skip auto initializing TPU.", "there is no TPU")
    enable_grpc_healthcheck_service: bool = _flag(
        False,
        "Enable the standard gRPC healthcheck service.",
        "grpcio-health-checking is not in the image",
    )
    enable_serialization_as_tensor_content: bool = _flag(
        False, "Serialize predict responses as tensor_content."
    )
    explicit: frozenset[str] = field(default=frozenset(), metadata={"internal": True})


class FlagError(ValueError):
    """A command line that tensorflow_model_server's flags cannot express."""


@dataclass(frozen=True)
class FlagSpec:
    name: str
    kind: type
    default: Any
    help: str
    unimplemented: str


def flag_specs() -> dict[str, FlagSpec]:
    specs: dict[str, FlagSpec] = {}
    for f in fields(Options):
        if f.metadata.get("internal"):
            continue
        kind = {"int": int, "str": str, "bool": bool, "float": float}[str(f.type)]
        default = f.default if f.default is not MISSING else None
        specs[f.name] = FlagSpec(
            f.name, kind, default, f.metadata["help"], f.metadata["unimplemented"]
        )
    return specs


def usage(prog: str = "tensorflow_model_server") -> str:
    lines = [f"usage: {prog} [--flag=value ...]", "Flags:"]
    for spec in flag_specs().values():
        kind = {int: "int32", str: "string", bool: "bool", float: "float"}[spec.kind]
        default = str(spec.default).lower() if spec.kind is bool else repr(spec.default)
        note = f" [stand-in: not implemented, {spec.unimplemented}]" if spec.unimplemented else ""
        lines.append(f"\t--{spec.name}={default}\t{kind}\t{spec.help}{note}")
    return "\n".join(lines) + "\n"


def _convert(spec: FlagSpec, raw: str | None, arg: str) -> Any:
    if spec.kind is bool:
        if raw is None:
            return True
        low = raw.lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        raise FlagError(f"Couldn't interpret value {raw!r} for bool flag --{spec.name} in {arg!r}")
    if raw is None:
        raise FlagError(f"flag --{spec.name} needs a value: write --{spec.name}=VALUE")
    try:
        if spec.kind is int:
            return int(raw, 10)
        if spec.kind is float:
            return float(raw)
    except ValueError as exc:
        kind = "integer" if spec.kind is int else "number"
        raise FlagError(
            f"Couldn't interpret value {raw!r} for flag --{spec.name}: not an {kind}"
        ) from exc
    return raw


def _unknown(arg: str, specs: dict[str, FlagSpec]) -> FlagError:
    name = arg.lstrip("-").split("=", 1)[0]
    close = difflib.get_close_matches(name, list(specs), n=1)
    hint = f"; did you mean --{close[0]}?" if close else ""
    return FlagError(
        f"unknown argument: {arg!r} is not a tensorflow_model_server flag{hint} "
        "(the stand-in rejects what TF Serving would ignore; see --help)"
    )


def parse_flags(argv: list[str]) -> Options:
    """Parse argv (without the program name) into Options; raise FlagError on a bad argument."""
    specs = flag_specs()
    values: dict[str, Any] = {}
    for arg in argv:
        if not arg.startswith("--") or arg == "--":
            raise _unknown(arg, specs)
        name, sep, raw = arg[2:].partition("=")
        spec = specs.get(name)
        if spec is None:
            raise _unknown(arg, specs)
        values[name] = _convert(spec, raw if sep else None, arg)
    return Options(**values, explicit=frozenset(values))


def unimplemented_warnings(options: Options) -> list[str]:
    """One warning per given flag that the stand-in accepts but does not implement."""
    specs = flag_specs()
    return [
        f"flag --{name} is a TF Serving flag the stand-in does not implement "
        f"({specs[name].unimplemented}); it has no effect"
        for name in sorted(options.explicit)
        if specs[name].unimplemented
    ]


def validate(options: Options) -> None:
    """Cross-flag checks TF Serving's Server::BuildAndStart makes before anything starts."""
    if options.port == 0 and not options.grpc_socket_path:
        raise FlagError("At least one of --port or --grpc_socket_path must be set.")
    if options.use_alts_credentials and options.ssl_config_file:
        raise FlagError("Either --use_alts_credentials must be false or --ssl_config_file empty.")
    if not options.model_base_path and not options.model_config_file:
        raise FlagError(
            "Both --model_base_path and --model_config_file are empty: give one of them "
            "(--model_base_path=/models/NAME serves one model)."
        )
    if options.batching_parameters_file and not options.enable_batching:
        raise FlagError(
            "--batching_parameters_file is set without --enable_batching=true: add "
            "--enable_batching or drop the file."
        )
    parallelism = (
        options.tensorflow_intra_op_parallelism,
        options.tensorflow_inter_op_parallelism,
        options.tensorflow_session_parallelism,
    )
    if all(p > 0 for p in parallelism):
        raise FlagError(
            "Either configure --tensorflow_session_parallelism or "
            "(--tensorflow_intra_op_parallelism, --tensorflow_inter_op_parallelism) "
            "separately. You cannot configure all."
        )
    for name in ("port", "rest_api_port"):
        value = getattr(options, name)
        if not 0 <= value <= 65535:
            raise FlagError(f"--{name}={value} is not a TCP port (0-65535)")
