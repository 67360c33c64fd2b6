"""The stand-in's model manager against TF Serving's ServerCore rules, with a fake loader (no
TensorFlow, no process): version labels and config validation.

Each test names the TF Serving test it follows: tensorflow_serving/model_servers/
server_core_test.cc (ServerCoreTest.*, RelativePathsServerCoreTest.*), with the messages of
server_core.cc (UpdateModelVersionLabelMap, ValidateModelConfigList, GetPlatform,
ValidateNoModelsChangePlatforms, ReloadConfig).
"""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.config import model_server_config_pb2

from tfs_standin.errors import ServingError
from tfs_standin.manager import AVAILABLE, ModelManager


class FakeServable:
    def __init__(self, version: int) -> None:
        self.version = version

    def close(self) -> None:
        pass


class GatedLoader:
    """Loads instantly, except versions listed in `held`, which wait until released."""

    def __init__(self) -> None:
        self.held: dict[int, threading.Event] = {}

    def __call__(self, name: str, version: int, path: str) -> FakeServable:
        gate = self.held.get(version)
        if gate is not None:
            assert gate.wait(30), f"version {version} was never released"
        return FakeServable(version)


def make_versions(base: Path, *versions: int) -> Path:
    for version in versions:
        (base / str(version)).mkdir(parents=True, exist_ok=True)
    return base


def config_of(*models: dict) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    for spec in models:
        model = config.model_config_list.config.add()
        model.name = spec["name"]
        model.base_path = spec["base_path"]
        if "platform" in spec:
            if spec["platform"] is not None:
                model.model_platform = spec["platform"]
        else:
            model.model_platform = "tensorflow"
        if "model_type" in spec:
            model.model_type = spec["model_type"]
        if "versions" in spec:
            model.model_version_policy.specific.versions.extend(spec["versions"])
        for label, version in spec.get("labels", {}).items():
            model.version_labels[label] = version
    return config


def two_versions(tmp_path: Path, **extra: object) -> dict:
    base = make_versions(tmp_path / "m", 123, 124)
    return {"name": "m", "base_path": str(base), "versions": [123, 124], **extra}


def manager(allow: bool = False, force: bool = False, loader: object = None) -> ModelManager:
    return ModelManager(
        loader=loader or GatedLoader(),  # type: ignore[arg-type]
        max_retries=0,
        retry_interval_s=0,
        allow_unavailable_labels=allow,
        force_allow_unavailable_labels=force,
    )


def refused(
    m: ModelManager,
    config: model_server_config_pb2.ModelServerConfig,
    code: grpc.StatusCode | None = None,
    message: str | None = None,
) -> ServingError:
    """The error ``config`` is refused with; its code and message checked when given."""
    with pytest.raises(ServingError) as raised:
        m.apply_config(config, 0.2)
    if code is not None:
        assert raised.value.code == code
    if message is not None:
        assert raised.value.message == message
    return raised.value


LABEL_ERROR = (
    "Request to assign label to version {v} of model m, which is not currently available "
    "for inference"
)


# ---- version labels: ServerCoreTest.AssignLabel* and server_core.cc ordering -----------------
def test_labels_in_the_initial_config_refuse_the_start(tmp_path: Path) -> None:
    """server_core.cc ReloadConfig runs UpdateModelVersionLabelMap() before
    AddModelsViaModelConfigList(), also for the first config (ServerCore::Create): a label in
    the start-up config names a version that is not loaded yet, so the start fails."""
    m = manager()
    refused(
        m,
        config_of(two_versions(tmp_path, labels={"stable": 123})),
        grpc.StatusCode.FAILED_PRECONDITION,
        LABEL_ERROR.format(v=123),
    )
    assert m.available_counts() == {}, "no model may load when the label map fails"


def test_labels_in_the_initial_config_with_the_allow_flag(tmp_path: Path) -> None:
    """ServerCoreTest.AssignLabelToUnavailableVersionAllowed: with
    allow_version_labels_for_unavailable_models a new label may name a version not available."""
    m = manager(allow=True)
    m.apply_config(config_of(two_versions(tmp_path, labels={"stable": 123, "canary": 124})), 0.2)
    assert m.resolve_label("m", "stable") == 123 and m.resolve_label("m", "canary") == 124


