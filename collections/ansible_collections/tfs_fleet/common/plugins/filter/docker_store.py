# Copyright: tfs-fleet developers
# Apache License 2.0
"""Which image store a Docker engine uses, from its ``docker info`` JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DOCUMENTATION = r"""
name: docker_image_store
short_description: Which image store a Docker engine uses (containerd or graphdriver)
description:
  - Reads the output of C(docker info --format '{{json .}}') (parsed) and returns C(containerd)
    when the engine stores images in containerd (its C(DriverStatus) names the
    C(io.containerd.snapshotter.v1) driver type, the default of fresh Docker 29 installs and an
    opt-in before), else C(graphdriver) (overlay2, vfs and the other classic storage drivers).
  - On the containerd store an image's ID is the digest of its manifest (or index), not of its
    configuration, so the ID a C(docker save) archive's C(manifest.json) names is not what
    C(docker image inspect) reports; layers are kept compressed in the content store besides the
    unpacked snapshots (about twice the disk of the graphdriver store).
options:
  _input:
    description: The engine's C(docker info) as a mapping.
    type: dict
    required: true
"""

CONTAINERD_DRIVER_TYPE = "io.containerd.snapshotter.v1"


def docker_image_store(info: Mapping[str, Any]) -> str:
    """'containerd' or 'graphdriver' from ``docker info``; ValueError when it is not one."""
    if not isinstance(info, Mapping) or "Driver" not in info:
        raise ValueError(
            "docker_image_store expects the engine's `docker info --format '{{json .}}'` as a "
            f"mapping with a Driver key, got {type(info).__name__}"
        )
    status = info.get("DriverStatus") or []
    for pair in status:
        if (
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and str(pair[0]) == "driver-type"
            and str(pair[1]) == CONTAINERD_DRIVER_TYPE
        ):
            return "containerd"
    return "graphdriver"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"docker_image_store": docker_image_store}
