"""TensorFlow dtypes and the TensorProto field that holds their values: the one table.

TF Serving writes an output tensor with ``Tensor::AsProtoField`` (tensorflow/core/framework/
tensor.cc): the values go to one typed repeated field of ``TensorProto`` (tensor.proto), chosen
by the dtype. ``tfs_fleet.tensors`` (the controller's codec) and ``tfs_standin.tensors`` (the
stand-in's writer) both read this table; tests/test_wire_dtypes.py checks it against TensorFlow's
own ``make_tensor_proto``, ``TensorProto``'s descriptor and the ``DataType`` enum.

Keys are the ``DataType`` enum names (types.proto), so this module imports nothing.
"""

from __future__ import annotations

from typing import NamedTuple


class DType(NamedTuple):
    field: str  # typed repeated field of TensorProto
    numpy: str | None  # numpy dtype name; None where numpy has no such type (bfloat16)
    packed: str | None  # little-endian element format of a fixed-size packed field; None: varints


DTYPES: dict[str, DType] = {
    "DT_FLOAT": DType("float_val", "float32", "<f4"),
    "DT_DOUBLE": DType("double_val", "float64", "<f8"),
    "DT_HALF": DType("half_val", "float16", None),
    "DT_BFLOAT16": DType("half_val", None, None),
    "DT_INT8": DType("int_val", "int8", None),
    "DT_INT16": DType("int_val", "int16", None),
    "DT_INT32": DType("int_val", "int32", None),
    "DT_INT64": DType("int64_val", "int64", None),
    "DT_UINT8": DType("int_val", "uint8", None),
    "DT_UINT16": DType("int_val", "uint16", None),
    "DT_UINT32": DType("uint32_val", "uint32", None),
    "DT_UINT64": DType("uint64_val", "uint64", None),
    "DT_BOOL": DType("bool_val", "bool", None),
    "DT_COMPLEX64": DType("scomplex_val", "complex64", "<f4"),
    "DT_COMPLEX128": DType("dcomplex_val", "complex128", "<f8"),
    "DT_STRING": DType("string_val", "object", None),
}
