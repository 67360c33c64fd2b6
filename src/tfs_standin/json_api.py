"""TF Serving's REST JSON formats (tensorflow_serving/util/json_tensor.cc), request and answer.

Requests: predict in row (``instances``) or columnar (``inputs``) form with ``{"b64": ...}`` for
bytes; classify/regress with ``examples`` and optional ``context``. Answers: ``predictions`` /
``outputs`` / ``results``, floats written as TF Serving writes them, errors as ``{"error": ...}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable
from json.decoder import scanstring  # type: ignore[attr-defined]
from json.scanner import NUMBER_RE
from typing import Any

import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import input_pb2

from tfs_standin.errors import internal, invalid_argument, unimplemented

ROW, COLUMNAR = "row", "columnar"
_DEBUG_LIMIT = 256
_TYPE_NAMES = {
    types_pb2.DT_FLOAT: "float",
    types_pb2.DT_DOUBLE: "double",
    types_pb2.DT_INT32: "int32",
    types_pb2.DT_UINT8: "uint8",
    types_pb2.DT_INT16: "int16",
    types_pb2.DT_INT8: "int8",
    types_pb2.DT_STRING: "string",
    types_pb2.DT_INT64: "int64",
    types_pb2.DT_BOOL: "bool",
    types_pb2.DT_UINT32: "uint32",
    types_pb2.DT_UINT64: "uint64",
    types_pb2.DT_HALF: "half",
    types_pb2.DT_BFLOAT16: "bfloat16",
}
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def type_name(dtype: int) -> str:
    return _TYPE_NAMES.get(dtype, types_pb2.DataType.Name(dtype).removeprefix("DT_").lower())


def debug_string(value: Any) -> str:
    """The first 256 characters of the value as JSON, without recursion (any depth)."""
    out: list[str] = []
    size = 0
    stack: list[Any] = [value]
    while stack and size <= _DEBUG_LIMIT:
        item = stack.pop()
        if isinstance(item, _Token):
            piece = item.text
        elif isinstance(item, list):
            piece = "["
            stack.append(_Token("]"))
            for index in range(len(item) - 1, -1, -1):
                stack.append(item[index])
                if index:
                    stack.append(_Token(", "))
        elif isinstance(item, dict):
            piece = "{"
            stack.append(_Token("}"))
            entries = list(item.items())
            for index in range(len(entries) - 1, -1, -1):
                key, sub = entries[index]
                stack.append(sub)
                stack.append(_Token(json.dumps(str(key)) + ": "))
                if index:
                    stack.append(_Token(", "))
        else:
            piece = json.dumps(item)
        out.append(piece)
        size += len(piece)
    return "".join(out)[:_DEBUG_LIMIT]


class _Token:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


_WS = re.compile(r"[ \t\n\r]*")
_LITERALS = {"true": True, "false": False, "null": None, "NaN": math.nan}
_LITERALS.update({"Infinity": math.inf, "-Infinity": -math.inf})


def _iterative_decode(text: str, index: int) -> tuple[Any, int]:
    """A JSON value at text[index:], parsed with an explicit stack (rapidjson's
    kParseIterativeFlag): any nesting depth. Used when Python's recursive parser gives up."""
    stack: list[list[Any]] = []  # [container, pending key]

    def key_at(i: int) -> tuple[str, int]:
        if not text.startswith('"', i):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, i)
        key, i = scanstring(text, i + 1)
        i = _WS.match(text, i).end()  # type: ignore[union-attr]
        if not text.startswith(":", i):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, i)
        return key, _WS.match(text, i + 1).end()  # type: ignore[union-attr]

    i = _WS.match(text, index).end()  # type: ignore[union-attr]
    while True:
        char = text[i : i + 1]
        if char in ("[", "{"):
            closer = "]" if char == "[" else "}"
            i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
            if text.startswith(closer, i):
                value: Any = [] if char == "[" else {}
                i += 1
            elif char == "[":
                stack.append([[], None])
                continue
            else:
                key, i = key_at(i)
                stack.append([{}, key])
                continue
        elif char == '"':
            value, i = scanstring(text, i + 1)
        else:
            number = NUMBER_RE.match(text, i)
            if number is not None:
                integer, fraction, exponent = number.groups()
                if fraction or exponent:
                    value = float(integer + (fraction or "") + (exponent or ""))
                else:
                    value = int(integer)
                i = number.end()
            else:
                for literal, literal_value in _LITERALS.items():
                    if text.startswith(literal, i):
                        value, i = literal_value, i + len(literal)
                        break
                else:
                    raise json.JSONDecodeError("Expecting value", text, i)
        while True:  # attach the value; close finished containers
            if not stack:
                return value, i
            container, key = stack[-1]
            if isinstance(container, list):
                container.append(value)
            else:
                container[key] = value
            i = _WS.match(text, i).end()  # type: ignore[union-attr]
            if text.startswith(",", i):
                i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
                if isinstance(container, dict):
                    stack[-1][1], i = key_at(i)
                break
            closer = "]" if isinstance(container, list) else "}"
            if not text.startswith(closer, i):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, i)
            i += 1
            stack.pop()
            value = container


