# Copyright: tfs-fleet contributors
# Apache-2.0
"""CUDA compatibility data and logic shared by the tfs_fleet.common filters.

Two tables:

* ``DRIVER_TABLE``: CUDA toolkit release (major.minor) -> the minimum Linux x86_64 NVIDIA
  driver its GA release needs ("CUDA Toolkit and Corresponding Driver Versions" in NVIDIA's
  CUDA toolkit release notes), CUDA 9.0 through 13.3 (13.4 and 13.5: docs/gpu.md says why not).
* ``TFSERVING_CUDA``: TensorFlow Serving release (major.minor) -> the CUDA release its
  official GPU image (``tensorflow/serving:<version>-gpu``, built from
  tensorflow_serving/tools/docker/Dockerfile.gpu) is based on.

Everything here is pure Python without Ansible imports, so that it is unit-testable and
usable from filters and modules alike.
"""

from __future__ import annotations

import re

# (CUDA major.minor, minimum Linux x86_64 driver of its GA release), ascending.
DRIVER_TABLE: tuple[tuple[str, str], ...] = (
    ("9.0", "384.81"),
    ("9.1", "390.46"),
    ("9.2", "396.26"),
    ("10.0", "410.48"),
    ("10.1", "418.39"),
    ("10.2", "440.33"),
    ("11.0", "450.51.05"),
    ("11.1", "455.23"),
    ("11.2", "460.27.03"),
    ("11.3", "465.19.01"),
    ("11.4", "470.42.01"),
    ("11.5", "495.29.05"),
    ("11.6", "510.39.01"),
    ("11.7", "515.43.04"),
    ("11.8", "520.61.05"),
    ("12.0", "525.60.13"),
    ("12.1", "530.30.02"),
    ("12.2", "535.54.03"),
    ("12.3", "545.23.06"),
    ("12.4", "550.54.14"),
    # 12.5: Update 1 (12.5.1, the CUDA of TF Serving 2.20's image) needs 555.42.06; GA had .02.
    ("12.5", "555.42.06"),
    ("12.6", "560.28.03"),
    ("12.8", "570.26"),
    ("12.9", "575.51.03"),
    ("13.0", "580.65.06"),
    ("13.1", "590.44.01"),
    # 13.2 GA: "CUDA 13.2 GA | >=595.45.04", Table 3 of the 13.2 release notes (docs/gpu.md).
    ("13.2", "595.45.04"),
    # 13.3 GA: the driver its runfile bundles (cuda_13.3.0_610.43.02_linux.run), docs/gpu.md.
    ("13.3", "610.43.02"),
)

# CUDA minor version compatibility (CUDA 11 and later): a driver at or above the major's
# floor runs any minor release of that major (with the limits NVIDIA documents, e.g. no PTX
# JIT of newer code). Off by default: the gate asks for the toolkit's own minimum driver.
MINOR_COMPAT_FLOOR: dict[int, str] = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}

# TF Serving major.minor -> CUDA of its official GPU image (Dockerfile.gpu's nvidia/cuda base).
# 2.21: no r2.21 branch or tag existed in tensorflow/serving when this was written; master
# after the 2.20.0 tag still builds Dockerfile.gpu FROM nvidia/cuda:12.5.1 (CUDA=12.5), so
# 2.21 is recorded as 12.5. Override per fleet with cuda_gate_tfserving_cuda_overrides.
TFSERVING_CUDA: dict[str, str] = {
    "2.14": "11.8",
    "2.15": "12.2",
    "2.16": "12.2",
    "2.17": "12.2",
    "2.18": "12.2",
    "2.19": "12.2",
    "2.20": "12.5",
    "2.21": "12.5",
}

IMAGE_SOURCES: tuple[str, ...] = ("pull", "archive", "build", "standin")
GPU_IMAGE_SOURCES: tuple[str, ...] = ("pull", "archive", "build")
ON_INCOMPATIBLE: tuple[str, ...] = ("fail", "build")

_DRIVER_RE = re.compile(r"^(\d{2,4})\.(\d{1,3})(?:\.(\d{1,3}))?$")
_CUDA_RE = re.compile(r"^(\d{1,2})\.(\d{1,2})(?:\.\d{1,4})?$")
_TFS_RE = re.compile(r"^(\d{1,2})\.(\d{1,3})(?:\.\d{1,3})?(?:-rc\d+)?(?:-gpu)?$")

DriverVersion = tuple[int, int, int]
CudaVersion = tuple[int, int]


class CudaCompatError(ValueError):
    """Raised for malformed or unknown input; the message names the input and the fix."""


