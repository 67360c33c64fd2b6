"""Model versions: polling base paths, version policies, labels and availability-preserving
transitions, as TF Serving's FileSystemStoragePathSource + AspiredVersionsManager +
AvailabilityPreservingPolicy + ServableStateMonitor do it."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.config import model_server_config_pb2

from tfs_standin.errors import ServingError, failed_precondition, invalid_argument, not_found

log = logging.getLogger("tfs_standin")

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


class Loaded(Protocol):
    """What the loader returns: anything with a version and close()."""

    version: int

    def close(self) -> None: ...


Loader = Callable[[str, int, str], Loaded]


@dataclass
class VersionState:
    version: int
    path: str
    state: str = START
    error: ServingError | None = None
    servable: Loaded | None = None
    may_reload: bool = False


@dataclass
class ModelEntry:
    config: model_server_config_pb2.ModelConfig
    versions: dict[int, VersionState] = field(default_factory=dict)
    configured: bool = True


def parse_version(name: str) -> int | None:
    """A child directory is a version when its whole name is a non-negative int64."""
    if not name.isdigit() or not name.isascii():
        return None
    value = int(name)
    return value if value < 2**63 else None


def list_versions(base_path: str) -> dict[int, str]:
    """Numeric children of base_path (OSError when it cannot be listed)."""
    found: dict[int, str] = {}
    for child in sorted(os.listdir(base_path)):
        version = parse_version(child)
        full = os.path.join(base_path, child)
        if version is not None and os.path.isdir(full) and version not in found:
            found[version] = full
    return found


def aspired_versions(config: model_server_config_pb2.ModelConfig, on_disk: dict[int, str]) -> set:
    policy = config.model_version_policy
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return set(on_disk)
    if which == "specific":
        wanted = set(policy.specific.versions)
        for missing in sorted(wanted - set(on_disk)):
            log.warning(
                "Version %d of servable %s, which was requested to be served as a 'specific' "
                "version in the servable's version policy, was not found in the file system",
                missing,
                config.name,
            )
        return wanted & set(on_disk)
    count = policy.latest.num_versions if which == "latest" and policy.latest.num_versions else 1
    return set(sorted(on_disk, reverse=True)[:count])


TENSORFLOW_PLATFORM = "tensorflow"


def model_platform(model: model_server_config_pb2.ModelConfig) -> str:
    """The platform of a model (server_core.cc GetPlatform), INVALID_ARGUMENT when unusable."""
    if model.model_type != model_server_config_pb2.MODEL_TYPE_UNSPECIFIED:
        log.warning(
            "Deprecated ModelServerConfig::model_type field used. Prefer "
            "ModelServerConfig::model_platform."
        )
        if model.model_platform:
            raise invalid_argument(
                "Illegal setting both ModelServerConfig::model_type (deprecated) and "
                f"ModelServerConfig::model_platform, model name is {model.name}"
            )
        if model.model_type != model_server_config_pb2.TENSORFLOW:
            raise invalid_argument(
                f"ModelServerConfig::model_type choice {model.model_type} not supported."
            )
        return TENSORFLOW_PLATFORM
    if not model.model_platform:
        raise invalid_argument(
            "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
            f"ModelServerConfig::model_platform, model name is {model.name}"
        )
    return model.model_platform


def uri_is_relative_path(uri: str) -> bool:
    """server_core.cc UriIsRelativePath: no scheme, no host and not an absolute path."""
    return "://" not in uri and not uri.startswith("/")


def validate_config(config: model_server_config_pb2.ModelServerConfig) -> None:
    """server_core.cc ValidateModelConfigList (unique names, absolute base paths)."""
    kind = config.WhichOneof("config")
    if kind is None:
        return
    if kind != "model_config_list":
        raise invalid_argument(
            "ServerModelConfig type not supported: only model_config_list is supported"
        )
    seen: set[str] = set()
    for model in config.model_config_list.config:
        if model.name in seen:
            raise invalid_argument(
                f"Illegal to list model {model.name} multiple times in config list"
            )
        seen.add(model.name)
    for model in config.model_config_list.config:
        if uri_is_relative_path(model.base_path):
            raise invalid_argument(
                f"Expected model {model.name} to have an absolute path or URI; got "
                f"base_path()={model.base_path}"
            )


def validate_platforms(config: model_server_config_pb2.ModelServerConfig) -> None:
    """server_core.cc CreateStoragePathRoutes: every model has a platform this server serves."""
    for model in config.model_config_list.config:
        platform = model_platform(model)
        if platform != TENSORFLOW_PLATFORM:
            raise invalid_argument(f"Model {model.name} requests unsupported platform {platform}")


def validate_no_platform_change(
    old: model_server_config_pb2.ModelServerConfig, new: model_server_config_pb2.ModelServerConfig
) -> None:
    """server_core.cc ValidateNoModelsChangePlatforms."""
    before = {m.name: model_platform(m) for m in old.model_config_list.config}
    for model in new.model_config_list.config:
        if model.name not in before:
            continue
        platform = model_platform(model)
        if platform != before[model.name]:
            raise invalid_argument(
                f"Illegal to change a model's platform. For model {model.name} platform was "
                f"{before[model.name]} and new platform requested is {platform}"
            )


class ModelManager:
    """Keeps each configured model's versions in line with its base path and policy."""

    def __init__(
        self,
        loader: Loader,
        max_retries: int = 5,
        retry_interval_s: float = 60.0,
        allow_unavailable_labels: bool = False,
        force_allow_unavailable_labels: bool = False,
        on_event: Callable[[str, int, str, ServingError | None], None] | None = None,
    ) -> None:
        self._loader = loader
        self._max_retries = max(0, max_retries)
        self._retry_interval_s = max(0.0, retry_interval_s)
        self._allow_unavailable_labels = allow_unavailable_labels
        self._force_allow_unavailable_labels = force_allow_unavailable_labels
        self._labels: dict[str, dict[str, int]] = {}
        self._on_event = on_event
        self._models: dict[str, ModelEntry] = {}
        self._state_lock = threading.RLock()
        self._reconcile_lock = threading.Lock()
        self._stop = threading.Event()
        self.current_config = model_server_config_pb2.ModelServerConfig()

    # ---- configuration ---------------------------------------------------------------------
    def apply_config(
        self, config: model_server_config_pb2.ModelServerConfig, poll_wait_s: float
    ) -> None:
        """ServerCore::ReloadConfig: validate, take the config, set the version labels (before
        any model of this config loads, as server_core.cc does), then add/update the models and
        wait until every new model has a version available (or fails). Like TF Serving, it
        waits as long as a new model has no version on disk, polling. Raises ServingError."""
        with self._reconcile_lock:
            old_kind = self.current_config.WhichOneof("config")
            new_kind = config.WhichOneof("config")
            is_first = old_kind is None
            is_same = config == self.current_config
            if not (is_first or is_same or old_kind == new_kind == "model_config_list"):
                raise failed_precondition(
                    "Cannot transition to requested config. It is only legal to transition from "
                    "one ModelConfigList to another."
                )
            if new_kind is None:
                log.info("Taking no action for empty config.")
                return
            validate_config(config)
            if old_kind == "model_config_list":
                validate_no_platform_change(self.current_config, config)
            self.current_config = model_server_config_pb2.ModelServerConfig()
            self.current_config.CopyFrom(config)
            self._update_label_map(config)
            log.info("Adding/updating models.")
            validate_platforms(config)
            wanted = {m.name: m for m in config.model_config_list.config}
            new_models: list[str] = []
            with self._state_lock:
                for name, entry in self._models.items():
                    if name not in wanted:
                        entry.configured = False
                for name, model in wanted.items():
                    known = self._models.get(name)
                    if known is None or not known.configured:
                        new_models.append(name)
                    if known is None:
                        self._models[name] = ModelEntry(config=model)
                    else:
                        known.config = model
                        known.configured = True
            for name in list(self._models):
                self._reconcile(name)
        self._wait_available(new_models, poll_wait_s)
        log.info("Finished adding/updating models")

    def _update_label_map(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """ServerCore::UpdateModelVersionLabelMap: a label may name only an AVAILABLE version,
        unless --allow_version_labels_for_unavailable_models is set and the label is new or
        keeps its version; force_allow (not a flag of TF Serving's binary) allows any."""
        new_map: dict[str, dict[str, int]] = {}
        for model in config.model_config_list.config:
            entry = self._models.get(model.name)
            versions = entry.versions if entry is not None else {}
            for label, version in model.version_labels.items():
                allow = self._force_allow_unavailable_labels
                if not allow and self._allow_unavailable_labels:
                    existing = self._labels.get(model.name, {}).get(label)
                    allow = existing is None or existing == version
                state = versions.get(version)
                if not allow and (state is None or state.state != AVAILABLE):
                    raise failed_precondition(
                        f"Request to assign label to version {version} of model {model.name}, "
                        "which is not currently available for inference"
                    )
                new_map.setdefault(model.name, {})[label] = version
        with self._state_lock:
            self._labels = new_map

    def _wait_available(self, names: list[str], poll_wait_s: float) -> None:
        pending = list(names)
        while pending:
            failures = []
            for name in list(pending):
                entry = self._models[name]
                if any(v.state == AVAILABLE for v in entry.versions.values()):
                    pending.remove(name)
                    continue
                latest = max(entry.versions, default=None)
                error = None if latest is None else entry.versions[latest].error
                if error is not None:
                    failures.append(
                        f"{{name: {name} version: {latest}}} due to error: {error.message}"
                    )
                    pending.remove(name)
            if failures:
                raise ServingError(
                    grpc.StatusCode.UNKNOWN,
                    f"{len(failures)} model(s) did not become available: {{{', '.join(failures)}}}",
                )
            if not pending:
                return
            if poll_wait_s <= 0:
                raise ServingError(
                    grpc.StatusCode.UNKNOWN,
                    f"no version of {', '.join(pending)} could be loaded and file system polling "
                    "is off (--file_system_poll_wait_seconds=0): put a numeric version directory "
                    "under the base path before starting",
                )
            if self._stop.wait(poll_wait_s):
                raise ServingError(grpc.StatusCode.CANCELLED, "server is shutting down")
            with self._reconcile_lock:
                for name in pending:
                    if self._models[name].configured:
                        self._reconcile(name)

    # ---- polling ---------------------------------------------------------------------------
    def poll_once(self) -> None:
        with self._reconcile_lock:
            for name in list(self._models):
                self._reconcile(name)

    def run_polling(self, interval_s: float) -> None:
        """Poll every interval_s seconds until stop() (run in a daemon thread)."""
        while not self._stop.wait(interval_s):
            try:
                self.poll_once()
            except Exception:  # a poll must never kill the polling thread
                log.exception("file system poll failed")

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.stop()
        with self._state_lock:
            for entry in self._models.values():
                for vs in entry.versions.values():
                    if vs.servable is not None:
                        vs.servable.close()
                        vs.servable = None

    def _reconcile(self, name: str) -> None:
        entry = self._models[name]
        if not entry.configured:
            self._unload_all(entry)
            return
        try:
            on_disk = list_versions(entry.config.base_path)
        except OSError as exc:
            log.error(
                "Could not find base path %s for servable %s with error %s",
                entry.config.base_path,
                name,
                exc.strerror or exc,
            )
            return
        if not on_disk:
            log.warning(
                "No versions of servable %s found under base path %s. Did you forget to name "
                "your leaf directory as a number (eg. '/1/')?",
                name,
                entry.config.base_path,
            )
        aspired = aspired_versions(entry.config, on_disk)
        for version, vs in entry.versions.items():
            if version not in aspired and vs.state == END:
                vs.may_reload = True
        for version in sorted(aspired):
            known = entry.versions.get(version)
            if known is None or (known.state == END and (known.error is None or known.may_reload)):
                self._load(entry, version, on_disk[version])
        aspired_up = any(
            entry.versions[v].state == AVAILABLE for v in aspired if v in entry.versions
        )
        for version, vs in sorted(entry.versions.items()):
            if version not in aspired and vs.state == AVAILABLE and (aspired_up or not aspired):
                self._unload(entry, vs)

    def _publish(self, name: str, vs: VersionState) -> None:
        if self._on_event is not None:
            self._on_event(name, vs.version, vs.state, vs.error)

    def _load(self, entry: ModelEntry, version: int, path: str) -> None:
        name = entry.config.name
        vs = VersionState(version=version, path=path, state=START)
        with self._state_lock:
            entry.versions[version] = vs
        self._publish(name, vs)
        for attempt in range(self._max_retries + 1):
            with self._state_lock:
                vs.state, vs.error = LOADING, None
            log.info("Loading servable: {name: %s version: %d} from %s", name, version, path)
            started = time.monotonic()
            try:
                servable = self._loader(name, version, path)
            except ServingError as exc:
                vs.error = exc
            else:
                with self._state_lock:
                    vs.servable, vs.state = servable, AVAILABLE
                log.info(
                    "Successfully loaded servable version {name: %s version: %d} in %.2f s",
                    name,
                    version,
                    time.monotonic() - started,
                )
                self._publish(name, vs)
                return
            log.error(
                "Loading servable: {name: %s version: %d} failed (attempt %d of %d): %s",
                name,
                version,
                attempt + 1,
                self._max_retries + 1,
                vs.error.message,
            )
            if attempt < self._max_retries and self._stop.wait(self._retry_interval_s):
                break
        with self._state_lock:
            vs.state = END
        self._publish(name, vs)

    def _unload(self, entry: ModelEntry, vs: VersionState) -> None:
        name = entry.config.name
        with self._state_lock:
            vs.state = UNLOADING
            servable, vs.servable = vs.servable, None
        self._publish(name, vs)
        log.info("Unloading servable version {name: %s version: %d}", name, vs.version)
        if servable is not None:
            servable.close()
        with self._state_lock:
            vs.state, vs.error, vs.may_reload = END, None, True
        self._publish(name, vs)

    def _unload_all(self, entry: ModelEntry) -> None:
        for vs in list(entry.versions.values()):
            if vs.state == AVAILABLE:
                self._unload(entry, vs)

    # ---- requests --------------------------------------------------------------------------
    def resolve(self, spec: model_pb2.ModelSpec) -> Loaded:
        """The servable a request's ModelSpec names (ServerCore::GetServableHandle)."""
        if not spec.name:
            raise invalid_argument("ModelSpec has no name specified.")
        with self._state_lock:
            entry = self._models.get(spec.name)
            configured = entry is not None and entry.configured
            choice = spec.WhichOneof("version_choice")
            if choice == "version_label":
                version: int | None = self.resolve_label(spec.name, spec.version_label)
            elif choice == "version":
                version = spec.version.value
            else:
                version = None
            if configured:
                ready = {v: s for v, s in entry.versions.items() if s.state == AVAILABLE}  # type: ignore[union-attr]
                pick = max(ready, default=None) if version is None else version
                if pick in ready and ready[pick].servable is not None:
                    return ready[pick].servable  # type: ignore[return-value]
        request = f"Latest({spec.name})" if version is None else f"Specific({spec.name}, {version})"
        raise not_found(f"Servable not found for request: {request}")

    def resolve_label(self, name: str, label: str) -> int:
        """The version a label names (ServerCore::GetModelVersionForLabel)."""
        with self._state_lock:
            version = self._labels.get(name, {}).get(label)
        if version is None:
            raise invalid_argument(f"Unrecognized servable version label: {label}")
        return version

    def versions_of(self, name: str) -> dict[int, str]:
        """{version: state} of a model (empty when unknown)."""
        with self._state_lock:
            entry = self._models.get(name)
            return {v: s.state for v, s in entry.versions.items()} if entry is not None else {}

    def status(self, spec: model_pb2.ModelSpec) -> list[VersionState]:
        """Version states, newest first (GetModelStatusImpl); version labels are ignored."""
        with self._state_lock:
            entry = self._models.get(spec.name)
            versions = dict(entry.versions) if entry is not None else {}
            if spec.WhichOneof("version_choice") == "version":
                found = versions.get(spec.version.value)
                if found is None:
                    raise not_found(
                        f"Could not find version {spec.version.value} of model {spec.name}"
                    )
                return [found]
            if not versions:
                raise not_found(f"Could not find any versions of model {spec.name}")
            return [versions[v] for v in sorted(versions, reverse=True)]

    def available_counts(self) -> dict[str, int]:
        with self._state_lock:
            return {
                name: sum(1 for v in e.versions.values() if v.state == AVAILABLE)
                for name, e in self._models.items()
                if e.configured
            }