def json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, str):
        return "String"
    return "Array" if isinstance(value, list) else "Object"


_DECODER = json.JSONDecoder()


def parse_json(body: bytes) -> dict[str, Any]:
    """json_tensor.cc ParseJson: rapidjson with kParseStopWhenDoneFlag (bytes after the first
    value are ignored), kParseNanAndInfFlag and kParseIterativeFlag (no nesting limit there;
    Python's parser has one, which answers INVALID_ARGUMENT instead of a crash)."""
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid_argument(
            f"JSON Parse error: Invalid encoding in string. at offset: {exc.start}"
        ) from exc
    start = len(text) - len(text.lstrip(" \t\n\r"))
    if start == len(text):
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        doc, _end = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise invalid_argument(f"JSON Parse error: {exc.msg} at offset: {exc.pos}") from exc
    except RecursionError:
        try:
            doc, _end = _iterative_decode(text, start)
        except json.JSONDecodeError as exc:
            raise invalid_argument(f"JSON Parse error: {exc.msg} at offset: {exc.pos}") from exc
    if not isinstance(doc, dict):
        raise invalid_argument(f"JSON Value: {debug_string(doc)} Is not object")
    return doc


def signature_name(doc: dict[str, Any]) -> str:
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid_argument(
            f"JSON Value: {debug_string(doc)} not formatted correctly. 'signature_name' key must "
            "be a string value."
        )
    return name


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _b64decode(value: Any) -> bytes:
    if not _is_b64(value):
        raise invalid_argument(
            f"JSON Value: {debug_string(value)} not formatted correctly for base64 data"
        )
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid_argument("Unable to base64 decode") from exc


def _type_error(value: Any, dtype: int) -> Exception:
    return invalid_argument(
        f"JSON Value: {debug_string(value)} Type: {json_type(value)} is not of expected type: "
        f"{type_name(dtype)}"
    )


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _require(ok: bool, value: Any, dtype: int) -> None:
    """Refuse ``value`` for a tensor of ``dtype`` (TF Serving's words) unless ``ok``."""
    if not ok:
        raise _type_error(value, dtype)


def _add_value(value: Any, dtype: int, tensor: tensor_pb2.TensorProto) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
        _require(number, value, dtype)
        field = tensor.float_val if dtype == types_pb2.DT_FLOAT else tensor.double_val
        field.append(float(value))
    elif dtype in (types_pb2.DT_INT32, types_pb2.DT_INT16, types_pb2.DT_INT8, types_pb2.DT_UINT8):
        _require(_is_int(value, *_INT32), value, dtype)
        tensor.int_val.append(value)
    elif dtype == types_pb2.DT_STRING:
        _require(isinstance(value, str), value, dtype)
        tensor.string_val.append(value.encode("utf-8"))
    elif dtype == types_pb2.DT_INT64:
        _require(_is_int(value, *_INT64), value, dtype)
        tensor.int64_val.append(value)
    elif dtype == types_pb2.DT_BOOL:
        _require(isinstance(value, bool), value, dtype)
        tensor.bool_val.append(value)
    elif dtype == types_pb2.DT_UINT32:
        _require(_is_int(value, 0, 2**32 - 1), value, dtype)
        tensor.uint32_val.append(value)
    elif dtype == types_pb2.DT_UINT64:
        _require(_is_int(value, 0, 2**64 - 1), value, dtype)
        tensor.uint64_val.append(value)
    else:
        raise unimplemented(
            f"Conversion of JSON Value: {debug_string(value)} to type: {type_name(dtype)}"
        )


