"""Golden files: requests with their expected answers, for models we did not export.

The smoke test sends every request of a golden file over gRPC and compares each answer with the
expected one within tolerances. The JSON follows TF Serving's REST formats
(tensorflow_serving/util/json_tensor.h): columnar ``inputs`` / ``outputs`` for Predict,
``examples`` (plus an optional ``context``) and ``results`` for Classify and Regress, strings as
UTF-8 text or ``{"b64": "..."}`` for arbitrary bytes::

    {
      "format": 1,                                   optional; 1 is the only format
      "rtol": 1e-5, "atol": 1e-6,                    optional defaults of every request
      "requests": [
        {"name": "two rows",                         optional, shown in messages
         "signature": "predict_images",              default serving_default
         "method": "predict",                        predict (default), classify or regress
         "inputs": {"images": [[0.0, 0.5], [1.0, 0.25]]},
         "outputs": {"scores": [[0.1, 0.9], [0.8, 0.2]]},
         "rtol": 1e-4, "atol": 1e-5},                optional, this request only
        {"signature": "serving_default", "method": "classify",
         "examples": [{"x": 1.0, "tag": "a", "raw": {"b64": "AAE="}, "ids": [1, 2]}],
         "context": {"country": "fr"},               optional (ExampleListWithContext)
         "results": [[["0", 0.1], ["1", 0.9]]]},     per example: [label, score] pairs
        {"signature": "regress_x_to_y", "method": "regress",
         "examples": [{"x": 2.0}], "results": [3.0]} per example: the regressed value
      ]
    }

Predict ``inputs`` name every input of the signature (a bare value stands for the only input
of a one-input signature); values take the dtype the signature declares (numbers for numeric
inputs, integers for integer ones, true/false for DT_BOOL, strings for DT_STRING). ``outputs``
name the outputs to compare (a subset of the signature's; a bare value for a one-output
signature); each answer must also have exactly the signature's outputs, dtypes and shapes, with
finite floats. Example features: a JSON integer is an int64 feature, a number with a fraction
a float feature (a list holding any such number is a float list), a string or ``{"b64": ...}``
a bytes feature; a list gives several values of one kind. Classify ``results`` give, per
example, the ``[label, score]`` pairs in the order the model answers them (label ``""`` when
the signature has no classes output); Regress ``results`` one value per example.

A file that cannot be used (not JSON, an unknown key, a signature or input the SavedModel does
not declare, a value that does not fit its dtype or shape) raises GoldenError naming the file
and the entry, before any request is sent.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tfs_fleet.answers import (
    AnswerError,
    check_finite_outputs,
    check_outputs,
    classification_rows,
    decode,
    regression_values,
    shape_fits,
)
from tfs_fleet.protos import (
    classification_pb2,
    example_pb2,
    feature_pb2,
    predict_pb2,
    regression_pb2,
)
from tfs_fleet.savedmodel import (
    CLASSIFY_METHOD,
    REGRESS_METHOD,
    Signature,
    TensorSpec,
)
from tfs_fleet.tensors import TensorCodecError, numpy_dtype_for, to_tensor_proto

GOLDEN_FORMAT = 1
DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-6
METHODS = ("predict", "classify", "regress")
_TOP_KEYS = {"format", "rtol", "atol", "requests"}
_COMMON_KEYS = {"name", "signature", "method", "rtol", "atol"}
_METHOD_KEYS = {
    "predict": {"inputs", "outputs"},
    "classify": {"examples", "context", "results"},
    "regress": {"examples", "context", "results"},
}
_REQUIRED_METHOD = {"classify": CLASSIFY_METHOD, "regress": REGRESS_METHOD}


class GoldenError(ValueError):
    """A golden file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class GoldenRequest:
    """One request and its expected answer, ready to send."""

    where: str  # "golden.json request 2 ('two rows')" / "manifest m.json sample"
    signature: str
    method: str  # predict | classify | regress
    rtol: float
    atol: float
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    examples: tuple[Any, ...] = ()  # tf.Example protos
    context: Any = None  # tf.Example proto or None
    results: tuple[Any, ...] = ()  # classify: ((label, score), ...) per example; regress: floats

    @property
    def label(self) -> str:
        return f"{self.where} ({self.method} {self.signature})"

    def request(self, model: str, version: int | None) -> Any:
        """The gRPC request proto (PredictRequest, ClassificationRequest, RegressionRequest)."""
        if self.method == "predict":
            request = predict_pb2.PredictRequest()
            for key, value in self.inputs.items():
                request.inputs[key].CopyFrom(to_tensor_proto(value))
        else:
            request = (
                classification_pb2.ClassificationRequest()
                if self.method == "classify"
                else regression_pb2.RegressionRequest()
            )
            if self.context is not None:
                target = request.input.example_list_with_context
                target.context.CopyFrom(self.context)
            else:
                target = request.input.example_list
            for example in self.examples:
                target.examples.add().CopyFrom(example)
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        request.model_spec.signature_name = self.signature
        return request

    def compare(
        self,
        response: Any,
        signature: Signature | None,
        rtol: float | None = None,
        atol: float | None = None,
    ) -> None:
        """AnswerError when the answer differs from the expected one (``rtol``/``atol``
        override the request's own tolerances)."""
        rtol = self.rtol if rtol is None else rtol
        atol = self.atol if atol is None else atol
        if self.method == "predict":
            if signature is not None:
                got = check_outputs(response.outputs, signature.outputs)
            else:
                check_finite_outputs(response.outputs)
                got = {k: decode(v) for k, v in response.outputs.items()}
            for key, want in self.outputs.items():
                if key not in got:
                    raise AnswerError(f"output {key!r} missing from the answer (got {sorted(got)})")
                _compare_array(f"output {key!r}", got[key], want, rtol, atol)
        elif self.method == "classify":
            rows = classification_rows(response.result)
            if len(rows) != len(self.results):
                raise AnswerError(f"{len(rows)} classifications, expected {len(self.results)}")
            for n, (row, want_row) in enumerate(zip(rows, self.results, strict=True), start=1):
                labels = [label for label, _ in row]
                want_labels = [label for label, _ in want_row]
                if labels != want_labels:
                    raise AnswerError(f"example {n}: labels {labels}, expected {want_labels}")
                _compare_array(
                    f"example {n} scores",
                    np.asarray([s for _, s in row], np.float64),
                    np.asarray([s for _, s in want_row], np.float64),
                    rtol,
                    atol,
                )
        else:
            values = regression_values(response.result)
            if len(values) != len(self.results):
                raise AnswerError(f"{len(values)} regressions, expected {len(self.results)}")
            _compare_array(
                "regression values",
                np.asarray(values, np.float64),
                np.asarray(self.results, np.float64),
                rtol,
                atol,
            )


