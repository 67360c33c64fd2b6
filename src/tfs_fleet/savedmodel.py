"""A SavedModel's signatures, read the way TF Serving reads them, without TensorFlow.

A version directory holds ``saved_model.pb`` (binary ``SavedModel`` proto) or
``saved_model.pbtxt`` (its text format, what TF1's ``SavedModelBuilder.save(as_text=True)``
writes). TF Serving loads the MetaGraphDef whose tag set *equals* ``--saved_model_tags``
(default ``serve``), and serves that MetaGraph's SignatureDefs. This module does the same with
the generated protos of :mod:`tfs_fleet.protos` (``saved_model_pb2``, ``text_format`` for
``.pbtxt``): no TensorFlow runtime, so the smoke test keeps its 0.3 s cold start.

``saved_model.cpb`` (chunked SavedModels, TensorFlow 2.15+ for graphs over 2 GiB) needs
TensorFlow's chunk reader and is reported as unreadable here.

Version directory names are parsed as TF Serving parses them (``absl::SimpleAtoi``: optional
surrounding whitespace and sign, decimal digits; ``007`` is version 7).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import message as pb_message
from google.protobuf import text_format

from tfs_fleet.protos import saved_model_pb2
from tfs_fleet.tensors import dtype_name

DEFAULT_TAGS = frozenset({"serve"})
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"

# dtypes a Predict request can be built for from the signature alone (ones of that dtype).
NUMERIC_DTYPES = frozenset(
    {
        "DT_FLOAT",
        "DT_DOUBLE",
        "DT_HALF",
        "DT_BFLOAT16",
        "DT_INT8",
        "DT_INT16",
        "DT_INT32",
        "DT_INT64",
        "DT_UINT8",
        "DT_UINT16",
        "DT_UINT32",
        "DT_UINT64",
        "DT_BOOL",
        "DT_COMPLEX64",
        "DT_COMPLEX128",
    }
)
FLOAT_DTYPES = frozenset(
    {"DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16", "DT_COMPLEX64", "DT_COMPLEX128"}
)

_ATOI = re.compile(r"\s*([+-]?\d+)\s*")


class SavedModelError(ValueError):
    """A SavedModel that cannot be read here; the message names the directory and the cause."""


def parse_version(name: str) -> int | None:
    """A version directory name as TF Serving reads it (absl::SimpleAtoi into int64), or None.

    >>> parse_version("007"), parse_version("12"), parse_version("tmp-3"), parse_version("-1")
    (7, 12, None, None)
    """
    match = _ATOI.fullmatch(name)
    if match is None:
        return None
    value = int(match.group(1))
    if not 0 <= value < 2**63:
        return None
    return value


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature: dtype name and shape (None: unknown rank)."""

    dtype: str
    shape: tuple[int, ...] | None
    encoding: str = "name"  # name (dense) | coo_sparse | composite_tensor

    def describe(self) -> str:
        shape = "unknown rank" if self.shape is None else str(list(self.shape))
        kind = "" if self.encoding == "name" else f" ({self.encoding})"
        return f"{self.dtype} {shape}{kind}"

    def to_doc(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": None if self.shape is None else list(self.shape)}


@dataclass(frozen=True)
class Signature:
    name: str
    method_name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    def to_doc(self) -> dict[str, Any]:
        return {
            "method_name": self.method_name,
            "inputs": {k: v.to_doc() for k, v in sorted(self.inputs.items())},
            "outputs": {k: v.to_doc() for k, v in sorted(self.outputs.items())},
        }

    def unbuildable_reason(self) -> str | None:
        """Why no Predict request can be built from this signature alone (None: it can)."""
        if not self.inputs:
            return None
        for key, spec in sorted(self.inputs.items()):
            if spec.encoding != "name":
                return f"input {key!r} is a {spec.encoding} tensor"
            if spec.dtype == "DT_STRING":
                if self.method_name in (CLASSIFY_METHOD, REGRESS_METHOD):
                    return f"input {key!r} takes serialized tf.Example"
                return f"input {key!r} takes strings (DT_STRING)"
            if spec.dtype not in NUMERIC_DTYPES:
                return f"input {key!r} is {spec.dtype}"
        return None


@dataclass(frozen=True)
class SavedModelInfo:
    """What the smoke test needs of one version: where, which format, its signatures."""

    path: Path
    format: str  # pb | pbtxt | manifest (signatures from an export manifest, no SavedModel)
    tags: frozenset[str]
    signatures: dict[str, Signature]
    version: int | None = None  # from the directory name, when it is a version number
    warmup_file: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def public(self) -> dict[str, Signature]:
        """Signatures a client can call (TF Serving's internal ``__...`` ones left out)."""
        return {k: v for k, v in sorted(self.signatures.items()) if not k.startswith("__")}


def tensor_spec_of(info: Any) -> TensorSpec:
    """A ``TensorInfo`` proto -> TensorSpec."""
    encoding = info.WhichOneof("encoding") or "name"
    dtype = info.dtype
    if encoding == "composite_tensor" and not dtype:
        return TensorSpec("DT_INVALID", None, encoding)
    shape = None
    if not info.tensor_shape.unknown_rank:
        shape = tuple(int(d.size) for d in info.tensor_shape.dim)
    try:
        name = dtype_name(dtype)
    except ValueError:
        name = f"DT_{dtype}"
    return TensorSpec(name, shape, encoding)


def signature_of(name: str, proto: Any) -> Signature:
    return Signature(
        name=name,
        method_name=str(proto.method_name),
        inputs={k: tensor_spec_of(v) for k, v in proto.inputs.items()},
        outputs={k: tensor_spec_of(v) for k, v in proto.outputs.items()},
    )


def _format_tags(tags: Iterable[str]) -> str:
    return "{" + ", ".join(sorted(tags)) + "}"


def find_saved_model_file(directory: Path) -> tuple[Path, str]:
    """(file, format) of the SavedModel in a version directory; SavedModelError otherwise."""
    if not directory.is_dir():
        raise SavedModelError(f"{directory}: no such directory")
    pb, pbtxt, cpb = (directory / f"saved_model.{ext}" for ext in ("pb", "pbtxt", "cpb"))
    if pb.is_file():
        return pb, "pb"
    if pbtxt.is_file():
        return pbtxt, "pbtxt"
    if cpb.is_file():
        raise SavedModelError(
            f"{directory}: saved_model.cpb is a chunked SavedModel (TensorFlow 2.15+ writes it "
            "for graphs over 2 GiB); its chunks need TensorFlow's reader, which the smoke test "
            "does not load: it cannot be read here"
        )
    raise SavedModelError(
        f"{directory}: no saved_model.pb or saved_model.pbtxt (not a SavedModel version "
        "directory; give the version directory, e.g. <export base>/<model>/<version>)"
    )


def parse_saved_model(path: Path, fmt: str) -> Any:
    """The ``SavedModel`` proto of saved_model.pb / .pbtxt."""
    proto = saved_model_pb2.SavedModel()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SavedModelError(f"{path}: not readable: {exc}") from exc
    try:
        if fmt == "pbtxt":
            text_format.Parse(data.decode("utf-8"), proto)
        else:
            proto.ParseFromString(data)
    except (text_format.ParseError, pb_message.DecodeError, UnicodeDecodeError) as exc:
        raise SavedModelError(f"{path}: not a SavedModel {fmt} file: {exc}") from exc
    if not proto.meta_graphs:
        raise SavedModelError(f"{path}: holds no MetaGraphDef")
    return proto


def select_meta_graph(proto: Any, tags: frozenset[str], where: Path) -> Any:
    """The MetaGraphDef whose tag set equals ``tags`` (TF Serving's loader: FindMetaGraphDef)."""
    for meta_graph in proto.meta_graphs:
        if frozenset(meta_graph.meta_info_def.tags) == tags:
            return meta_graph
    found = ", ".join(_format_tags(m.meta_info_def.tags) for m in proto.meta_graphs)
    raise SavedModelError(
        f"{where}: no MetaGraphDef with the tag set {_format_tags(tags)} (TF Serving's "
        f"--saved_model_tags must equal a MetaGraph's tags); it has {found}"
    )


def read_saved_model(directory: Path, tags: Iterable[str] = DEFAULT_TAGS) -> SavedModelInfo:
    """Read a version directory's signatures (the MetaGraph tagged exactly ``tags``)."""
    tag_set = frozenset(tags)
    if not tag_set:
        raise SavedModelError("the tag set is empty: give at least one tag (TF Serving: serve)")
    path, fmt = find_saved_model_file(directory)
    proto = parse_saved_model(path, fmt)
    meta_graph = select_meta_graph(proto, tag_set, path)
    signatures = {k: signature_of(k, v) for k, v in meta_graph.signature_def.items()}
    warmup = directory / WARMUP_FILE
    return SavedModelInfo(
        path=directory,
        format=fmt,
        tags=tag_set,
        signatures=signatures,
        version=parse_version(directory.name),
        warmup_file=warmup if warmup.is_file() else None,
    )


def _spec_from_doc(doc: Any, where: str) -> TensorSpec:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("dtype"), str):
        raise SavedModelError(f"{where}: needs a 'dtype' string and a 'shape' list or null")
    shape = doc.get("shape")
    integers = isinstance(shape, list) and all(
        isinstance(d, int) and not isinstance(d, bool) for d in shape
    )
    if shape is not None and not integers:
        raise SavedModelError(f"{where}: 'shape' must be a list of integers or null")
    return TensorSpec(str(doc["dtype"]), None if shape is None else tuple(shape))


def signatures_from_doc(doc: Any, where: str) -> dict[str, Signature]:
    """Signatures as an export manifest records them ({name: {method_name, inputs, outputs}},
    each tensor {dtype, shape}): for a manifest that has no SavedModel beside it."""
    if not isinstance(doc, Mapping):
        raise SavedModelError(f"{where}: 'signatures' must be an object")
    out = {}
    for name, sig in doc.items():
        if not isinstance(sig, Mapping):
            raise SavedModelError(f"{where}: signature {name!r} must be an object")
        parts: dict[str, dict[str, TensorSpec]] = {}
        for part in ("inputs", "outputs"):
            entries = sig.get(part, {})
            if not isinstance(entries, Mapping):
                raise SavedModelError(f"{where}: signature {name!r} {part} must be an object")
            parts[part] = {
                str(k): _spec_from_doc(v, f"{where}: signature {name!r} {part} {k!r}")
                for k, v in entries.items()
            }
        out[str(name)] = Signature(
            str(name), str(sig.get("method_name", "")), parts["inputs"], parts["outputs"]
        )
    return out