def _matched(
    pattern: re.Pattern[str], value: object, what: str, like: str, expected: str
) -> re.Match[str]:
    """``pattern`` matched against the string ``value``; CudaCompatError naming ``what``."""
    if not isinstance(value, str):
        raise CudaCompatError(f"{what} must be a string like {like}, got {value!r}")
    match = pattern.match(value.strip())
    if match is None:
        raise CudaCompatError(f"malformed {what} {value!r}: expected {expected}")
    return match


def parse_driver_version(value: object) -> DriverVersion:
    """Parse an NVIDIA driver version such as '535.104.05' or '396.37' into a 3-tuple."""
    match = _matched(
        _DRIVER_RE,
        value,
        "NVIDIA driver version",
        "'535.104.05'",
        "MAJOR.MINOR[.PATCH] digits, as printed by "
        "'nvidia-smi --query-gpu=driver_version --format=csv,noheader'",
    )
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def parse_cuda_version(value: object) -> CudaVersion:
    """Parse a CUDA version such as '12.2' or '12.2.0' into (major, minor)."""
    match = _matched(_CUDA_RE, value, "CUDA version", "'12.2'", "MAJOR.MINOR such as '12.2'")
    return int(match.group(1)), int(match.group(2))


def format_cuda(version: CudaVersion) -> str:
    return f"{version[0]}.{version[1]}"


def tfserving_series(value: object) -> str:
    """Return the major.minor series of a TF Serving version ('2.19.1-gpu' -> '2.19')."""
    match = _matched(
        _TFS_RE,
        value,
        "TF Serving version",
        "'2.19.1'",
        "a release such as '2.19.1' "
        "('latest' and other floating tags cannot be checked: pin a release)",
    )
    return f"{int(match.group(1))}.{int(match.group(2))}"


def _driver_table() -> list[tuple[CudaVersion, DriverVersion]]:
    return [(parse_cuda_version(c), parse_driver_version(d)) for c, d in DRIVER_TABLE]


def min_driver_for_cuda(cuda: str) -> str:
    """Minimum driver (as in NVIDIA's table) for a CUDA major.minor release."""
    wanted = parse_cuda_version(cuda)
    for cuda_text, driver_text in DRIVER_TABLE:
        if parse_cuda_version(cuda_text) == wanted:
            return driver_text
    known = ", ".join(c for c, _ in DRIVER_TABLE)
    raise CudaCompatError(f"CUDA {cuda} is not in the driver table (known: {known})")


def max_cuda_for_driver(driver: str, minor_compat: bool = False) -> str | None:
    """Highest CUDA major.minor that a driver supports, or None below CUDA 9.0's minimum."""
    version = parse_driver_version(driver)
    best: CudaVersion | None = None
    for cuda, minimum in _driver_table():
        if version >= minimum:
            best = cuda
    if minor_compat:
        for major, floor in MINOR_COMPAT_FLOOR.items():
            if version >= parse_driver_version(floor):
                same_major = [c for c, _ in _driver_table() if c[0] == major]
                top = max(same_major)
                best = top if best is None or top > best else best
    return None if best is None else format_cuda(best)


def cuda_for_tfserving(version: str, overrides: dict[str, str] | None = None) -> str:
    """CUDA major.minor that TF Serving's official GPU image for this release needs."""
    series = tfserving_series(version)
    table = dict(TFSERVING_CUDA)
    for key, cuda in (overrides or {}).items():
        table[tfserving_series(str(key))] = format_cuda(parse_cuda_version(str(cuda)))
    if series not in table:
        known = ", ".join(sorted(table, key=lambda s: tuple(int(p) for p in s.split("."))))
        raise CudaCompatError(
            f"TF Serving {version} is not in the CUDA table (known releases: {known}); "
            "add it with cuda_gate_tfserving_cuda_overrides: {'"
            + series
            + "': '<CUDA of its Dockerfile.gpu>'}"
        )
    return table[series]


def cuda_supported(driver: str, cuda: str, minor_compat: bool = False) -> bool:
    top = max_cuda_for_driver(driver, minor_compat=minor_compat)
    return top is not None and parse_cuda_version(cuda) <= parse_cuda_version(top)