def test_assign_label_to_unavailable_version(tmp_path: Path) -> None:
    """ServerCoreTest.AssignLabelToUnavailableVersion (bogus version, no flag)."""
    m = manager()
    m.apply_config(config_of(two_versions(tmp_path)), 0.2)
    refused(
        m,
        config_of(two_versions(tmp_path, labels={"nice try": 777})),
        grpc.StatusCode.FAILED_PRECONDITION,
        LABEL_ERROR.format(v=777),
    )


def test_assign_label_to_unavailable_version_allowed(tmp_path: Path) -> None:
    """ServerCoreTest.AssignLabelToUnavailableVersionAllowed."""
    m = manager(allow=True)
    m.apply_config(config_of(two_versions(tmp_path)), 0.2)
    m.apply_config(config_of(two_versions(tmp_path, labels={"nice try": 777})), 0.2)
    assert m.resolve_label("m", "nice try") == 777


def test_assign_existing_label_to_unavailable_version_disallowed(tmp_path: Path) -> None:
    """ServerCoreTest.AssignExistingLabelToUnavailableVersionDisallowed: the flag allows new
    labels only; moving an existing label needs the target AVAILABLE."""
    m = manager(allow=True)
    m.apply_config(config_of(two_versions(tmp_path, labels={"A": 123, "B": 124})), 0.2)
    refused(
        m,
        config_of(two_versions(tmp_path, labels={"A": 777, "B": 124})),
        grpc.StatusCode.FAILED_PRECONDITION,
        LABEL_ERROR.format(v=777),
    )
    assert m.resolve_label("m", "A") == 123, "a refused reload keeps the old label map"


def test_assign_existing_label_to_unavailable_version_allowed(tmp_path: Path) -> None:
    """ServerCoreTest.AssignExistingLabelToUnavailableVersionAllowed
    (force_allow_any_version_labels_for_unavailable_models)."""
    m = manager(force=True)
    m.apply_config(config_of(two_versions(tmp_path, labels={"A": 123, "B": 124})), 0.2)
    m.apply_config(config_of(two_versions(tmp_path, labels={"A": 777, "B": 124})), 0.2)
    assert m.resolve_label("m", "A") == 777


def test_label_moved_to_a_version_still_loading_is_refused_until_it_is_available(
    tmp_path: Path,
) -> None:
    """The canary case: a reload adds version 125 and moves `canary` to it in one step. The
    label map is set before the models are updated, so the reload fails (flag or not) and
    125 is not even aspired; once 125 is served (a reload that only adds it), the label move
    succeeds (g3doc/serving_config.md: load the version first, then point the label at it)."""
    base = make_versions(tmp_path / "m", 123, 124)
    m = manager(allow=True)
    spec = {"name": "m", "base_path": str(base)}
    m.apply_config(config_of({**spec, "versions": [123, 124], "labels": {"canary": 124}}), 0.2)
    make_versions(base, 125)
    moved = config_of({**spec, "versions": [123, 124, 125], "labels": {"canary": 125}})
    error = refused(m, moved)
    assert error.message == LABEL_ERROR.format(v=125)
    assert 125 not in m.versions_of("m"), "a refused reload must not touch the models"
    m.apply_config(config_of({**spec, "versions": [123, 124, 125], "labels": {"canary": 124}}), 0.2)
    assert m.versions_of("m")[125] == AVAILABLE
    m.apply_config(moved, 0.2)
    assert m.resolve_label("m", "canary") == 125


def test_removed_label_is_unrecognized(tmp_path: Path) -> None:
    """server_core.cc GetModelVersionForLabel: 'Unrecognized servable version label: ...'."""
    m = manager(allow=True)
    m.apply_config(config_of(two_versions(tmp_path, labels={"A": 123})), 0.2)
    m.apply_config(config_of(two_versions(tmp_path)), 0.2)
    with pytest.raises(ServingError) as raised:
        m.resolve_label("m", "A")
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.message == "Unrecognized servable version label: A"


