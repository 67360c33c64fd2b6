"""Unit tests of the docker save reader behind the tfs_fleet.common.docker_archive lookup."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from ansible_collections.tfs_fleet.common.plugins.module_utils.docker_archive import (
    DockerArchiveError,
    normalize_reference,
    read_archive,
)

from helpers import docker, require_docker_image

CONFIG_A = b'{"architecture":"amd64","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers"}}'
CONFIG_B = b'{"architecture":"amd64","config":{"Cmd":["/bin/true"]},"rootfs":{"type":"layers"}}'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_tar(path: Path, members: dict[str, bytes], compress: bool = False) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def classic(tags: list[str], config: bytes = CONFIG_A) -> dict[str, bytes]:
    """The layout docker save writes up to Docker 24."""
    manifest = [{"Config": f"{sha(config)}.json", "RepoTags": tags, "Layers": ["l1/layer.tar"]}]
    return {f"{sha(config)}.json": config, "manifest.json": json.dumps(manifest).encode()}


def oci(tags: list[str], config: bytes = CONFIG_A) -> dict[str, bytes]:
    """The layout docker save writes from Docker 25 on (blobs/sha256/<hex>)."""
    manifest = [{"Config": f"blobs/sha256/{sha(config)}", "RepoTags": tags, "Layers": []}]
    return {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        f"blobs/sha256/{sha(config)}": config,
        "manifest.json": json.dumps(manifest).encode(),
    }


def test_classic_layout_gives_the_config_digest(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "a.tar", classic(["tfs-fleet/serving-standin:latest"]))
    info = read_archive(str(path))
    assert info["image_id"] == f"sha256:{sha(CONFIG_A)}"
    assert info["reference"] == "tfs-fleet/serving-standin:latest"
    assert info["repo_tags"] == ["tfs-fleet/serving-standin:latest"]
    assert info["layers"] == 1


def test_oci_layout_and_gzip(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "a.tar.gz", oci(["x/y:1"]), compress=True)
    assert read_archive(str(path))["image_id"] == f"sha256:{sha(CONFIG_A)}"


def test_several_images_need_a_reference(tmp_path: Path) -> None:
    members = classic(["a/one:1"]) | classic(["b/two:2"], CONFIG_B)
    manifest = [json.loads(classic(["a/one:1"])["manifest.json"])[0]]
    manifest += [json.loads(classic(["b/two:2"], CONFIG_B)["manifest.json"])[0]]
    members["manifest.json"] = json.dumps(manifest).encode()
    path = write_tar(tmp_path / "two.tar", members)
    with pytest.raises(DockerArchiveError, match=r"holds 2 images .*tfserving_image_archive_ref"):
        read_archive(str(path))
    assert read_archive(str(path), "b/two:2")["image_id"] == f"sha256:{sha(CONFIG_B)}"
    with pytest.raises(DockerArchiveError, match=r"does not hold c/three:3 \(it holds: a/one:1"):
        read_archive(str(path), "c/three:3")


def test_reference_matching_ignores_implicit_parts(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "a.tar", classic(["busybox:latest"]))
    assert read_archive(str(path), "docker.io/library/busybox")["reference"] == (
        "docker.io/library/busybox"
    )
    assert normalize_reference("registry.local:5000/ml/serving") == (
        "registry.local:5000/ml/serving:latest"
    )
    assert normalize_reference("docker.io/tensorflow/serving:2.19.0") == "tensorflow/serving:2.19.0"


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"other.txt": b"x"}, "'manifest.json' is missing"),
        ({"manifest.json": b"not json"}, "manifest.json is not valid JSON"),
        ({"manifest.json": b"[]"}, "manifest.json lists no image"),
        ({"manifest.json": b'[{"RepoTags": ["a:b"]}]'}, "has no 'Config' path"),
        ({"manifest.json": b'[{"Config": "c.json", "RepoTags": ["a:b"]}]'}, "'c.json' is missing"),
    ],
)
def test_broken_archives_are_named(tmp_path: Path, members: dict[str, bytes], message: str) -> None:
    path = write_tar(tmp_path / "bad.tar", members)
    with pytest.raises(DockerArchiveError, match=message) as caught:
        read_archive(str(path))
    assert str(path) in str(caught.value)


def test_corrupt_config_blob_is_detected(tmp_path: Path) -> None:
    members = classic(["a/b:c"])
    members[f"{sha(CONFIG_A)}.json"] = CONFIG_B
    path = write_tar(tmp_path / "corrupt.tar", members)
    with pytest.raises(DockerArchiveError, match="the archive is corrupt"):
        read_archive(str(path))


def test_untagged_image_needs_a_name(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "untagged.tar", classic([]))
    with pytest.raises(DockerArchiveError, match="untagged image"):
        read_archive(str(path))


def test_missing_and_non_tar_files(tmp_path: Path) -> None:
    with pytest.raises(DockerArchiveError, match="does not exist on the controller"):
        read_archive(str(tmp_path / "nope.tar"))
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(DockerArchiveError, match="cannot be read as a tar archive"):
        read_archive(str(junk))


@pytest.mark.docker
def test_real_docker_save_matches_the_engine(tmp_path: Path) -> None:
    """The ID read from a real `docker save` equals what `docker image inspect` reports."""
    image = "tfs-fleet/probe:latest"
    require_docker_image(image)
    path = tmp_path / "probe.tar"
    subprocess.run(["docker", "save", "-o", str(path), image], check=True)
    expected = docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
    info = read_archive(str(path))
    assert info["image_id"] == expected
    assert info["reference"] == image
