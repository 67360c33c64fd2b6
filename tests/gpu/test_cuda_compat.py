"""Unit tests of the CUDA compatibility tables and the gate's decision."""

from __future__ import annotations

import pytest
from ansible_collections.tfs_fleet.common.plugins.module_utils import cuda_compat as cc

# Independent spot checks taken from NVIDIA's release-notes table (not from cc.DRIVER_TABLE).
NVIDIA_POINTS = [
    ("384.81", "9.0"),
    ("390.46", "9.1"),
    ("396.26", "9.2"),
    ("396.36", "9.2"),  # the seed's host: "396.36, highest CUDA 9.2.88"
    ("410.48", "10.0"),
    ("418.39", "10.1"),
    ("440.33", "10.2"),
    ("450.51.04", "10.2"),
    ("450.51.05", "11.0"),
    ("460.32.03", "11.2"),
    ("470.82.01", "11.4"),
    ("520.61.05", "11.8"),
    ("525.60.13", "12.0"),
    ("535.54.02", "12.1"),
    ("535.104.05", "12.2"),
    ("550.54.15", "12.4"),
    ("555.42.02", "12.4"),  # 12.5 GA ran on .02, but 12.5.1 (TF Serving 2.20) needs .06
    ("555.42.06", "12.5"),
    ("560.35.05", "12.6"),
    ("570.26", "12.8"),
    ("575.57.08", "12.9"),
    ("580.65.06", "13.0"),
    ("590.48.01", "13.1"),
    ("595.45.03", "13.1"),
    ("595.45.04", "13.2"),
    ("610.43.01", "13.2"),
    ("610.43.02", "13.3"),
    ("999.99.99", "13.3"),
]


def _just_below(driver: str) -> str:
    major, minor, patch = cc.parse_driver_version(driver)
    if patch:
        return f"{major}.{minor}.{patch - 1:02d}"
    if minor:
        return f"{major}.{minor - 1}.99"
    return f"{major - 1}.99.99"


def test_table_covers_cuda_9_0_through_13() -> None:
    cudas = [c for c, _ in cc.DRIVER_TABLE]
    assert cudas[0] == "9.0"
    assert cudas[-1].startswith("13.")


def test_table_is_strictly_ascending_in_both_columns() -> None:
    cudas = [cc.parse_cuda_version(c) for c, _ in cc.DRIVER_TABLE]
    drivers = [cc.parse_driver_version(d) for _, d in cc.DRIVER_TABLE]
    assert cudas == sorted(set(cudas))
    assert drivers == sorted(set(drivers))


@pytest.mark.parametrize(("driver", "cuda"), NVIDIA_POINTS)
def test_max_cuda_for_driver_matches_nvidia(driver: str, cuda: str) -> None:
    assert cc.max_cuda_for_driver(driver) == cuda


@pytest.mark.parametrize(("cuda", "minimum"), cc.DRIVER_TABLE)
def test_every_row_edge(cuda: str, minimum: str) -> None:
    """At the minimum a release is supported; one patch below it the previous one is the top."""
    assert cc.max_cuda_for_driver(minimum) == cuda
    assert cc.min_driver_for_cuda(cuda) == minimum
    below = cc.max_cuda_for_driver(_just_below(minimum))
    assert below != cuda
    index = [c for c, _ in cc.DRIVER_TABLE].index(cuda)
    assert below == (cc.DRIVER_TABLE[index - 1][0] if index else None)


def test_driver_older_than_cuda_9_has_no_cuda() -> None:
    assert cc.max_cuda_for_driver("384.80") is None
    assert cc.max_cuda_for_driver("375.26") is None
    assert not cc.cuda_supported("375.26", "9.0")


@pytest.mark.parametrize(
    ("driver", "strict", "compat"),
    [
        ("450.80.02", "11.0", "11.8"),
        ("470.82.01", "11.4", "11.8"),
        ("525.60.13", "12.0", "12.9"),
        ("535.104.05", "12.2", "12.9"),
        ("580.65.06", "13.0", "13.3"),
        ("440.33", "10.2", "10.2"),  # no minor-version compatibility before CUDA 11
    ],
)
def test_minor_version_compatibility(driver: str, strict: str, compat: str) -> None:
    assert cc.max_cuda_for_driver(driver) == strict
    assert cc.max_cuda_for_driver(driver, minor_compat=True) == compat


@pytest.mark.parametrize(
    ("release", "cuda"),
    [
        ("2.14.0", "11.8"),
        ("2.14.1", "11.8"),
        ("2.15.1", "12.2"),
        ("2.16.1", "12.2"),
        ("2.17.0", "12.2"),
        ("2.18.1", "12.2"),
        ("2.19.1", "12.2"),
        ("2.19", "12.2"),
        ("2.19.0-gpu", "12.2"),
        ("2.20.0", "12.5"),
        ("2.21.0", "12.5"),
        ("2.21.0-rc0", "12.5"),
    ],
)
def test_tfserving_cuda(release: str, cuda: str) -> None:
    assert cc.cuda_for_tfserving(release) == cuda


def test_every_tfserving_cuda_is_in_the_driver_table() -> None:
    for cuda in cc.TFSERVING_CUDA.values():
        assert cc.min_driver_for_cuda(cuda)


