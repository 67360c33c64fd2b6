"""Verifier, pull host: the image came from the real registry on the host (roles/tfserving_registry
in prepare.yml) over TLS, trusting the test CA the role installed, with the puller's login,
pinned by digest, pulled once over converge and idempotence."""

from __future__ import annotations

import ipaddress
import json
import subprocess

testinfra_hosts = ["ansible://tfsf-image-pull"]

REGISTRY = "tfsf-registry.test:5000"
REPOSITORY = f"{REGISTRY}/tfsf-image/serving"


def probe_id() -> str:
    """The pushed image is tfs-fleet/probe:latest; its ID as the controller's engine reports it."""
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", "tfs-fleet/probe:latest"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def pushed_digest(host) -> str:
    return host.file("/root/tfsf-image-digest").content_string.strip()


def test_registry_runs_with_tls_and_auth(host):
    assert host.service("docker-registry").is_running
    assert host.service("docker-registry").is_enabled
    config = host.file("/etc/docker/registry/config.yml")
    assert config.mode == 0o640 and config.group == "docker-registry"
    assert host.file("/etc/docker/registry/tls.key").mode == 0o640
    # bcrypt, as the registry requires; both users, nothing else.
    users = host.file("/etc/docker/registry/htpasswd").content_string.split()
    assert sorted(line.split(":")[0] for line in users) == ["tfsf-puller", "tfsf-pusher"]
    assert all(line.split(":", 1)[1].startswith("$2") for line in users)
    # Storage in the package's directory, which outlives the service.
    assert host.file(
        "/var/lib/docker-registry/docker/registry/v2/repositories/tfsf-image"
    ).is_directory


def test_pulled_image_is_the_pinned_one(host):
    ref = f"{REPOSITORY}@{pushed_digest(host)}"
    assert host.check_output("docker image inspect --format '{{.Id}}' %s", ref) == probe_id()
    digests = json.loads(
        host.check_output("docker image inspect --format '{{json .RepoDigests}}' %s", ref)
    )
    assert ref in digests


def test_output_facts_and_record(host):
    facts = json.loads(host.file("/root/tfsf-image-facts.json").content_string)
    assert facts["ref"] == f"{REPOSITORY}@{pushed_digest(host)}"
    assert facts["id"] == probe_id()
    assert facts["source"] == "pull"
    record = json.loads(host.file("/etc/ansible/facts.d/tfserving_image.fact").content_string)
    assert record["digest"] == pushed_digest(host)


def test_the_engine_trusts_the_test_ca_not_insecure_registries(host):
    ca = host.file(f"/etc/docker/certs.d/{REGISTRY}/ca.crt")
    assert ca.exists and "BEGIN CERTIFICATE" in ca.content_string
    # The engine verifies the registry's certificate: the name is not insecure to it (loopback
    # would be: 127.0.0.0/8 is in the engine's default insecure CIDRs, so prepare.yml maps the
    # name to the host's own network address), and no insecure-registries setting names it.
    address = ipaddress.ip_address(host.check_output("getent hosts tfsf-registry.test").split()[0])
    config = json.loads(host.check_output("docker info --format '{{json .RegistryConfig}}'"))
    cidrs = [ipaddress.ip_network(c) for c in config.get("InsecureRegistryCIDRs") or []]
    assert not address.is_loopback and not any(address in cidr for cidr in cidrs), (address, cidrs)
    assert config.get("IndexConfigs", {}).get(REGISTRY, {}).get("Secure", True) is not False


def test_login_stored_for_the_registry_named_in_the_repository(host):
    config = json.loads(host.file("/root/.docker/config.json").content_string)
    assert REGISTRY in config["auths"]


def test_pulled_once_over_converge_and_idempotence(host):
    log = host.check_output("journalctl -u docker-registry --no-pager -o cat")
    engine = [line for line in log.splitlines() if 'http.request.useragent="docker/' in line]
    manifests = [
        line for line in engine
        if "response completed" in line and "http.request.method=GET" in line
        and "http.request.uri=\"/v2/tfsf-image/serving/manifests/" in line
    ]  # fmt: skip
    blobs = [
        line for line in engine
        if "response completed" in line and "http.request.method=GET" in line
        and "/v2/tfsf-image/serving/blobs/" in line
    ]  # fmt: skip
    assert len(manifests) == 1, manifests
    assert blobs, "the layers were downloaded from the registry"
