"""Predict, Classify, Regress and GetModelMetadata on a loaded Servable, as TF Serving runs them
(predict_util.cc, classifier.cc, regressor.cc, util.cc, get_model_metadata_impl.cc)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import any_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from tfs_standin import tensors
from tfs_standin.errors import failed_precondition, internal, invalid_argument, unimplemented
from tfs_standin.servable import Servable

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
    del feeds  # the inputs' memory is free before the outputs are encoded
    response = predict_pb2.PredictResponse()
    fill_model_spec(response.model_spec, request.model_spec.name, servable.version, name)
    for (alias, _), value in zip(selected, values, strict=True):
        # written in place: a CopyFrom would hold the same bytes twice
        tensors.to_proto(value, settings.tensor_content, into=response.outputs[alias])
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


def _find_signature(servable: Servable, name: str) -> tuple[str, object]:
    key = name or DEFAULT_SIGNATURE
    signature = servable.signatures.get(key)
    if signature is None:
        raise invalid_argument(f"No signature was found with the name: {key}")
    return key, signature


def _signature_io(signature: object, check: bool, kind: str, method: str) -> tuple[Any, Any]:
    """The checks Classify and Regress share: the method name (when checked), one input."""
    if check and signature.method_name != method:  # type: ignore[attr-defined]
        raise invalid_argument(
            f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}"  # type: ignore[attr-defined]
        )
    inputs, outputs = signature.inputs, signature.outputs  # type: ignore[attr-defined]
    if len(inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    return inputs, outputs


def _pre_classify(signature: object, check: bool) -> tuple[str, list[tuple[str, str]]]:
    """classifier.cc PreProcessClassification: the input tensor and the wanted outputs."""
    inputs, outputs = _signature_io(signature, check, "classification", CLASSIFY_METHOD)
    if len(outputs) not in (1, 2):
        raise invalid_argument(f"Expected one or two output Tensors, found {len(outputs)}")
    if "inputs" not in inputs:
        raise invalid_argument(f"No classification inputs found in SignatureDef: {signature}")
    wanted = [(k, outputs[k].name) for k in ("classes", "scores") if k in outputs]
    if not wanted:
        raise invalid_argument(
            'Expected classification signature outputs to contain at least one of "classes" or '
            f'"scores". Signature was: {signature}'
        )
    return inputs["inputs"].name, wanted


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


def _post_classify(
    found: dict[str, np.ndarray], n: int, result: classification_pb2.ClassificationResult
) -> None:
    """classifier.cc PostProcessClassificationResult."""
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
    for i in range(n):
        row = result.classifications.add()
        for c in range(num_classes):
            cls = row.classes.add()
            if classes is not None:
                cls.label = bytes(classes[i, c]).decode("utf-8", "replace")
            if scores is not None:
                cls.score = float(scores[i, c])


def _pre_regress(signature: object, check: bool) -> tuple[str, list[tuple[str, str]]]:
    """regressor.cc PreProcessRegression."""
    inputs, outputs = _signature_io(signature, check, "regression", REGRESS_METHOD)
    if len(outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if "inputs" not in inputs:
        raise invalid_argument(f"No regression inputs found in SignatureDef: {signature}")
    if "outputs" not in outputs:
        raise invalid_argument(f"No regression outputs found in SignatureDef: {signature}")
    return inputs["inputs"].name, [("outputs", outputs["outputs"].name)]


def _post_regress(
    found: dict[str, np.ndarray], n: int, result: regression_pb2.RegressionResult
) -> None:
    """regressor.cc PostProcessRegressionResult."""
    value = found["outputs"]
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
    for v in value.ravel():
        result.regressions.add(value=float(v))


def _run_examples(
    servable: Servable,
    model_input: input_pb2.Input,
    input_names: set[str],
    output_names: list[str],
    settings: RunSettings,
) -> tuple[dict[str, np.ndarray], int]:
    """util.cc PerformOneShotTensorComputation: the serialized examples fed to every input."""
    examples = serialized_examples(model_input)
    values = servable.run(
        {name: examples for name in sorted(input_names)}, output_names, settings.timeout_ms
    )
    return dict(zip(output_names, values, strict=True)), len(examples)


def _examples_task(
    servable: Servable,
    request: Any,
    settings: RunSettings,
    pre: Callable[[object, bool], tuple[str, list[tuple[str, str]]]],
    post: Callable[[dict[str, np.ndarray], int, Any], None],
    response: Any,
) -> Any:
    """Classify or Regress: find the signature, run its examples, fill the response."""
    name, signature = _find_signature(servable, request.model_spec.signature_name)
    input_name, wanted = pre(signature, settings.method_name_check)
    by_name, n = _run_examples(
        servable, request.input, {input_name}, [t for _, t in wanted], settings
    )
    fill_model_spec(response.model_spec, request.model_spec.name, servable.version, name)
    post({k: by_name[t] for k, t in wanted}, n, response.result)
    return response


def classify(
    servable: Servable, request: classification_pb2.ClassificationRequest, settings: RunSettings
) -> classification_pb2.ClassificationResponse:
    response = classification_pb2.ClassificationResponse()
    return _examples_task(servable, request, settings, _pre_classify, _post_classify, response)


def regress(
    servable: Servable, request: regression_pb2.RegressionRequest, settings: RunSettings
) -> regression_pb2.RegressionResponse:
    response = regression_pb2.RegressionResponse()
    return _examples_task(servable, request, settings, _pre_regress, _post_regress, response)


def multi_inference(
    servable: Servable, request: inference_pb2.MultiInferenceRequest, settings: RunSettings
) -> inference_pb2.MultiInferenceResponse:
    """multi_inference.cc TensorFlowMultiInferenceRunner::Infer: classify and regress tasks of
    one model in one session run over the same examples."""
    model_name = ""
    seen: set[str] = set()
    inputs: set[str] = set()
    outputs: list[str] = []
    plans = []
    for task in request.tasks:
        if not task.model_spec.name:
            raise invalid_argument("Found ModelSpec with an empty model name.")
        if not model_name:
            model_name = task.model_spec.name
        elif model_name != task.model_spec.name:
            raise invalid_argument(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name."
            )
        key = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if key in seen:
            raise invalid_argument(f"Duplicate evaluation of signature: {key}")
        seen.add(key)
        signature = servable.signatures.get(key)
        if signature is None:
            raise invalid_argument(f"Requested signature not found in model graph: {key}")
        if task.method_name == CLASSIFY_METHOD:
            input_name, wanted = _pre_classify(signature, settings.method_name_check)
        elif task.method_name == REGRESS_METHOD:
            input_name, wanted = _pre_regress(signature, settings.method_name_check)
        else:
            raise unimplemented(f"Unsupported signature method_name: {task.method_name}")
        inputs.add(input_name)
        outputs.extend(t for _, t in wanted if t not in outputs)
        plans.append((task, wanted))
    outputs.sort()
    by_name, n = _run_examples(servable, request.input, inputs, outputs, settings)
    response = inference_pb2.MultiInferenceResponse()
    for task, wanted in plans:
        result = response.results.add()
        found = {k: by_name[t] for k, t in wanted}
        if task.method_name == CLASSIFY_METHOD:
            _post_classify(found, n, result.classification_result)
        else:
            _post_regress(found, n, result.regression_result)
        fill_model_spec(
            result.model_spec,
            task.model_spec.name,
            servable.version,
            task.model_spec.signature_name or DEFAULT_SIGNATURE,
        )
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