def _compare_array(what: str, have: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> None:
    if have.shape != want.shape:
        raise AnswerError(f"{what} shape {list(have.shape)}, expected {list(want.shape)}")
    if want.dtype == object or have.dtype == object:
        if not np.array_equal(have, want):
            raise AnswerError(
                f"{what} differs from the expected strings: {have.ravel()[:3].tolist()} vs "
                f"{want.ravel()[:3].tolist()}"
            )
        return
    h = have.astype(np.complex128 if have.dtype.kind == "c" else np.float64)
    w = want.astype(np.complex128 if want.dtype.kind == "c" else np.float64)
    if not np.all(np.isfinite(h)):
        raise AnswerError(f"{what} is not finite: {h.ravel()[:3].tolist()}")
    if not np.allclose(h, w, rtol=rtol, atol=atol):
        diff = float(np.max(np.abs(h - w)))
        raise AnswerError(
            f"{what} differs from the expected output: max abs diff {diff:.6g} "
            f"(rtol={rtol:g}, atol={atol:g}); first values {h.ravel()[:3].tolist()} vs "
            f"{w.ravel()[:3].tolist()}"
        )


# ---- reading a file ---------------------------------------------------------------------------


def _tolerance(value: Any, where: str, key: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GoldenError(f"{where}: {key!r} must be a number >= 0, got {value!r}")
    number = float(value)
    if not np.isfinite(number) or number < 0:
        raise GoldenError(f"{where}: {key!r} must be a finite number >= 0, got {value!r}")
    return number


def _json_strings(value: Any, where: str) -> np.ndarray:
    """Nested lists of strings / {"b64": ...} -> object array of bytes."""

    def convert(v: Any) -> Any:
        if isinstance(v, list):
            return [convert(x) for x in v]
        if isinstance(v, str):
            return v.encode("utf-8")
        if isinstance(v, Mapping) and set(v) == {"b64"} and isinstance(v["b64"], str):
            try:
                return base64.b64decode(v["b64"], validate=True)
            except binascii.Error as exc:
                raise GoldenError(f"{where}: bad base64 {v['b64']!r}: {exc}") from exc
        raise GoldenError(f'{where}: expected strings or {{"b64": ...}}, got {v!r}')

    try:
        converted = convert(value)
        array = np.empty(np.shape(_shape_probe(converted)), dtype=object)
        array[...] = _nested_items(converted, array.shape)
    except ValueError as exc:
        if isinstance(exc, GoldenError):
            raise
        raise GoldenError(f"{where}: ragged nested lists ({exc})") from exc
    return array


def _shape_probe(value: Any) -> Any:
    """Same nesting with every leaf replaced by 0, for numpy's shape inference."""
    if isinstance(value, list):
        return [_shape_probe(v) for v in value]
    return 0


def _nested_items(value: Any, shape: tuple[int, ...]) -> Any:
    flat: list[Any] = []

    def walk(v: Any) -> None:
        if isinstance(v, list):
            for x in v:
                walk(x)
        else:
            flat.append(v)

    walk(value)
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(shape)


def _json_numbers(value: Any, dtype: np.dtype[Any], where: str) -> np.ndarray:
    def leaves(v: Any) -> list[Any]:
        if isinstance(v, list):
            return [x for item in v for x in leaves(item)]
        return [v]

    items = leaves(value)
    for item in items:
        if dtype.kind == "b":
            if not isinstance(item, bool):
                raise GoldenError(f"{where}: a DT_BOOL value must be true or false, got {item!r}")
        elif isinstance(item, bool) or not isinstance(item, int | float):
            raise GoldenError(f"{where}: expected numbers, got {item!r}")
        elif dtype.kind in "iu" and not float(item).is_integer():
            raise GoldenError(f"{where}: an integer tensor takes whole numbers, got {item!r}")
    try:
        np.asarray(_shape_probe(value), dtype=np.int8)  # ragged lists raise here
        return np.asarray(value, dtype=dtype)
    except (ValueError, OverflowError) as exc:
        raise GoldenError(f"{where}: {exc}") from exc


def _tensor_value(value: Any, spec: TensorSpec, where: str) -> np.ndarray:
    if spec.dtype == "DT_STRING":
        array = _json_strings(value, where)
    else:
        try:
            dtype = numpy_dtype_for(spec.dtype)
        except (TensorCodecError, ValueError) as exc:
            raise GoldenError(f"{where}: {spec.dtype} values cannot be given here: {exc}") from exc
        if dtype.kind == "c":
            raise GoldenError(f"{where}: complex tensors have no TF Serving JSON form")
        array = _json_numbers(value, dtype, where)
    if not shape_fits(array.shape, spec.shape):
        raise GoldenError(
            f"{where}: shape {list(array.shape)} does not fit the signature's "
            f"{list(spec.shape or ())}"
        )
    return array


def _named(
    value: Any, declared: Mapping[str, TensorSpec], where: str, what: str, exact: bool
) -> dict[str, np.ndarray]:
    bare_bytes = isinstance(value, Mapping) and set(value) == {"b64"} and "b64" not in declared
    if not isinstance(value, Mapping) or bare_bytes:
        if len(declared) != 1:
            raise GoldenError(
                f"{where}: {what!r} must be an object keyed by {sorted(declared)} (a bare value "
                "only for a signature with one " + ("input)" if what == "inputs" else "output)")
            )
        value = {next(iter(declared)): value}
    unknown = sorted(set(value) - set(declared))
    if unknown:
        raise GoldenError(
            f"{where}: {what} {unknown} not declared by the signature (it has {sorted(declared)})"
        )
    missing = sorted(set(declared) - set(value))
    if exact and missing:
        raise GoldenError(f"{where}: {what} {missing} of the signature missing")
    if not value:
        raise GoldenError(f"{where}: {what!r} is empty")
    return {
        str(k): _tensor_value(v, declared[k], f"{where}: {what} {k!r}") for k, v in value.items()
    }


def _feature(value: Any, where: str) -> Any:
    feature = feature_pb2.Feature()
    items = value if isinstance(value, list) else [value]
    if not items:
        raise GoldenError(f"{where}: an empty list has no feature type")
    if all(isinstance(v, str | Mapping) for v in items):
        feature.bytes_list.value.extend(_json_strings(items, where).tolist())
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        feature.int64_list.value.extend(items)
    elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
        feature.float_list.value.extend(float(v) for v in items)
    else:
        raise GoldenError(
            f'{where}: a feature is numbers, strings or {{"b64": ...}}, one kind per list; '
            f"got {value!r}"
        )
    return feature


def _example(doc: Any, where: str) -> Any:
    if not isinstance(doc, Mapping):
        raise GoldenError(f"{where}: an example is an object of feature name -> value")
    example = example_pb2.Example()
    for key, value in doc.items():
        example.features.feature[str(key)].CopyFrom(_feature(value, f"{where} feature {key!r}"))
    return example


def _classify_results(value: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise GoldenError(f"{where}: 'results' must be a list, one entry per example")
    rows = []
    for n, row in enumerate(value, start=1):
        if not isinstance(row, list):
            raise GoldenError(f"{where}: results[{n - 1}] must be a list of [label, score] pairs")
        pairs = []
        for pair in row:
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not isinstance(pair[0], str)
                or isinstance(pair[1], bool)
                or not isinstance(pair[1], int | float)
            ):
                raise GoldenError(
                    f"{where}: results[{n - 1}] holds {pair!r}; each class is [label, score]"
                )
            pairs.append((pair[0], float(pair[1])))
        rows.append(tuple(pairs))
    return tuple(rows)


def _regress_results(value: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise GoldenError(f"{where}: 'results' must be a list of numbers, one per example")
    return tuple(float(v) for v in value)


def _entry(
    doc: Any,
    where: str,
    signatures: Mapping[str, Signature],
    rtol: float,
    atol: float,
) -> GoldenRequest:
    if not isinstance(doc, Mapping):
        raise GoldenError(f"{where}: must be an object")
    name = doc.get("name")
    if name is not None:
        where = f"{where} ({name!r})"
    method = doc.get("method", "predict")
    if method not in METHODS:
        raise GoldenError(f"{where}: method {method!r}; use one of {', '.join(METHODS)}")
    unknown = sorted(set(doc) - _COMMON_KEYS - _METHOD_KEYS[method])
    if unknown:
        raise GoldenError(
            f"{where}: unknown keys {unknown} for method {method} (it takes "
            f"{sorted(_COMMON_KEYS | _METHOD_KEYS[method])})"
        )
    signature_name = doc.get("signature", "serving_default")
    if not isinstance(signature_name, str) or not signature_name:
        raise GoldenError(f"{where}: 'signature' must be a signature name")
    signature = signatures.get(signature_name)
    if signature is None:
        raise GoldenError(
            f"{where}: signature {signature_name!r} is not in the SavedModel "
            f"(it has {sorted(s for s in signatures if not s.startswith('__'))})"
        )
    required = _REQUIRED_METHOD.get(method)
    if required and signature.method_name != required:
        raise GoldenError(
            f"{where}: {method} needs a signature with method_name {required}; "
            f"{signature_name!r} has {signature.method_name!r}"
        )
    rtol = _tolerance(doc.get("rtol"), where, "rtol", rtol)
    atol = _tolerance(doc.get("atol"), where, "atol", atol)
    if method == "predict":
        for key in ("inputs", "outputs"):
            if key not in doc:
                raise GoldenError(f"{where}: {key!r} missing (a predict request needs both)")
        return GoldenRequest(
            where=where,
            signature=signature_name,
            method=method,
            rtol=rtol,
            atol=atol,
            inputs=_named(doc["inputs"], signature.inputs, where, "inputs", exact=True),
            outputs=_named(doc["outputs"], signature.outputs, where, "outputs", exact=False),
        )
    for key in ("examples", "results"):
        if key not in doc:
            raise GoldenError(f"{where}: {key!r} missing (a {method} request needs both)")
    examples = doc["examples"]
    if not isinstance(examples, list) or not examples:
        raise GoldenError(f"{where}: 'examples' must be a non-empty list of objects")
    results = (
        _classify_results(doc["results"], where)
        if method == "classify"
        else _regress_results(doc["results"], where)
    )
    if len(results) != len(examples):
        raise GoldenError(
            f"{where}: {len(examples)} examples but {len(results)} results (one per example)"
        )
    context = doc.get("context")
    return GoldenRequest(
        where=where,
        signature=signature_name,
        method=method,
        rtol=rtol,
        atol=atol,
        examples=tuple(_example(e, f"{where}: examples[{n}]") for n, e in enumerate(examples)),
        context=None if context is None else _example(context, f"{where}: context"),
        results=results,
    )


def parse_golden(doc: Any, source: str, signatures: Mapping[str, Signature]) -> list[GoldenRequest]:
    """A golden document (already parsed JSON) -> its requests, checked against the
    signatures; GoldenError naming ``source`` and the entry."""
    if not isinstance(doc, Mapping):
        raise GoldenError(f"{source}: the top level must be an object with 'requests'")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise GoldenError(f"{source}: unknown keys {unknown} (it takes {sorted(_TOP_KEYS)})")
    if doc.get("format", GOLDEN_FORMAT) != GOLDEN_FORMAT:
        raise GoldenError(f"{source}: format {doc['format']!r}, this toolkit reads {GOLDEN_FORMAT}")
    rtol = _tolerance(doc.get("rtol"), source, "rtol", DEFAULT_RTOL)
    atol = _tolerance(doc.get("atol"), source, "atol", DEFAULT_ATOL)
    requests = doc.get("requests")
    if not isinstance(requests, list) or not requests:
        raise GoldenError(f"{source}: 'requests' must be a non-empty list")
    return [
        _entry(entry, f"{source} request {n}", signatures, rtol, atol)
        for n, entry in enumerate(requests, start=1)
    ]


def load_golden(path: Path, signatures: Mapping[str, Signature]) -> list[GoldenRequest]:
    """Read a golden file; GoldenError names the file (and the entry) when it is unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GoldenError(f"--golden {path}: not readable: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GoldenError(f"--golden {path}: not JSON: {exc}") from exc
    return parse_golden(doc, f"--golden {path}", signatures)


def from_sample(
    where: str,
    signature: str,
    inputs: dict[str, np.ndarray],
    expected: dict[str, np.ndarray],
    rtol: float,
    atol: float,
) -> GoldenRequest:
    """A golden Predict from an export manifest's sample (inputs and outputs already typed)."""
    return GoldenRequest(
        where=where,
        signature=signature,
        method="predict",
        rtol=rtol,
        atol=atol,
        inputs=dict(inputs),
        outputs=dict(expected),
    )
