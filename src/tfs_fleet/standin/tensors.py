"""TensorProto <-> numpy, writing outputs the way TF Serving does (typed value fields)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

from tfs_fleet.standin.errors import invalid_argument

_FIELD_BY_DTYPE = {
    tf.float32: "float_val",
    tf.float64: "double_val",
    tf.int32: "int_val",
    tf.int16: "int_val",
    tf.int8: "int_val",
    tf.uint8: "int_val",
    tf.uint16: "int_val",
    tf.int64: "int64_val",
    tf.uint32: "uint32_val",
    tf.uint64: "uint64_val",
    tf.bool: "bool_val",
    tf.string: "string_val",
}


def to_ndarray(proto: tensor_pb2.TensorProto, alias: str) -> np.ndarray:
    """Decode a request TensorProto; a malformed one is INVALID_ARGUMENT naming its alias."""
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError) as exc:
        raise invalid_argument(f"tensor parsing error: {alias}: {exc}") from exc


def _shape(array: np.ndarray) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in array.shape]
    )


def to_proto(array: np.ndarray, as_content: bool = False) -> tensor_pb2.TensorProto:
    """Encode an output array: typed fields (TF Serving's default) or tensor_content."""
    if as_content:
        return tf.make_tensor_proto(array)
    dtype = tf.as_dtype(array.dtype)
    name = _FIELD_BY_DTYPE.get(dtype)
    if name is None:
        return tf.make_tensor_proto(array)
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum, tensor_shape=_shape(array))
    flat = array.ravel()
    if dtype == tf.string:
        values = [v if isinstance(v, bytes) else str(v).encode() for v in flat]
        proto.string_val.extend(values)
    else:
        getattr(proto, name).extend(flat.tolist())
    return proto
