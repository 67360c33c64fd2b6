"""Verifier, old GPU host (driver 396.37): the gate switched it to a CUDA 9.2 build, and the
two-stage build ran in the background and produced the runtime image."""

from __future__ import annotations

import json

testinfra_hosts = ["ansible://tfsf-image-gpu396"]

RUNTIME = "tfs-fleet/tfserving:2.19.0-gpu-cuda9.2"
DEVEL = "tfs-fleet/tfserving:2.19.0-devel-gpu-cuda9.2"
CONTEXT = "/var/lib/tfs-fleet/build/2.19.0-cuda9.2"
LABEL_FORMAT = '{{index .Config.Labels "org.tfs-fleet.build-hash"}}'


def facts(host):
    return json.loads(host.file("/root/tfsf-image-facts.json").content_string)


def test_gate_switched_to_a_build_with_the_drivers_cuda(host):
    gate = facts(host)["gate"]
    assert gate["action"] == "build"
    assert gate["requested_image_source"] == "pull"
    assert gate["driver_version"] == "396.37"
    assert gate["cuda_required"] == "12.2"
    assert gate["build_cuda"] == "9.2"


def test_output_facts_point_at_the_built_image(host):
    out = facts(host)
    assert out["source"] == "build"
    assert out["ref"] == RUNTIME
    assert out["id"] == host.check_output("docker image inspect --format '{{.Id}}' %s", RUNTIME)


def test_both_stages_built_with_the_recipe_hash(host):
    hashes = {
        host.check_output("docker image inspect --format %s %s", LABEL_FORMAT, image)
        for image in (DEVEL, RUNTIME)
    }
    assert len(hashes) == 1
    assert len(hashes.pop()) == 64


def test_runtime_image_carries_the_cuda_and_the_entrypoint_contract(host):
    labels = json.loads(
        host.check_output("docker image inspect --format '{{json .Config.Labels}}' %s", RUNTIME)
    )
    assert labels["org.tfs-fleet.cuda"] == "9.2"
    assert labels["org.tfs-fleet.cudnn"] == "7.4.1.5"
    out = host.check_output(
        "docker run --rm -e MODEL_NAME=half_plus_two %s --enable_batching", RUNTIME
    )
    assert out == (
        "fake tensorflow_model_server 2.19.0 CUDA 9.2 cuDNN 7.4.1.5 args: --port=8500 "
        "--rest_api_port=8501 --model_name=half_plus_two "
        "--model_base_path=/models/half_plus_two --enable_batching"
    )


def test_build_context_and_log(host):
    assert (
        "ARG TF_SERVING_BUILD_IMAGE=" + DEVEL
        in host.file(f"{CONTEXT}/runtime/Dockerfile").content_string
    )
    log = host.file(f"{CONTEXT}/build.log").content_string
    assert log.index("== stage 1/2: devel image") < log.index("== stage 2/2: runtime image")
    assert f"== done: {RUNTIME}" in log
