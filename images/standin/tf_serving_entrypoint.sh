#!/bin/bash
# The container contract of tensorflow/serving's image: gRPC on 8500, REST on 8501, one model
# named ${MODEL_NAME} (default "model") under ${MODEL_BASE_PATH}/${MODEL_NAME} (default /models),
# and any extra arguments appended as tensorflow_model_server flags.
exec tensorflow_model_server --port=8500 --rest_api_port=8501 \
  --model_name="${MODEL_NAME}" --model_base_path="${MODEL_BASE_PATH}/${MODEL_NAME}" "$@"
