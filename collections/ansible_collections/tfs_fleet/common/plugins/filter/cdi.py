# Copyright: tfs-fleet developers
# Apache License 2.0
"""Whether containers get their GPUs through CDI, from the engine's and the toolkit's versions."""

from __future__ import annotations

import re
from typing import Any

DOCUMENTATION = r"""
name: cdi_engine_mode
short_description: Whether a Docker engine can take the NVIDIA toolkit's CDI devices
description:
  - Decides the GPU access mode of the nvidia_container_toolkit role from the engine's version
    (C(docker version --format '{{.Server.Version}}')) and the toolkit's pinned version.
  - Docker 25.0 reads CDI specs (an opt-in, C(features.cdi), until 28.2, which enables CDI by
    default). Toolkit 1.19 and later write their specs with CDI spec version 0.7.0, which needs
    Docker 26.1.0 or later (NVIDIA Container Toolkit release notes, 1.19.1, Known Issues), so with
    such a toolkit an engine before 26.1 keeps the C(--gpus) path.
  - Returns a dict with C(on) (CDI devices), C(default_on) (the engine enables CDI itself,
    28.2+), C(min_engine) (the engine release CDI needs with this toolkit) and C(why) (a sentence
    when CDI is off).
options:
  _input:
    description: The engine's version (for example C(26.1.5+dfsg1)); empty when unknown.
    type: str
    required: true
  toolkit_version:
    description: The toolkit's package version (for example C(1.20.0-1)).
    type: str
    required: true
  wanted:
    description: The role's C(nvidia_container_toolkit_cdi).
    type: bool
    default: true
"""

_MAJOR_MINOR = re.compile(r"^\s*v?(\d+)\.(\d+)")


def _major_minor(version: object) -> tuple[int, int]:
    match = _MAJOR_MINOR.match(str(version or ""))
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def cdi_engine_mode(
    engine_version: object, toolkit_version: object, wanted: bool = True
) -> dict[str, Any]:
    engine = _major_minor(engine_version)
    toolkit = _major_minor(toolkit_version)
    if toolkit == (0, 0):
        raise ValueError(
            f"cdi_engine_mode: nvidia_container_toolkit_version {toolkit_version!r} is not a "
            "version (expected for example 1.20.0-1)"
        )
    minimum = (26, 1) if toolkit >= (1, 19) else (25, 0)
    on = bool(wanted) and engine >= minimum
    shown = str(engine_version).strip() or "?"
    if on:
        why = ""
    elif not wanted:
        why = "nvidia_container_toolkit_cdi is false"
    elif engine < (25, 0):
        why = f"Docker {shown} has no CDI (25.0 or later has)"
    else:
        why = (
            f"Docker {shown} cannot read toolkit {toolkit[0]}.{toolkit[1]}'s CDI spec "
            "(version 0.7.0 needs Docker 26.1 or later)"
        )
    return {
        "on": on,
        "default_on": engine >= (28, 2),
        "min_engine": f"{minimum[0]}.{minimum[1]}",
        "why": why,
    }


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"cdi_engine_mode": cdi_engine_mode}
