"""numpy <-> TensorProto round trips, checked against TensorFlow's own conversions."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfs_fleet.protos import tensor_pb2, types_pb2
from tfs_fleet.tensors import (
    TensorCodecError,
    array_from_doc,
    array_to_doc,
    from_json_value,
    from_tensor_proto,
    to_json_value,
    to_tensor_proto,
)

NUMERIC = [
    np.float32,
    np.float64,
    np.float16,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.bool_,
    np.complex64,
    np.complex128,
]


def sample(dtype: type) -> np.ndarray:
    base = np.arange(-3, 9).reshape(3, 4) * 1.25
    if np.dtype(dtype).kind == "c":
        return (base + 0.5j * base[::-1]).astype(dtype)
    if np.dtype(dtype).kind == "b":
        return base > 2
    if np.dtype(dtype).kind == "u":
        return np.abs(base).astype(dtype)
    return base.astype(dtype)


@pytest.mark.parametrize("dtype", NUMERIC, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("content", [True, False], ids=["tensor_content", "typed_field"])
def test_round_trip(dtype: type, content: bool) -> None:
    array = sample(dtype)
    proto = to_tensor_proto(array, use_tensor_content=content)
    assert bool(proto.tensor_content) == content
    back = from_tensor_proto(proto)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("dtype", NUMERIC, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("content", [True, False], ids=["tensor_content", "typed_field"])
def test_agrees_with_tensorflow(dtype: type, content: bool) -> None:
    array = sample(dtype)
    ours = to_tensor_proto(array, use_tensor_content=content)
    np.testing.assert_array_equal(tf.make_ndarray(ours), array)
    theirs = tf.make_tensor_proto(array)
    np.testing.assert_array_equal(from_tensor_proto(theirs), array)


def test_strings_use_string_val() -> None:
    array = np.array([[b"a", b"\xff\x00"], ["caf\u00e9".encode(), b""]], dtype=object)
    proto = to_tensor_proto(array)
    assert proto.dtype == types_pb2.DT_STRING and not proto.tensor_content
    assert list(proto.string_val) == [b"a", b"\xff\x00", "caf\u00e9".encode(), b""]
    np.testing.assert_array_equal(from_tensor_proto(proto), array)
    np.testing.assert_array_equal(tf.make_ndarray(proto), array)
    np.testing.assert_array_equal(
        from_tensor_proto(to_tensor_proto(np.array(["x", "y"]))),
        np.array([b"x", b"y"], dtype=object),
    )


def test_short_typed_field_is_padded_like_tensorflow() -> None:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    for _ in range(2):
        proto.tensor_shape.dim.add(size=2)
    proto.float_val.extend([1.5, 7.0])
    np.testing.assert_array_equal(from_tensor_proto(proto), tf.make_ndarray(proto))
    np.testing.assert_array_equal(from_tensor_proto(proto), [[1.5, 7.0], [7.0, 7.0]])
    proto.ClearField("float_val")
    np.testing.assert_array_equal(from_tensor_proto(proto), np.zeros((2, 2), np.float32))


def test_scalar_and_empty() -> None:
    assert from_tensor_proto(to_tensor_proto(np.float32(3.5))).shape == ()
    empty = np.zeros((0, 3), np.int64)
    assert from_tensor_proto(to_tensor_proto(empty)).shape == (0, 3)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(TensorCodecError, match=r"datetime64.*no TensorFlow equivalent"):
        to_tensor_proto(np.array(["2020-01-01"], dtype="datetime64[D]"))
    proto = to_tensor_proto(np.ones((2, 2), np.float32))
    proto.tensor_shape.dim[0].size = 3
    with pytest.raises(TensorCodecError, match=r"tensor_content holds 4 values, shape \[3, 2\]"):
        from_tensor_proto(proto)
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_RESOURCE)
    with pytest.raises(TensorCodecError, match="DT_RESOURCE is not supported"):
        from_tensor_proto(proto)


def test_big_endian_input_is_encoded_little_endian() -> None:
    array = np.arange(6, dtype=">f4").reshape(2, 3)
    proto = to_tensor_proto(array)
    assert proto.tensor_content == np.arange(6, dtype="<f4").tobytes()
    np.testing.assert_array_equal(from_tensor_proto(proto), array)


def test_rest_json_and_manifest_documents() -> None:
    strings = np.array([b"plain", b"\xff\xfe"], dtype=object)
    assert to_json_value(strings) == ["plain", {"b64": "//4="}]
    np.testing.assert_array_equal(from_json_value(to_json_value(strings)), strings)
    for array in (
        np.arange(10, dtype=np.float32).reshape(2, 5),
        np.random.default_rng(0).random((3, 50)).astype(np.float32),
        np.arange(4, dtype=np.int64),
        strings,
    ):
        doc = array_to_doc(array)
        assert ("b64" in doc) == (array.size > 64)
        back = array_from_doc(doc)
        assert back.dtype == array.dtype
        np.testing.assert_array_equal(back, array)