def _dense_shape(value: Any) -> list[int]:
    shape: list[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, level: int, shape: list[int], dtype: int, tensor: Any) -> int:
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid_argument(
                f"JSON Value: {debug_string(value)} found at incorrect level: {level + 1} in the "
                f"JSON DOM. Expected at level: {rank}"
            )
        if isinstance(value, dict):
            if dtype != types_pb2.DT_STRING:
                raise _type_error(value, dtype)
            tensor.string_val.append(_b64decode(value))
        else:
            _add_value(value, dtype, tensor)
        return 1
    if level >= rank:
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected size: "
            f"{shape[level]}"
        )
    return sum(_fill(v, level + 1, shape, dtype, tensor) for v in value)


def _tensor_from(value: Any, dtype: int) -> tuple[tensor_pb2.TensorProto, list[int], int]:
    tensor = tensor_pb2.TensorProto(dtype=dtype)
    shape = _dense_shape(value)
    count = _fill(value, 0, shape, dtype, tensor)
    return tensor, shape, count


def _set_shape(tensor: tensor_pb2.TensorProto, shape: list[int]) -> None:
    del tensor.tensor_shape.dim[:]
    for size in shape:
        tensor.tensor_shape.dim.add(size=size)


def _instances(items: list[Any], infos: dict[str, Any]) -> dict[str, tensor_pb2.TensorProto]:
    def is_object(v: Any) -> bool:
        return isinstance(v, dict) and not _is_b64(v)

    if not isinstance(items[0], dict) and len(infos) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    objects = is_object(items[0])
    names = sorted(infos)
    parts: dict[str, tensor_pb2.TensorProto] = {}
    shapes: dict[str, tuple[list[int], int]] = {}

    def add(item: Any, name: str) -> None:
        if name not in infos:
            raise invalid_argument(f"JSON object: does not have named input: {name}")
        dtype = infos[name].dtype
        part, shape, count = _tensor_from(item, dtype)
        if name not in shapes:
            shapes[name] = (shape, count)
            parts[name] = tensor_pb2.TensorProto(dtype=dtype)
        elif shapes[name][1] != count:
            raise invalid_argument(f"Expecting tensor size: {shapes[name][1]} but got: {count}")
        elif shapes[name][0] != shape:
            raise invalid_argument(
                f"Expecting shape [{','.join(map(str, shapes[name][0]))}] but got: "
                f"[{','.join(map(str, shape))}]"
            )
        parts[name].MergeFrom(part)

    for index, item in enumerate(items):
        if objects:
            if not is_object(item):
                raise invalid_argument(
                    f"Expecting object but got list at item {index} of input list"
                )
            for key, sub in item.items():
                try:
                    add(sub, key)
                except Exception as exc:
                    raise invalid_argument(
                        f"Failed to process element: {index} key: {key} of 'instances' list. "
                        f"Error: {_status_text(exc)}"
                    ) from exc
            if sorted(item) != names:
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{debug_string(item)} keys must be equal to: {','.join(names)}"
                )
        else:
            if is_object(item):
                raise invalid_argument(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            try:
                add(item, names[0])
            except Exception as exc:
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. Error: "
                    f"{_status_text(exc)}"
                ) from exc
    for name, part in parts.items():
        _set_shape(part, [len(items), *shapes[name][0]])
    return parts


