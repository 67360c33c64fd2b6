"""numpy arrays <-> ``tensorflow.TensorProto`` and TF Serving's REST JSON, without TensorFlow.

Requests are encoded with ``tensor_content`` (raw little-endian bytes: compact and fast for big
image batches). Responses are decoded from ``tensor_content`` when it is set, otherwise from the
typed repeated field of the dtype (``float_val``, ``int64_val`` ...): TF Serving answers with
the typed fields unless it runs with ``--enable_serialization_as_tensor_content``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfs_fleet.protos import tensor_pb2, tensor_shape_pb2, types_pb2
from tfs_wire.dtypes import DTYPES


class TensorCodecError(ValueError):
    """An array or a TensorProto that cannot be converted."""


@dataclass(frozen=True)
class _DType:
    enum: int
    numpy: np.dtype[Any]
    field: str  # typed repeated field of TensorProto


_DTYPES: tuple[_DType, ...] = tuple(
    _DType(types_pb2.DataType.Value(name), np.dtype(spec.numpy), spec.field)
    for name, spec in DTYPES.items()
    if spec.numpy is not None
)
_BY_ENUM = {d.enum: d for d in _DTYPES}
_BY_NUMPY = {d.numpy: d for d in _DTYPES if d.enum != types_pb2.DT_STRING}


def dtype_name(enum: int) -> str:
    """``types_pb2`` enum value -> its name, e.g. 1 -> 'DT_FLOAT'."""
    return str(types_pb2.DataType.Name(enum))


def typed_field(enum: int) -> str:
    """The TensorProto field TF Serving writes a dtype's values to, e.g. DT_INT32 -> 'int_val'."""
    return DTYPES[dtype_name(enum)].field


def numpy_dtype_for(dt_name: str) -> np.dtype[Any]:
    """'DT_FLOAT' -> numpy float32 (object for DT_STRING)."""
    enum = types_pb2.DataType.Value(dt_name)
    if enum not in _BY_ENUM:
        raise TensorCodecError(f"dtype {dt_name} is not supported by tfs_fleet.tensors")
    return _BY_ENUM[enum].numpy


def _is_string_array(array: np.ndarray) -> bool:
    return array.dtype.kind in ("S", "U", "O")


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TensorCodecError(f"string tensors hold bytes or str, got {type(value).__name__}")


def _shape_proto(shape: Sequence[int]) -> Any:
    proto = tensor_shape_pb2.TensorShapeProto()
    for size in shape:
        proto.dim.add(size=int(size))
    return proto


def to_tensor_proto(value: Any, *, use_tensor_content: bool = True) -> Any:
    """Encode a numpy array (or anything ``np.asarray`` accepts) as a TensorProto.

    Numeric arrays go to ``tensor_content`` (little-endian) unless ``use_tensor_content`` is
    False, then to the typed repeated field. String arrays always use ``string_val`` (TensorFlow
    has no ``tensor_content`` form for strings).
    """
    array = np.asarray(value)
    proto = tensor_pb2.TensorProto()
    proto.tensor_shape.CopyFrom(_shape_proto(array.shape))
    if _is_string_array(array):
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(_as_bytes(v) for v in array.ravel().tolist())
        return proto
    spec = _BY_NUMPY.get(array.dtype.newbyteorder("=")) or _BY_NUMPY.get(array.dtype)
    if spec is None:
        raise TensorCodecError(
            f"numpy dtype {array.dtype} has no TensorFlow equivalent here; cast the array to one "
            f"of: {', '.join(sorted(str(d.numpy) for d in _BY_NUMPY.values()))}"
        )
    proto.dtype = spec.enum
    little = array.astype(spec.numpy.newbyteorder("<"), copy=False)
    if use_tensor_content:
        proto.tensor_content = np.ascontiguousarray(little).tobytes()
    else:
        _fill_typed_field(proto, spec, array)
    return proto


def _fill_typed_field(proto: Any, spec: _DType, array: np.ndarray) -> None:
    flat = array.ravel()
    field = getattr(proto, spec.field)
    if spec.field == "half_val":
        field.extend(flat.astype(np.float16).view(np.uint16).astype(np.int32).tolist())
    elif spec.field in ("scomplex_val", "dcomplex_val"):
        field.extend(np.column_stack([flat.real, flat.imag]).ravel().tolist())
    else:
        field.extend(flat.tolist())


def _shape_of(proto: Any) -> tuple[int, ...]:
    if proto.tensor_shape.unknown_rank:
        raise TensorCodecError("tensor has unknown rank; cannot build an array")
    return tuple(int(d.size) for d in proto.tensor_shape.dim)