def test_tfserving_overrides_add_and_replace() -> None:
    assert cc.cuda_for_tfserving("2.22.0", {"2.22": "12.8"}) == "12.8"
    assert cc.cuda_for_tfserving("2.20.0", {"2.20": "12.6.3"}) == "12.6"


@pytest.mark.parametrize("release", ["2.13.0", "1.15.0", "3.0.0"])
def test_unknown_tfserving_release_names_the_override(release: str) -> None:
    with pytest.raises(cc.CudaCompatError, match="cuda_gate_tfserving_cuda_overrides"):
        cc.cuda_for_tfserving(release)


@pytest.mark.parametrize(
    "value", ["", "latest", "latest-gpu", "2", "2.x", "v2.19.0", "2.19.0.1", " ", None, 2.19]
)
def test_malformed_tfserving_version(value: object) -> None:
    with pytest.raises(cc.CudaCompatError, match="TF Serving version"):
        cc.tfserving_series(value)


@pytest.mark.parametrize(
    "value",
    ["", "535", "535.", ".104", "535..05", "abc", "535.104.05.1", "-1.2", "535.1a", None, 535],
)
def test_malformed_driver_version(value: object) -> None:
    with pytest.raises(cc.CudaCompatError, match="driver version"):
        cc.max_cuda_for_driver(value)  # type: ignore[arg-type]


def test_driver_version_tolerates_surrounding_whitespace() -> None:
    assert cc.max_cuda_for_driver(" 535.104.05\n") == "12.2"


@pytest.mark.parametrize("value", ["", "12", "12.x", "twelve", None])
def test_malformed_cuda_version(value: object) -> None:
    with pytest.raises(cc.CudaCompatError, match="CUDA version"):
        cc.parse_cuda_version(value)


def test_unknown_cuda_release_in_min_driver() -> None:
    with pytest.raises(cc.CudaCompatError, match=r"CUDA 12\.7 is not in the driver table"):
        cc.min_driver_for_cuda("12.7")


def _gate(**kwargs: object) -> dict[str, object]:
    args: dict[str, object] = {
        "host": "gpu-01",
        "driver": "535.104.05",
        "tfserving_version": "2.19.1",
        "image_source": "pull",
    }
    args.update(kwargs)
    return cc.gate(**args)  # type: ignore[arg-type]


def _gate_action(action: str, **kwargs: object) -> dict[str, object]:
    """The gate's result, asserted to decide ``action``."""
    result = _gate(**kwargs)
    assert result["action"] == action
    return result


def test_gate_compatible_proceeds() -> None:
    result = _gate_action("proceed")
    assert result["compatible"] is True
    assert result["cuda_required"] == "12.2"
    assert result["driver_max_cuda"] == "12.2"
    assert result["image_source"] == "pull"


def test_gate_refuses_incompatible_image_with_ways_out() -> None:
    result = _gate_action(
        "fail", driver="470.82.01", tfserving_version="2.20.0", image_source="archive"
    )
    assert result["compatible"] is False
    message = str(result["message"])
    for part in ("gpu-01", "470.82.01", "CUDA 12.5", "up to 11.4", "555.42.06", "Ways out"):
        assert part in message
    assert "cuda_gate_on_incompatible: build" in message
    assert "nvidia_driver_branch" in message


def test_gate_lists_releases_that_fit() -> None:
    result = _gate_action("fail", driver="520.61.05", tfserving_version="2.19.1")
    assert "pin a TF Serving release whose image fits: 2.14" in str(result["message"])


def test_gate_switches_old_driver_to_build() -> None:
    result = _gate_action("build", driver="396.37", on_incompatible="build")
    assert result["image_source"] == "build"
    assert result["requested_image_source"] == "pull"
    assert result["build_cuda"] == "9.2"
    assert str(result["build_cuda"]).startswith("9.")


def test_gate_build_source_with_explicit_cuda() -> None:
    assert _gate(driver="396.37", image_source="build", build_cuda="9.0")["action"] == "proceed"
    refused = _gate_action("fail", driver="396.37", image_source="build", build_cuda="10.0")
    assert "410.48" in str(refused["message"])


def test_gate_build_source_defaults_to_highest_cuda() -> None:
    result = _gate_action("proceed", driver="470.82.01", image_source="build")
    assert result["build_cuda"] == "11.4"


def test_gate_does_not_apply_without_gpu_or_on_cpu_image() -> None:
    assert _gate(gpu=False, driver="")["action"] == "proceed"
    standin = _gate_action("proceed", image_source="standin", driver="")
    assert "does not apply" in str(standin["message"])


def test_gate_gpu_without_driver_is_an_error() -> None:
    with pytest.raises(cc.CudaCompatError, match="nvidia_driver role"):
        _gate(driver="")


def test_gate_driver_too_old_for_any_build_fails_even_with_build() -> None:
    result = _gate_action("fail", driver="375.26", on_incompatible="build")
    assert "older than CUDA 9.0 needs" in str(result["message"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_source": "docker-hub"}, "image source must be one of"),
        ({"on_incompatible": "ignore"}, "on_incompatible must be one of"),
        ({"tfserving_version": "latest"}, "pin a release"),
    ],
)
def test_gate_bad_input(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(cc.CudaCompatError, match=match):
        _gate(**kwargs)
