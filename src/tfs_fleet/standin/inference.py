"""Predict, Classify, Regress and GetModelMetadata on a loaded Servable, as TF Serving runs them
(predict_util.cc, classifier.cc, regressor.cc, util.cc, get_model_metadata_impl.cc)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from google.protobuf import any_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from tfs_fleet.standin import tensors
from tfs_fleet.standin.errors import failed_precondition, internal, invalid_argument
from tfs_fleet.standin.servable import Servable

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


@dataclass(frozen=True)
class RunSettings:
    timeout_ms: int = 0
    tensor_content: bool = False
    method_name_check: bool = False


def fill_model_spec(
    spec: model_pb2.ModelSpec, name: str, version: int, signature: str | None
) -> None:
    spec.name = name
    spec.version.value = version
    if signature is not None:
        spec.signature_name = signature


def _joined(keys: object) -> str:
    return ",".join(sorted(keys))  # type: ignore[call-overload]


def _check_inputs_size(signature: object, request: predict_pb2.PredictRequest) -> None:
    sig_inputs = set(signature.inputs)  # type: ignore[attr-defined]
    req_inputs = set(request.inputs)
    no_defaults = len(signature.defaults) == 0  # type: ignore[attr-defined]
    if len(req_inputs) > len(sig_inputs) or (len(req_inputs) < len(sig_inputs) and no_defaults):
        raise invalid_argument(
            f"input size does not match signature: {len(req_inputs)}!={len(sig_inputs)} "
            f"len({{{_joined(req_inputs)}}}) != len({{{_joined(sig_inputs)}}}). "
            f"Sent extra: {{{_joined(req_inputs - sig_inputs)}}}. "
            f"Missing but required: {{{_joined(sig_inputs - req_inputs)}}}."
        )


def _predict_feeds(signature: object, request: predict_pb2.PredictRequest) -> dict:
    feeds: dict[str, np.ndarray] = {}
    for alias, proto in request.inputs.items():
        info = signature.inputs.get(alias)  # type: ignore[attr-defined]
        if info is None:
            raise invalid_argument(
                f"input tensor alias not found in signature: {alias}. Inputs expected to be in "
                f"the set {{{_joined(signature.inputs)}}}."  # type: ignore[attr-defined]
            )
        feeds[info.name] = tensors.to_ndarray(proto, alias)
    for alias, proto in signature.defaults.items():  # type: ignore[attr-defined]
        if alias not in request.inputs and alias in signature.inputs:  # type: ignore[attr-defined]
            feeds[signature.inputs[alias].name] = tf.make_ndarray(proto)  # type: ignore[attr-defined]
    return feeds


def _output_selection(signature: object, output_filter: list[str]) -> list[tuple[str, str]]:
    outputs = signature.outputs  # type: ignore[attr-defined]
    if not output_filter:
        return [(alias, info.name) for alias, info in outputs.items()]
    selected: list[tuple[str, str]] = []
    for alias in output_filter:
        if alias not in outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be in "
                f"the set {{{_joined(outputs)}}}."
            )
        if any(alias == seen for seen, _ in selected):
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        selected.append((alias, outputs[alias].name))
    return selected


def predict(
    servable: Servable, request: predict_pb2.PredictRequest, settings: RunSettings
) -> predict_pb2.PredictResponse:
    name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    signature = servable.signatures.get(name)
    if signature is None:
        raise failed_precondition(f'Serving signature key "{name}" not found.')
    if settings.method_name_check and signature.method_name not in (
        PREDICT_METHOD,
        CLASSIFY_METHOD,
        REGRESS_METHOD,
    ):
        raise internal(
            "Expected prediction signature method_name to be one of {"
            f"{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. "
            f"Was: {signature.method_name}"
        )
    _check_inputs_size(signature, request)
    feeds = _predict_feeds(signature, request)
    selected = _output_selection(signature, list(request.output_filter))
    values = servable.run(feeds, [t for _, t in selected], settings.timeout_ms)
    response = predict_pb2.PredictResponse()
    fill_model_spec(response.model_spec, request.model_spec.name, servable.version, name)
    for (alias, _), value in zip(selected, values, strict=True):
        response.outputs[alias].CopyFrom(tensors.to_proto(value, settings.tensor_content))
    return response


def serialized_examples(model_input: input_pb2.Input) -> np.ndarray:
    """The serialized tf.Examples of an Input; with a context, context bytes come first."""
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        items = [e.SerializeToString() for e in model_input.example_list.examples]
    elif kind == "example_list_with_context":
        ctx = model_input.example_list_with_context.context.SerializeToString()
        items = [
            ctx + e.SerializeToString() for e in model_input.example_list_with_context.examples
        ]
    else:
        items = []
    if not items:
        raise invalid_argument("Input is empty.")
    return np.array(items, dtype=object)


def _signature_for(servable: Servable, name: str, method: str, kind: str, check: bool) -> object:
    key = name or DEFAULT_SIGNATURE
    signature = servable.signatures.get(key)
    if signature is None:
        raise invalid_argument(f"No signature was found with the name: {key}")
    if check and signature.method_name != method:
        raise invalid_argument(
            f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}"
        )
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if "inputs" not in signature.inputs:
        raise invalid_argument(f"No {kind} inputs found in SignatureDef: {signature}")
    return signature


def _check_classify_output(
    value: np.ndarray, what: str, dtype_name: str, ok: bool, num_examples: int
) -> None:
    if value.ndim != 2:
        raise invalid_argument(
            f"Expected Tensor shape: [batch_size num_classes] but got {list(value.shape)}"
        )
    if not ok:
        raise invalid_argument(f"Expected {what} Tensor of {dtype_name}. Got: {value.dtype}")
    if value.shape[0] != num_examples:
        raise invalid_argument(
            f"Expected {what} output batch size of {num_examples}. Got: {value.shape[0]}"
        )


def classify(
    servable: Servable, request: classification_pb2.ClassificationRequest, settings: RunSettings
) -> classification_pb2.ClassificationResponse:
    signature = _signature_for(
        servable,
        request.model_spec.signature_name,
        CLASSIFY_METHOD,
        "classification",
        settings.method_name_check,
    )
    outputs = signature.outputs  # type: ignore[attr-defined]
    if len(outputs) not in (1, 2):
        raise invalid_argument(f"Expected one or two output Tensors, found {len(outputs)}")
    wanted = [k for k in ("classes", "scores") if k in outputs]
    if not wanted:
        raise invalid_argument(
            'Expected classification signature outputs to contain at least one of "classes" or '
            f'"scores". Signature was: {signature}'
        )
    examples = serialized_examples(request.input)
    values = servable.run(
        {signature.inputs["inputs"].name: examples},  # type: ignore[attr-defined]
        [outputs[k].name for k in wanted],
        settings.timeout_ms,
    )
    found = dict(zip(wanted, values, strict=True))
    n = len(examples)
    classes, scores = found.get("classes"), found.get("scores")
    if classes is not None:
        _check_classify_output(classes, "classes", "DT_STRING", classes.dtype == object, n)
    if scores is not None:
        _check_classify_output(scores, "scores", "DT_FLOAT", scores.dtype == np.float32, n)
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument(
            "Tensors class and score should match in dim_size(1). "
            f"Got {classes.shape[1]} vs. {scores.shape[1]}"
        )
    num_classes = (classes if classes is not None else scores).shape[1]  # type: ignore[union-attr]
    response = classification_pb2.ClassificationResponse()
    name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    fill_model_spec(response.model_spec, request.model_spec.name, servable.version, name)
    for i in range(n):
        row = response.result.classifications.add()
        for c in range(num_classes):
            cls = row.classes.add()
            if classes is not None:
                cls.label = bytes(classes[i, c]).decode("utf-8", "replace")
            if scores is not None:
                cls.score = float(scores[i, c])
    return response


def regress(
    servable: Servable, request: regression_pb2.RegressionRequest, settings: RunSettings
) -> regression_pb2.RegressionResponse:
    signature = _signature_for(
        servable,
        request.model_spec.signature_name,
        REGRESS_METHOD,
        "regression",
        settings.method_name_check,
    )
    outputs = signature.outputs  # type: ignore[attr-defined]
    if len(outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if "outputs" not in outputs:
        raise invalid_argument(f"No regression outputs found in SignatureDef: {signature}")
    examples = serialized_examples(request.input)
    (value,) = servable.run(
        {signature.inputs["inputs"].name: examples},  # type: ignore[attr-defined]
        [outputs["outputs"].name],
        settings.timeout_ms,
    )
    n = len(examples)
    if not (value.ndim == 1 or (value.ndim == 2 and value.shape[1] == 1)):
        raise invalid_argument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
            f"{list(value.shape)}"
        )
    if value.shape[0] != n:
        raise invalid_argument(
            f"Input batch size did not match output batch size: {n} vs. {value.shape[0]}"
        )
    if value.dtype != np.float32:
        raise invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {value.dtype}")
    response = regression_pb2.RegressionResponse()
    name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    fill_model_spec(response.model_spec, request.model_spec.name, servable.version, name)
    for v in value.ravel():
        response.result.regressions.add(value=float(v))
    return response


def metadata(
    servable: Servable, request: get_model_metadata_pb2.GetModelMetadataRequest
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    fields = list(request.metadata_field)
    if not fields:
        raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
    for name in fields:
        if name != "signature_def":
            raise invalid_argument(f"Metadata field {name} is not supported")
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    fill_model_spec(response.model_spec, request.model_spec.name, servable.version, None)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    for key, sig in servable.signatures.items():
        sig_map.signature_def[key].CopyFrom(sig)
    packed = any_pb2.Any()
    packed.Pack(sig_map)
    response.metadata["signature_def"].CopyFrom(packed)
    return response
