"""Verifier, air-gapped host: the archive's image is loaded, under its name, and recorded."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

testinfra_hosts = ["ansible://tfsf-image-cpu"]

PROBE = "tfs-fleet/probe:latest"
CACHE_DIR = "/var/cache/tfs-fleet/images"


def archive_image_id() -> str:
    """The ID of the image in the tarball, read by the controller's own engine (not the role)."""
    archive = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "probe.tar"
    assert archive.is_file(), f"{archive} is missing: prepare.yml makes it"
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", PROBE],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def test_host_image_id_equals_the_archives(host):
    on_host = host.check_output("docker image inspect --format '{{.Id}}' %s", PROBE)
    assert on_host == archive_image_id()


def test_output_facts(host):
    facts = json.loads(host.file("/root/tfsf-image-facts.json").content_string)
    assert facts["ref"] == PROBE
    assert facts["id"] == archive_image_id()
    assert facts["source"] == "archive"
    # prepare.yml put another image under the same name; the role moved the tag off it.
    assert host.file("/root/tfsf-image-old-id").content_string.strip() != facts["id"]
    assert facts["gate"]["action"] == "proceed"


def test_record_for_later_runs(host):
    record = json.loads(host.file("/etc/ansible/facts.d/tfserving_image.fact").content_string)
    facts = json.loads(host.file("/root/tfsf-image-facts.json").content_string)
    assert record == {
        "ref": PROBE,
        "id": facts["id"],
        "source": "archive",
        "digest": "",  # a loaded archive has no repository digest
    }


def test_old_image_is_kept_for_rollback(host):
    old = host.file("/root/tfsf-image-old-id").content_string.strip()
    assert host.run("docker image inspect %s", old).rc == 0


def test_shipped_tarball_was_removed(host):
    # rsync transfer: the cache is root's and only searchable (0711); the archive travelled into
    # the login user's own incoming directory and was removed after the load.
    cache = host.file(CACHE_DIR)
    assert cache.is_directory and cache.user == "root"
    assert cache.mode == 0o711
    assert host.check_output("ls -A %s", CACHE_DIR) == "incoming"
    incoming = host.file(f"{CACHE_DIR}/incoming")
    assert incoming.mode == 0o700
    assert host.check_output("ls -A %s/incoming", CACHE_DIR) == ""


def test_the_loaded_image_runs(host):
    out = host.check_output("docker run --rm %s echo loaded-from-archive", PROBE)
    assert out == "loaded-from-archive"