def _typed_values(proto: Any, spec: _DType) -> np.ndarray:
    raw = getattr(proto, spec.field)
    if spec.field == "half_val":
        return np.asarray(list(raw), dtype=np.uint16).view(np.float16)
    if spec.field in ("scomplex_val", "dcomplex_val"):
        pairs = np.asarray(list(raw), dtype=spec.numpy.type(0).real.dtype).reshape(-1, 2)
        return (pairs[:, 0] + 1j * pairs[:, 1]).astype(spec.numpy)
    if spec.enum == types_pb2.DT_STRING:
        return np.asarray(list(raw), dtype=object)
    return np.asarray(list(raw), dtype=spec.numpy)


def from_tensor_proto(proto: Any) -> np.ndarray:
    """Decode a TensorProto into a numpy array (strings become an object array of bytes).

    As in TensorFlow, a typed field shorter than the shape is padded with its last value (a
    single value fills the tensor); an empty field means zeros.
    """
    spec = _BY_ENUM.get(proto.dtype)
    if spec is None:
        raise TensorCodecError(f"dtype {dtype_name(proto.dtype)} is not supported for decoding")
    shape = _shape_of(proto)
    count = int(np.prod(shape, dtype=np.int64))
    if proto.tensor_content and spec.enum != types_pb2.DT_STRING:
        flat = np.frombuffer(proto.tensor_content, dtype=spec.numpy.newbyteorder("<"))
        if flat.size != count:
            raise TensorCodecError(
                f"tensor_content holds {flat.size} values, shape {list(shape)} needs {count}"
            )
        return flat.astype(spec.numpy).reshape(shape)
    values = _typed_values(proto, spec)
    if values.size == count:
        return values.reshape(shape)
    if values.size == 0:
        fill = b"" if spec.enum == types_pb2.DT_STRING else 0
        return np.full(shape, fill, dtype=spec.numpy)
    if values.size < count:
        padded = np.concatenate([values, np.repeat(values[-1:], count - values.size)])
        return padded.reshape(shape)
    raise TensorCodecError(
        f"{spec.field} holds {values.size} values, shape {list(shape)} needs {count}"
    )


# ---- REST JSON ----------------------------------------------------------------------------


def to_json_value(array: Any) -> Any:
    """numpy -> TF Serving REST JSON (nested lists; bytes as {"b64": ...})."""
    arr = np.asarray(array)
    if _is_string_array(arr):
        return _map_nested(arr.tolist(), _json_string)
    if arr.dtype.kind == "c":
        raise TensorCodecError("complex tensors have no TF Serving REST JSON form")
    return arr.tolist()


def _json_string(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    return value


def _map_nested(value: Any, fn: Any) -> Any:
    if isinstance(value, list):
        return [_map_nested(v, fn) for v in value]
    return fn(value)


def from_json_value(value: Any, dtype: Any = None) -> np.ndarray:
    """TF Serving REST JSON -> numpy. Strings and {"b64": ...} become an object array of bytes."""
    saw_string = False

    def unwrap(v: Any) -> Any:
        nonlocal saw_string
        if isinstance(v, Mapping) and set(v) == {"b64"}:
            saw_string = True
            return base64.b64decode(v["b64"])
        if isinstance(v, str | bytes):
            saw_string = True
            return _as_bytes(v)
        return v

    plain = _map_nested(value, unwrap)
    if saw_string:
        return np.array(plain, dtype=object)
    return np.asarray(plain, dtype=dtype)


# ---- compact array form used by manifests --------------------------------------------------

_INLINE_LIMIT = 64


def array_to_doc(array: Any) -> dict[str, Any]:
    """numpy -> a JSON-able dict: dtype, shape and values (inline or base64 little-endian)."""
    arr = np.asarray(array)
    if _is_string_array(arr):
        return {"dtype": "string", "shape": list(arr.shape), "values": to_json_value(arr)}
    doc: dict[str, Any] = {"dtype": str(arr.dtype), "shape": list(arr.shape)}
    if arr.size <= _INLINE_LIMIT and arr.dtype.kind != "c":
        doc["values"] = arr.ravel().tolist()
    else:
        raw = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"))).tobytes()
        doc["b64"] = base64.b64encode(raw).decode("ascii")
    return doc


def array_from_doc(doc: Mapping[str, Any]) -> np.ndarray:
    """Inverse of :func:`array_to_doc`."""
    try:
        shape = tuple(int(s) for s in doc["shape"])
        dtype_str = str(doc["dtype"])
    except (KeyError, TypeError, ValueError) as exc:
        raise TensorCodecError(f"array document needs 'dtype' and 'shape': {exc}") from exc
    if dtype_str == "string":
        return from_json_value(doc["values"]).reshape(shape)
    dtype = np.dtype(dtype_str)
    if "b64" in doc:
        flat = np.frombuffer(base64.b64decode(doc["b64"]), dtype=dtype.newbyteorder("<"))
        return flat.astype(dtype).reshape(shape)
    if "values" in doc:
        return np.asarray(doc["values"], dtype=dtype).reshape(shape)
    raise TensorCodecError("array document has neither 'values' nor 'b64'")
