"""The image role's detection of the engine's image store (tfs_fleet.common.docker_image_store):
Docker 29 keeps images in containerd on fresh installs, where an image's ID is its manifest's
digest and not the configuration digest a `docker save` archive names."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.tfs_fleet.common.plugins.filter.docker_store import docker_image_store

REPO = Path(__file__).resolve().parents[2]

# `docker info` of this machine's engine (Debian 12's docker.io 20.10.24, overlay2), trimmed.
GRAPHDRIVER = {
    "Driver": "overlay2",
    "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"],
                     ["Native Overlay Diff", "true"], ["userxattr", "false"]],
    "ServerVersion": "20.10.24+dfsg1",
}  # fmt: skip
# The containerd image store as `docker info` reports it (Storage Driver: overlayfs,
# driver-type: io.containerd.snapshotter.v1).
CONTAINERD = {
    "Driver": "overlayfs",
    "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]],
    "ServerVersion": "29.1.3",
}


def test_graphdriver_engine() -> None:
    assert docker_image_store(GRAPHDRIVER) == "graphdriver"
    assert docker_image_store({"Driver": "vfs", "DriverStatus": None}) == "graphdriver"


def test_containerd_image_store() -> None:
    assert docker_image_store(CONTAINERD) == "containerd"
    # The driver type decides, not the driver's name (other snapshotters: native, zfs, ...).
    assert docker_image_store({**CONTAINERD, "Driver": "native"}) == "containerd"


@pytest.mark.parametrize("bad", [None, "overlay2", {"DriverStatus": []}])
def test_not_docker_info(bad: object) -> None:
    with pytest.raises(ValueError, match="docker info"):
        docker_image_store(bad)  # type: ignore[arg-type]


def test_the_archive_source_reads_the_store_before_looking_up_the_id() -> None:
    tasks = yaml.safe_load((REPO / "roles/tfserving_image/tasks/source_archive.yml").read_text())
    names = [t["name"] for t in tasks]
    store = names.index("Read the engine's image store")
    assert store < names.index("Look for that image ID on the host")
    assert "tfs_fleet.common.docker_image_store" in yaml.safe_dump(tasks)
