"""A client the way the seed's runbook writes one (section 2.2): TensorFlow imported for
tf.make_tensor_proto, tensorflow_serving's stubs, one Predict. Run as a script by
:mod:`tfs_bench.cold_start` (it is the baseline of smoke_cold_start_ratio, not a tool).

    python seed_client.py HOST:PORT
"""

from __future__ import annotations

import sys

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: seed_client.py HOST:PORT", file=sys.stderr)
        return 2
    channel = grpc.insecure_channel(argv[0])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "serving_default"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[1.0]], dtype=np.float32)))
    result = stub.Predict(request, 10.0)
    value = float(tf.make_ndarray(result.outputs["pred"]).reshape(-1)[0])
    print(value)
    return 0 if value == 2.5 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
