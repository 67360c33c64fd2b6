"""TensorProto <-> numpy, writing outputs the way TF Serving does (Tensor::AsProtoField: the
typed value field of every dtype), with memory proportional to the tensor.

Every numeric output is written as one packed field built from the array with numpy (fixed-size
elements as their bytes, integers as varints encoded in bounded chunks), never as a Python list
of values. Request tensors in ``tensor_content`` are read without an extra copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from tfs_standin.errors import invalid_argument
from tfs_wire.dtypes import DTYPES

# dtype -> (TensorProto field, its number, little-endian packed element format or None for
# varint fields), from the one table (tfs_wire.dtypes) and tensor.proto's descriptor.
_FIELDS: dict[int, tuple[str, int, str | None]] = {
    types_pb2.DataType.Value(name): (
        spec.field,
        tensor_pb2.TensorProto.DESCRIPTOR.fields_by_name[spec.field].number,
        spec.packed,
    )
    for name, spec in DTYPES.items()
    if name != "DT_STRING"
}


_ALIGN = 64


def to_ndarray(proto: tensor_pb2.TensorProto, alias: str) -> np.ndarray:
    """Decode a request TensorProto; a malformed one is INVALID_ARGUMENT naming its alias."""
    try:
        if proto.tensor_content and proto.dtype != types_pb2.DT_STRING:
            dtype = np.dtype(tf.as_dtype(proto.dtype).as_numpy_dtype)
            shape = [d.size for d in proto.tensor_shape.dim]
            content = proto.tensor_content
            if len(content) % dtype.itemsize:
                raise ValueError(f"tensor_content of {len(content)} bytes is not {dtype}")
            # A 64-byte aligned copy: TensorFlow then feeds it without copying it again.
            raw = np.empty(len(content) + _ALIGN, np.uint8)
            offset = (-raw.ctypes.data) % _ALIGN
            array = raw[offset : offset + len(content)].view(dtype)
            array[...] = np.frombuffer(content, dtype=dtype)
            del content
            return array.reshape(shape)
        return tf.make_ndarray(proto)
    except (TypeError, ValueError) as exc:
        raise invalid_argument(f"tensor parsing error: {alias}: {exc}") from exc


def as_array(value: Any) -> np.ndarray:
    """A session output as an array (TF returns a scalar string as plain bytes)."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, bytes):
        out = np.empty((), dtype=object)
        out[()] = value
        return out
    return np.asarray(value)


def _shape(array: np.ndarray) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in array.shape]
    )


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_CHUNK = 1 << 18
_SHIFTS = np.arange(0, 70, 7, dtype=np.uint64)
_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)


def _varints(values: np.ndarray) -> bytes:
    """Protobuf varints of integer values (negatives sign-extended to 64 bits, as int32/int64
    fields are written), encoded chunk by chunk so that the work memory stays bounded."""
    parts = []
    for start in range(0, values.size, _CHUNK):
        chunk = values[start : start + _CHUNK]
        u = chunk if chunk.dtype == np.uint64 else chunk.astype(np.int64).view(np.uint64)
        lengths = 1 + np.searchsorted(_LIMITS, u, side="right")
        groups = ((u[:, None] >> _SHIFTS) & np.uint64(0x7F)).astype(np.uint8)
        position = np.arange(10)
        groups[position < (lengths[:, None] - 1)] |= 0x80
        parts.append(groups[position < lengths[:, None]].tobytes())
    return b"".join(parts)


def _packed(proto: tensor_pb2.TensorProto, number: int, raw: memoryview) -> None:
    """Merge one packed repeated field (wire type 2) from raw element bytes, in one piece: the
    parser then sizes the field once (appending chunks would regrow it inside the arena)."""
    if not raw.nbytes:
        return
    header = _varint(number << 3 | 2) + _varint(raw.nbytes)
    proto.MergeFromString(b"".join((header, raw)))


def to_proto(
    array: Any, as_content: bool = False, into: tensor_pb2.TensorProto | None = None
) -> tensor_pb2.TensorProto:
    """Encode an output: typed fields (TF Serving's default) or tensor_content; written into
    `into` when given (no copy of a finished proto)."""
    array = as_array(array)
    dtype = tf.as_dtype(array.dtype)
    enum = dtype.as_datatype_enum
    proto = into if into is not None else tensor_pb2.TensorProto()
    field = _FIELDS.get(enum)
    if (enum != types_pb2.DT_STRING and field is None) or (
        as_content and enum == types_pb2.DT_STRING
    ):
        proto.CopyFrom(tf.make_tensor_proto(array))  # resource/variant: TensorFlow's encoding
        return proto
    proto.dtype = enum
    proto.tensor_shape.CopyFrom(_shape(array))
    if as_content:
        proto.tensor_content = np.ascontiguousarray(array).tobytes()
        return proto
    flat = array.reshape(-1)
    if enum == types_pb2.DT_STRING:
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode() for v in flat)
        return proto
    _name, number, packed = field  # type: ignore[misc]
    if packed is not None:
        values = np.ascontiguousarray(flat)
        if values.dtype.kind == "c":
            values = values.view(values.real.dtype)
        raw = np.ascontiguousarray(values, dtype=packed)
        _packed(proto, number, raw.data.cast("B"))
        return proto
    if enum in (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
        flat = np.ascontiguousarray(flat).view(np.uint16)
    elif enum == types_pb2.DT_BOOL:
        flat = flat.astype(np.uint8)
    _packed(proto, number, memoryview(_varints(flat)))
    return proto
