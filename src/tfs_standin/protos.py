"""Text-proto config files of tensorflow_model_server, parsed with clear errors.

ModelServerConfig comes from tensorflow-serving-api. MonitoringConfig, SSLConfig and
BatchingParameters are not in that wheel, so they are declared here from TF Serving's .proto
files (same package, names and field numbers), which makes the text format identical.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,  # noqa: F401  (registers wrappers.proto in the pool)
)
from google.protobuf.message import Message

_F = descriptor_pb2.FieldDescriptorProto
_POOL = descriptor_pool.Default()
_FILE = "tfs_standin/tf_serving_configs.proto"


def _field(
    msg: Any, name: str, number: int, ftype: int, type_name: str = "", rep: bool = False
) -> None:
    f = msg.field.add(name=name, number=number, type=ftype)
    f.label = _F.LABEL_REPEATED if rep else _F.LABEL_OPTIONAL
    if type_name:
        f.type_name = type_name


def _build_file() -> None:
    try:
        _POOL.FindFileByName(_FILE)
        return
    except KeyError:
        pass
    fd = descriptor_pb2.FileDescriptorProto(
        name=_FILE, package="tensorflow.serving", syntax="proto3"
    )
    fd.dependency.append("google/protobuf/wrappers.proto")
    prom = fd.message_type.add(name="PrometheusConfig")
    _field(prom, "enable", 1, _F.TYPE_BOOL)
    _field(prom, "path", 2, _F.TYPE_STRING)
    mon = fd.message_type.add(name="MonitoringConfig")
    _field(mon, "prometheus_config", 1, _F.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig")
    ssl = fd.message_type.add(name="SSLConfig")
    for number, name in enumerate(("server_key", "server_cert", "custom_ca"), start=1):
        _field(ssl, name, number, _F.TYPE_STRING)
    _field(ssl, "client_verify", 4, _F.TYPE_BOOL)
    bp = fd.message_type.add(name="BatchingParameters")
    int64v, strv, boolv = (f".google.protobuf.{n}Value" for n in ("Int64", "String", "Bool"))
    _field(bp, "max_batch_size", 1, _F.TYPE_MESSAGE, int64v)
    _field(bp, "batch_timeout_micros", 2, _F.TYPE_MESSAGE, int64v)
    _field(bp, "max_enqueued_batches", 3, _F.TYPE_MESSAGE, int64v)
    _field(bp, "num_batch_threads", 4, _F.TYPE_MESSAGE, int64v)
    _field(bp, "thread_pool_name", 5, _F.TYPE_MESSAGE, strv)
    _field(bp, "allowed_batch_sizes", 6, _F.TYPE_INT64, rep=True)
    _field(bp, "pad_variable_length_inputs", 7, _F.TYPE_BOOL)
    _field(bp, "enable_large_batch_splitting", 8, _F.TYPE_MESSAGE, boolv)
    _field(bp, "max_execution_batch_size", 9, _F.TYPE_MESSAGE, int64v)
    _POOL.Add(fd)


def _message_class(name: str) -> type[Message]:
    _build_file()
    return message_factory.GetMessageClass(
        _POOL.FindMessageTypeByName(f"tensorflow.serving.{name}")
    )


MonitoringConfig = _message_class("MonitoringConfig")
SSLConfig = _message_class("SSLConfig")
BatchingParameters = _message_class("BatchingParameters")

M = TypeVar("M", bound=Message)


class ConfigFileError(ValueError):
    """A config file named by a flag cannot be read or is not the expected text proto."""


def parse_text_file(path: str, message: M, flag: str) -> M:
    """Parse an ascii protobuf file into message; errors name the flag, the file and the fix."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(f"--{flag}: cannot read {path!r}: {exc.strerror or exc}") from exc
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        kind = message.DESCRIPTOR.full_name
        raise ConfigFileError(
            f"--{flag}: Invalid protobuf file: {path!r} is not an ascii {kind}: {exc}"
        ) from exc
    return message


def validate_batching_parameters(params: Message, path: str) -> list[str]:
    """Check what TF Serving's batching session checks; return the problems found."""
    problems: list[str] = []

    def value(name: str, default: int) -> int:
        return getattr(params, name).value if params.HasField(name) else default

    max_batch = value("max_batch_size", 1000)
    for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
        if params.HasField(name) and getattr(params, name).value <= 0:
            problems.append(f"{name} must be positive (got {getattr(params, name).value})")
    if value("batch_timeout_micros", 0) < 0:
        problems.append("batch_timeout_micros must be non-negative")
    sizes = list(params.allowed_batch_sizes)
    if sizes:
        if any(b <= a for a, b in itertools.pairwise(sizes)) or sizes[0] <= 0:
            problems.append("allowed_batch_sizes entries must be positive and increasing")
        splitting = params.HasField("enable_large_batch_splitting") and (
            params.enable_large_batch_splitting.value
        )
        limit = value("max_execution_batch_size", max_batch) if splitting else max_batch
        if sizes[-1] != limit:
            which = "max_execution_batch_size" if splitting else "max_batch_size"
            problems.append(
                f"final entry in allowed_batch_sizes ({sizes[-1]}) must equal {which} ({limit})"
            )
    return [f"--batching_parameters_file {path!r}: {p}" for p in problems]