# ---- config validation: ServerCoreTest.* / RelativePathsServerCoreTest.* ----------------------
def test_duplicate_model_name_in_config(tmp_path: Path) -> None:
    """ServerCoreTest.DuplicateModelNameInConfig."""
    spec = two_versions(tmp_path)
    refused(
        manager(),
        config_of(spec, spec),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Illegal to list model m multiple times in config list",
    )


def test_relative_path_fails(tmp_path: Path) -> None:
    """RelativePathsServerCoreTest.RelativePathFails (at start and on a reload)."""
    m = manager()
    refused(
        m,
        config_of({"name": "rel", "base_path": "models/rel"}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Expected model rel to have an absolute path or URI; got base_path()=models/rel",
    )
    m.apply_config(config_of(two_versions(tmp_path)), 0.2)
    refused(
        m,
        config_of(two_versions(tmp_path), {"name": "rel", "base_path": "rel"}),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


def test_mixed_absolute_relative_fails(tmp_path: Path) -> None:
    """RelativePathsServerCoreTest.MixedAbsoluteRelativeFails (and an empty base path)."""
    error = refused(manager(), config_of(two_versions(tmp_path), {"name": "e", "base_path": ""}))
    assert error.message == "Expected model e to have an absolute path or URI; got base_path()="


def test_model_platform_is_required(tmp_path: Path) -> None:
    """server_core.cc GetPlatform: neither model_type nor model_platform."""
    refused(
        manager(),
        config_of(two_versions(tmp_path, platform=None)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
        "ModelServerConfig::model_platform, model name is m",
    )


def test_illegal_config_model_type_and_platform_set(tmp_path: Path) -> None:
    """ServerCoreTest.IllegalConfigModelTypeAndPlatformSet."""
    spec = two_versions(tmp_path, model_type=model_server_config_pb2.TENSORFLOW)
    refused(
        manager(),
        config_of(spec),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Illegal setting both ModelServerConfig::model_type (deprecated) and "
        "ModelServerConfig::model_platform, model name is m",
    )


def test_deprecated_model_type_config(tmp_path: Path) -> None:
    """ServerCoreTest.DeprecatedModelTypeConfig: model_type TENSORFLOW alone is served."""
    m = manager()
    spec = two_versions(tmp_path, platform=None, model_type=model_server_config_pb2.TENSORFLOW)
    m.apply_config(config_of(spec), 0.2)
    assert m.versions_of("m") == {123: AVAILABLE, 124: AVAILABLE}


def test_unknown_model_platform(tmp_path: Path) -> None:
    """ServerCoreTest.UnknownModelPlatform."""
    refused(
        manager(),
        config_of(two_versions(tmp_path, platform="not_a_platform")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Model m requests unsupported platform not_a_platform",
    )


def test_illegal_to_change_model_platform(tmp_path: Path) -> None:
    """ServerCoreTest.IllegalToChangeModelPlatform."""
    m = manager()
    m.apply_config(config_of(two_versions(tmp_path)), 0.2)
    refused(
        m,
        config_of(two_versions(tmp_path, platform="other")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Illegal to change a model's platform. For model m platform was tensorflow and new "
        "platform requested is other",
    )


def test_illegal_reconfiguration_to_custom_config(tmp_path: Path) -> None:
    """ServerCoreTest.IllegalReconfigurationToCustomConfig."""
    m = manager()
    m.apply_config(config_of(two_versions(tmp_path)), 0.2)
    custom = model_server_config_pb2.ModelServerConfig()
    custom.custom_model_config.type_url = "type.googleapis.com/x"
    refused(
        m,
        custom,
        grpc.StatusCode.FAILED_PRECONDITION,
        "Cannot transition to requested config. It is only legal to transition from one "
        "ModelConfigList to another.",
    )


def test_empty_config_takes_no_action(tmp_path: Path) -> None:
    """server_core.cc ReloadConfig: 'Taking no action for empty config.'"""
    m = manager()
    m.apply_config(model_server_config_pb2.ModelServerConfig(), 0.2)
    m.apply_config(config_of(two_versions(tmp_path)), 0.2)
    assert m.versions_of("m") == {123: AVAILABLE, 124: AVAILABLE}