def _status_text(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    return f"{code.name}: {getattr(exc, 'message', exc)}" if code else str(exc)


def _inputs(value: Any, infos: dict[str, Any]) -> dict[str, tensor_pb2.TensorProto]:
    if not isinstance(value, dict) or _is_b64(value):
        if len(infos) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        name = next(iter(infos))
        tensor, shape, _ = _tensor_from(value, infos[name].dtype)
        _set_shape(tensor, shape)
        return {name: tensor}
    result: dict[str, tensor_pb2.TensorProto] = {}
    for name in sorted(infos):
        if name not in value:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        tensor, shape, _ = _tensor_from(value[name], infos[name].dtype)
        _set_shape(tensor, shape)
        result[name] = tensor
    return result


def predict_inputs(
    doc: dict[str, Any], input_infos: Callable[[str], dict[str, Any]]
) -> tuple[dict[str, tensor_pb2.TensorProto], str]:
    """Request tensors and the format (row/columnar) of a REST predict body."""
    infos = input_infos(signature_name(doc))
    if not infos:
        raise invalid_argument(
            f"Failed to get input map for signature: {signature_name(doc) or 'DEFAULT'}"
        )
    has_instances, has_inputs = "instances" in doc, "inputs" in doc
    if has_instances and has_inputs:
        raise invalid_argument(
            f"JSON Value: {debug_string(doc)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist "
        )
    if has_instances:
        items = _json_array(
            doc,
            "instances",
            "Expecting 'instances' to be an list/array",
            "No values in 'instances' array",
        )
        return _instances(items, infos), ROW
    if has_inputs:
        return _inputs(doc["inputs"], infos), COLUMNAR
    raise invalid_argument("Missing 'inputs' or 'instances' key")


# ---- classify / regress requests -------------------------------------------------------------
def _feature_error(name: str, feature: feature_pb2.Feature) -> Exception:
    kind = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}.get(
        feature.WhichOneof("kind") or "", "UNKNOWN"
    )
    return invalid_argument(f"Unexpected element type in feature: {name} expecting type: {kind}")


def _add_feature_value(value: Any, name: str, feature: feature_pb2.Feature) -> None:
    kind = feature.WhichOneof("kind")

    def need(wanted: str) -> None:
        if kind not in (None, wanted):
            raise _feature_error(name, feature)

    if isinstance(value, bool):
        need("int64_list")
        feature.int64_list.value.append(1 if value else 0)
    elif isinstance(value, float):
        need("float_list")
        feature.float_list.value.append(value)
    elif isinstance(value, int):
        need("int64_list")
        if value >= 2**63:
            raise invalid_argument(
                f"Feature: {name} has uint64_t element. Only int64_t is supported."
            )
        feature.int64_list.value.append(value)
    elif isinstance(value, str):
        need("bytes_list")
        feature.bytes_list.value.append(value.encode("utf-8"))
    elif _is_b64(value):
        need("bytes_list")
        feature.bytes_list.value.append(_b64decode(value))
    else:
        raise invalid_argument(
            f"Feature: {name} has element with unexpected JSON type: {json_type(value)}"
        )


def _example(value: Any, example: example_pb2.Example) -> None:
    if not isinstance(value, dict):
        raise invalid_argument(f"Example must be JSON object but got JSON {json_type(value)}")
    for name, content in value.items():
        feature = feature_pb2.Feature()
        for item in content if isinstance(content, list) else [content]:
            _add_feature_value(item, name, feature)
        example.features.feature[name].CopyFrom(feature)


def _json_array(doc: dict[str, Any], key: str, not_a_list: str, empty: str) -> list[Any]:
    """``doc[key]``, refused (with TF Serving's words) unless it is a non-empty list."""
    items = doc[key]
    if not isinstance(items, list):
        raise invalid_argument(f"JSON Value: {debug_string(doc)} {not_a_list}")
    if not items:
        raise invalid_argument(f"JSON Value: {debug_string(doc)} {empty}")
    return items


def examples_input(doc: dict[str, Any], method: str) -> input_pb2.Input:
    model_input = input_pb2.Input()
    with_context = "context" in doc
    if with_context:
        _example(doc["context"], model_input.example_list_with_context.context)
    if "examples" not in doc:
        raise invalid_argument(
            f"JSON Value: {debug_string(doc)} When method is {method}, key 'examples' is "
            "expected and was not found"
        )
    items = _json_array(
        doc,
        "examples",
        "Expecting 'examples' value to be an list/array",
        "'examples' value is an empty array",
    )
    for item in items:
        target = (
            model_input.example_list_with_context.examples.add()
            if with_context
            else model_input.example_list.examples.add()
        )
        _example(item, target)
    return model_input


