"""tfs_wire.dtypes, the one dtype table of the controller's codec and the stand-in, checked
against TensorFlow: the DataType enum, TensorProto's descriptor and make_tensor_proto."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from tfs_fleet import tensors
from tfs_wire.dtypes import DTYPES

FIELDS = tensor_pb2.TensorProto.DESCRIPTOR.fields_by_name


@pytest.mark.parametrize("name", sorted(DTYPES))
def test_entry_matches_tensorflow(name: str) -> None:
    spec = DTYPES[name]
    dtype = tf.as_dtype(types_pb2.DataType.Value(name))
    field = FIELDS[spec.field]
    assert field.is_repeated and spec.field.endswith("_val")
    if spec.numpy is not None:
        assert np.dtype(spec.numpy) == np.dtype(dtype.as_numpy_dtype), name
    if spec.packed is not None:
        real = np.empty(0, dtype.as_numpy_dtype).real.dtype
        assert np.dtype(spec.packed) == real.newbyteorder("<"), name
    # TensorFlow's own typed-field encoding: one value broadcast to a shape is written to the
    # field of the dtype, never to tensor_content.
    value = {"DT_STRING": b"x", "DT_BOOL": True}.get(name, 1)
    proto = tf.make_tensor_proto(value, dtype=dtype, shape=[2])
    assert not proto.tensor_content
    written = [f.name for f, _ in proto.ListFields() if f.name.endswith("_val")]
    assert written == [spec.field], (name, written)


def test_controller_codec_covers_every_numpy_dtype_of_the_table() -> None:
    for name, spec in DTYPES.items():
        assert tensors.typed_field(types_pb2.DataType.Value(name)) == spec.field
        if spec.numpy is not None:
            assert tensors.numpy_dtype_for(name) == np.dtype(spec.numpy)


def test_an_unknown_dtype_is_refused_by_name() -> None:
    with pytest.raises(tensors.TensorCodecError, match="DT_RESOURCE"):
        tensors.numpy_dtype_for("DT_RESOURCE")
