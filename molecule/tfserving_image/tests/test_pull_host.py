"""Verifier, pull host: logged in to the (loopback stand-in) registry, pulled the image once."""

from __future__ import annotations

import json
import subprocess

testinfra_hosts = ["ansible://tfsf-image-pull"]

REF = "127.0.0.1:5000/tfsf-image/serving:2.19.0"
REQUESTS = "/opt/tfsf-image/requests.log"


def probe_id() -> str:
    """The served image is tfs-fleet/probe:latest; its ID as the controller's engine reports it."""
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", "tfs-fleet/probe:latest"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def test_pulled_image_is_on_the_host(host):
    assert host.check_output("docker image inspect --format '{{.Id}}' %s", REF) == probe_id()


def test_output_facts(host):
    facts = json.loads(host.file("/root/tfsf-image-facts.json").content_string)
    assert facts["ref"] == REF
    assert facts["id"] == probe_id()
    assert facts["source"] == "pull"


def test_login_stored_for_the_registry_named_in_the_repository(host):
    config = json.loads(host.file("/root/.docker/config.json").content_string)
    assert "127.0.0.1:5000" in config["auths"]


def test_pulled_once_over_converge_and_idempotence(host):
    lines = host.file(REQUESTS).content_string.splitlines()
    manifests = [line for line in lines if line.startswith("GET /v2/tfsf-image/serving/manifests/")]
    blobs = [line for line in lines if line.startswith("GET /v2/tfsf-image/serving/blobs/")]
    assert len(manifests) == 1, lines
    assert blobs, "the layers were downloaded from the registry"
