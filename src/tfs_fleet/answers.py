"""Checks of TF Serving's answers shared by the smoke test's checks: decoding a TensorProto
(bfloat16 included), finiteness, and the classify / regress results. No TensorFlow."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from tfs_fleet.protos import types_pb2
from tfs_fleet.savedmodel import TensorSpec
from tfs_fleet.tensors import dtype_name, from_tensor_proto

DEFAULT_SIGNATURE = "serving_default"


class AnswerError(ValueError):
    """An answer that is wrong; the message says what and where."""


def signature_or_default(name: str) -> str:
    """TF Serving treats an empty signature_name as ``serving_default``."""
    return name or DEFAULT_SIGNATURE


def tensor_shape(proto: Any) -> tuple[int, ...] | None:
    if proto.tensor_shape.unknown_rank:
        return None
    return tuple(int(d.size) for d in proto.tensor_shape.dim)


def decode(proto: Any) -> np.ndarray:
    """A TensorProto as numpy; bfloat16 (which numpy lacks) widened to float32."""
    if proto.dtype == types_pb2.DT_BFLOAT16:
        shape = tensor_shape(proto)
        if shape is None:
            raise AnswerError("tensor has unknown rank")
        count = int(np.prod(shape, dtype=np.int64))
        if proto.tensor_content:
            raw = np.frombuffer(proto.tensor_content, dtype="<u2").astype(np.uint32)
        else:
            raw = np.asarray(list(proto.half_val), dtype=np.uint32)
            if raw.size == 0:
                raw = np.zeros(count, np.uint32)
            elif raw.size < count:
                raw = np.concatenate([raw, np.repeat(raw[-1:], count - raw.size)])
        if raw.size != count:
            raise AnswerError(f"bfloat16 tensor holds {raw.size} values, shape needs {count}")
        return (raw << 16).view(np.float32).reshape(shape)
    return from_tensor_proto(proto)


def nonfinite(array: np.ndarray) -> str | None:
    """'2 NaN, 1 Inf of 6 values' when a float/complex array has non-finite values, else None."""
    if array.dtype.kind not in "fc" or array.size == 0:
        return None
    finite = np.isfinite(array)
    if bool(finite.all()):
        return None
    nan = int(np.isnan(array).sum())
    inf = int(array.size - finite.sum()) - nan
    parts = [f"{nan} NaN" if nan else "", f"{inf} Inf" if inf else ""]
    return f"{', '.join(p for p in parts if p)} of {array.size} values"


def shape_fits(shape: tuple[int, ...], declared: tuple[int, ...] | None) -> bool:
    """Same rank and every known declared dimension equal (-1 is free); unknown rank fits."""
    if declared is None:
        return True
    if len(shape) != len(declared):
        return False
    return all(d < 0 or d == s for s, d in zip(shape, declared, strict=True))


def check_outputs(
    outputs: Any, declared: dict[str, TensorSpec], *, exact_keys: bool = True
) -> dict[str, np.ndarray]:
    """Check a PredictResponse's ``outputs`` map against the signature's outputs: the declared
    keys (exactly, unless ``exact_keys`` is False: then only those present), dtypes, shapes
    that fit, finite floats. Returns the decoded arrays."""
    got_keys = set(outputs.keys())
    if exact_keys and got_keys != set(declared):
        missing = sorted(set(declared) - got_keys)
        extra = sorted(got_keys - set(declared))
        raise AnswerError(
            f"output keys {sorted(got_keys)}, the signature declares {sorted(declared)}"
            + (f" (missing {missing})" if missing else "")
            + (f" (not declared {extra})" if extra else "")
        )
    arrays: dict[str, np.ndarray] = {}
    for key in sorted(got_keys):
        proto = outputs[key]
        spec = declared.get(key)
        if spec is None:
            raise AnswerError(f"output {key!r} is not declared by the signature")
        got_dtype = dtype_name(proto.dtype)
        if got_dtype != spec.dtype:
            raise AnswerError(f"output {key!r} dtype {got_dtype}, the signature says {spec.dtype}")
        shape = tensor_shape(proto)
        if shape is None:
            raise AnswerError(f"output {key!r} came with an unknown rank")
        if not shape_fits(shape, spec.shape):
            raise AnswerError(
                f"output {key!r} shape {list(shape)} does not match the signature's "
                f"{list(spec.shape or ())}"
            )
        try:
            array = decode(proto)
        except ValueError as exc:
            raise AnswerError(f"output {key!r} cannot be decoded: {exc}") from exc
        bad = nonfinite(array)
        if bad:
            raise AnswerError(f"output {key!r} is not finite: {bad}")
        arrays[key] = array
    return arrays


def check_finite_outputs(outputs: Any) -> None:
    """Every float output of a PredictResponse is finite (no signature to compare with)."""
    for key in sorted(outputs.keys()):
        try:
            array = decode(outputs[key])
        except ValueError as exc:
            raise AnswerError(f"output {key!r} cannot be decoded: {exc}") from exc
        bad = nonfinite(array)
        if bad:
            raise AnswerError(f"output {key!r} is not finite: {bad}")


def classification_rows(result: Any) -> list[list[tuple[str, float]]]:
    """A ClassificationResult as [[(label, score), ...] per example]."""
    return [
        [(c.label, float(c.score)) for c in classifications.classes]
        for classifications in result.classifications
    ]


def regression_values(result: Any) -> list[float]:
    return [float(r.value) for r in result.regressions]


def check_finite_scores(what: str, values: Iterable[float]) -> None:
    array = np.asarray(list(values), dtype=np.float64)
    bad = nonfinite(array)
    if bad:
        raise AnswerError(f"{what} are not finite: {bad}")


def check_classification(result: Any, expected_examples: int | None = None) -> None:
    rows = classification_rows(result)
    if expected_examples is not None and len(rows) != expected_examples:
        raise AnswerError(f"{len(rows)} classifications for {expected_examples} examples")
    check_finite_scores("classification scores", (s for row in rows for _, s in row))


def check_regression(result: Any, expected_examples: int | None = None) -> None:
    values = regression_values(result)
    if expected_examples is not None and len(values) != expected_examples:
        raise AnswerError(f"{len(values)} regressions for {expected_examples} examples")
    check_finite_scores("regression values", values)


def example_count(model_input: Any) -> int:
    """Examples in a tensorflow_serving Input (example_list or example_list_with_context)."""
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        return len(model_input.example_list.examples)
    if kind == "example_list_with_context":
        return len(model_input.example_list_with_context.examples)
    return 0