# ---- answers ---------------------------------------------------------------------------------
def decimal(value: float, single: bool) -> str:
    """A float as TF Serving writes it: shortest %g form that reads back, NaN/Infinity."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:g}"
    back = float(np.float32(float(text))) if single else float(text)
    if back != value:
        text = f"{value:.{9 if single else 17}g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _scalar(value: Any, as_bytes: bool) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        raw = bytes(value)
        if as_bytes:
            return json.dumps({"b64": base64.b64encode(raw).decode("ascii")})
        return json.dumps(raw.decode("utf-8", "replace"), ensure_ascii=False)
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, np.floating):
        return decimal(float(value), value.dtype == np.float32)
    if isinstance(value, (np.integer, int)):
        return str(int(value))
    if isinstance(value, float):
        return decimal(value, False)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise internal(f"Failed to write JSON value for tensor type: {type(value).__name__}")


def _values(array: Any, as_bytes: bool) -> str:
    if not isinstance(array, np.ndarray):  # an item of an object array: plain bytes
        return _scalar(array, as_bytes)
    if array.ndim == 0:
        return _scalar(array[()], as_bytes)
    if array.ndim == 1:  # items of an object array are plain bytes, not 0-d arrays
        return "[" + ", ".join(_scalar(v, as_bytes) for v in array) + "]"
    return "[" + ", ".join(_values(sub, as_bytes) for sub in array) + "]"


def _as_bytes(name: str, array: np.ndarray) -> bool:
    """json_tensor.cc IsNamedTensorBytes: DT_STRING outputs whose name ends in _bytes."""
    return array.dtype == object and name.endswith("_bytes")


# json_tensor.cc AddSingleValueAndAdvance writes these dtypes; others are INVALID_ARGUMENT
# "Failed to write JSON value for tensor type: <DataTypeString>".
_JSON_KINDS = {"f4", "f8", "i4", "i2", "i1", "u1", "O", "i8", "b1", "u4", "u8"}
_DATA_TYPE_STRING = {"f2": "half", "u2": "uint16", "c8": "complex64", "c16": "complex128"}


def check_json_dtype(array: np.ndarray) -> None:
    code = f"{array.dtype.kind}{array.dtype.itemsize}" if array.dtype != object else "O"
    if array.dtype.name == "bfloat16":
        code = "bfloat16"
    if code not in _JSON_KINDS:
        name = _DATA_TYPE_STRING.get(code, array.dtype.name)
        raise invalid_argument(f"Failed to write JSON value for tensor type: {name}")


def predict_answer(outputs: dict[str, np.ndarray], fmt: str) -> str:
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    many = len(names) > 1
    for name in names:
        check_json_dtype(outputs[name])
    if fmt == COLUMNAR:
        parts = [
            (f"{json.dumps(n)}: " if many else "") + _values(outputs[n], _as_bytes(n, outputs[n]))
            for n in names
        ]
        body = "{" + ", ".join(parts) + "}" if many else parts[0]
        return '{\n    "outputs": ' + body + "\n}"
    batch = -1
    for name in names:
        array = outputs[name]
        if array.ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and array.shape[0] != batch:
            raise invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} expecting: "
                f"{batch}"
            )
        batch = array.shape[0]
    rows = []
    for i in range(batch):
        cells = [
            (f"{json.dumps(n)}: " if many else "")
            + _values(outputs[n][i], _as_bytes(n, outputs[n]))
            for n in names
        ]
        rows.append("{" + ", ".join(cells) + "}" if many else cells[0])
    return '{\n    "predictions": [' + ", ".join(rows) + "]\n}"


def classify_answer(classifications: Any) -> str:
    if len(classifications) == 0:
        raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
    rows = []
    for item in classifications:
        pairs = [f"[{json.dumps(c.label)}, {decimal(c.score, True)}]" for c in item.classes]
        rows.append("[" + ", ".join(pairs) + "]")
    return '{\n    "results": [\n        ' + ",\n        ".join(rows) + "\n    ]\n}"


def regress_answer(regressions: Any) -> str:
    if len(regressions) == 0:
        raise invalid_argument("Cannot convert empty RegressionResults to JSON")
    return '{\n    "results": [' + ", ".join(decimal(r.value, True) for r in regressions) + "]\n}"


def error_body(message: str) -> str:
    return '{\n    "error": ' + json.dumps(message) + "\n}"