def releases_within(max_cuda: str | None, overrides: dict[str, str] | None = None) -> list[str]:
    """TF Serving releases whose GPU image runs with CUDA <= max_cuda."""
    if max_cuda is None:
        return []
    limit = parse_cuda_version(max_cuda)
    series = set(TFSERVING_CUDA) | {tfserving_series(str(k)) for k in (overrides or {})}
    fits = [s for s in series if parse_cuda_version(cuda_for_tfserving(s, overrides)) <= limit]
    return sorted(fits, key=lambda s: tuple(int(p) for p in s.split(".")))


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise CudaCompatError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _incompatible_message(
    host: str, driver: str, max_cuda: str | None, needed: str, what: str, fits: list[str]
) -> str:
    supports = f"supports CUDA up to {max_cuda}" if max_cuda else "is older than CUDA 9.0 needs"
    ways = [
        f"upgrade the driver to {min_driver_for_cuda(needed)} or newer (set "
        "nvidia_driver_branch and run playbooks/gpu_hosts.yml)",
    ]
    if max_cuda is not None:
        ways.append(
            f"set cuda_gate_on_incompatible: build to build an image with CUDA {max_cuda} "
            "on this host (TF Serving's Dockerfile.devel-gpu/Dockerfile.gpu)"
        )
    if fits:
        ways.append(f"pin a TF Serving release whose image fits: {', '.join(fits)}")
    numbered = "; ".join(f"({i}) {w}" for i, w in enumerate(ways, start=1))
    return (
        f"host {host}: NVIDIA driver {driver} {supports}, but {what} needs CUDA {needed} "
        f"(driver >= {min_driver_for_cuda(needed)}). Ways out: {numbered}."
    )


def gate(
    *,
    host: str,
    driver: str,
    tfserving_version: str,
    image_source: str,
    gpu: bool = True,
    on_incompatible: str = "fail",
    build_cuda: str = "",
    minor_compat: bool = False,
    overrides: dict[str, str] | None = None,
) -> dict[str, object]:
    """Decide whether a host may run the GPU image; see docs/gpu.md for the contract.

    Returns a dict with action 'proceed', 'fail' or 'build', the image source to use, the
    CUDA the image needs, the driver's highest CUDA and a message for people.
    """
    _check_choice("image source", image_source, IMAGE_SOURCES)
    _check_choice("on_incompatible", on_incompatible, ON_INCOMPATIBLE)
    result: dict[str, object] = {
        "host": host,
        "gpu": bool(gpu),
        "driver_version": driver or "",
        "tfserving_version": tfserving_version,
        "image_source": image_source,
        "requested_image_source": image_source,
        "cuda_required": None,
        "driver_max_cuda": None,
        "build_cuda": None,
        "compatible": True,
        "action": "proceed",
    }
    if not gpu or image_source not in GPU_IMAGE_SOURCES:
        why = "has no NVIDIA GPU" if not gpu else f"uses the '{image_source}' (CPU) image"
        result["message"] = f"host {host} {why}: the CUDA gate does not apply"
        return result
    if not driver:
        raise CudaCompatError(
            f"host {host} has an NVIDIA GPU but no loaded driver version is known: run the "
            "nvidia_driver role first (it sets nvidia_driver_installed_version) or set "
            "cuda_gate_driver_version"
        )
    max_cuda = max_cuda_for_driver(driver, minor_compat=minor_compat)
    result["driver_max_cuda"] = max_cuda
    if image_source == "build":
        chosen = build_cuda or max_cuda
        if chosen is None:
            raise CudaCompatError(
                f"host {host}: NVIDIA driver {driver} is older than CUDA 9.0 needs "
                f"({min_driver_for_cuda('9.0')}); no image can be built for it: upgrade the driver"
            )
        chosen = format_cuda(parse_cuda_version(chosen))
        result["cuda_required"] = chosen
        result["build_cuda"] = chosen
        what = f"the image built for CUDA {chosen} (cuda_gate_build_cuda)"
    else:
        chosen = cuda_for_tfserving(tfserving_version, overrides)
        result["cuda_required"] = chosen
        what = f"TF Serving {tfserving_version}'s GPU image (image source '{image_source}')"
    if cuda_supported(driver, chosen, minor_compat=minor_compat):
        result["message"] = (
            f"host {host}: NVIDIA driver {driver} supports CUDA up to {max_cuda}; "
            f"{what} needs CUDA {chosen}: compatible"
        )
        return result
    result["compatible"] = False
    message = _incompatible_message(
        host, driver, max_cuda, chosen, what, releases_within(max_cuda, overrides)
    )
    if on_incompatible == "build" and image_source != "build" and max_cuda is not None:
        result.update(action="build", image_source="build", build_cuda=max_cuda)
        result["message"] = (
            f"host {host}: NVIDIA driver {driver} supports CUDA up to {max_cuda}, but {what} "
            f"needs CUDA {chosen}: switching this host to image source 'build' with CUDA "
            f"{max_cuda} (cuda_gate_on_incompatible: build)"
        )
        return result
    result["action"] = "fail"
    result["message"] = message
    return result
