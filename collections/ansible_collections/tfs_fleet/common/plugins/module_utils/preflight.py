# Copyright: tfs-fleet developers
# Apache License 2.0
"""Preflight checks of the roles' variables beyond what argument_specs can say (ranges, names,
paths, relations between variables) and unknown variables with a role prefix.

Pure Python (of Ansible, only its boolean rules through module_utils/booleans.py): the action plugin tfs_fleet.common.preflight_check feeds it
the effective value of every role option and the names of every variable the host sees.
Each problem is one sentence naming the variable, the value given and what it accepts.
It runs on the controller, so it also reads what lives there: golden files and the versions in
tfserving_models_export_base (as TF Serving finds them: model_sources.find_versions), which every
version label must point at.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.tfs_fleet.common.plugins.module_utils.booleans import (
    ACCEPTS as BOOL_ACCEPTS,
)
from ansible_collections.tfs_fleet.common.plugins.module_utils.booleans import as_bool
from ansible_collections.tfs_fleet.common.plugins.module_utils.model_sources import (
    PlanError,
    SourceError,
    find_versions,
    wanted_versions,
)

# Facts the roles set for later roles and plays (not options, so not in argument_specs).
# tests/test_preflight.py checks this list against the set_fact tasks of roles/*/tasks.
ROLE_FACTS = frozenset(
    {
        "cuda_gate_result",
        "cuda_gate_image_source_effective",
        "cuda_gate_build_cuda_effective",
        "nvidia_driver_secure_boot",
        "nvidia_driver_gpus",
        "nvidia_driver_gpus_pci",
        "nvidia_driver_gpu_present",
        "nvidia_driver_installed_version",
        "nvidia_driver_package_version",
        "nvidia_driver_reboot_required",
        "tfserving_image_ref",
        "tfserving_image_id",
        "tfserving_image_source_effective",
        "tfserving_models_served",
        "tfserving_models_config_file",
        "nvidia_driver_loaded_kernel_module",
        "nvidia_driver_mok_enrolled",
        "nvidia_driver_nvswitches",
        "nvidia_container_toolkit_cdi_enabled",
        # The host-setup plans (playbooks/host_setup.yml, docs/live-fleet.md).
        "docker_change",
        "nvidia_driver_change",
        "nvidia_container_toolkit_change",
    }
)

# Host variables that community.docker.docker_containers (the sandbox's inventory plugin) sets
# on every host; they carry the docker role's prefix but are no option of it. With the plugin's
# verbose_output every `docker inspect` key would come too: the sandbox inventory keeps it off.
INVENTORY_PLUGIN_VARS = frozenset({"docker_name", "docker_short_id"})

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CONTAINER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
RELEASE_RE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(-rc[0-9]+)?$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
SIZE_RE = re.compile(r"^[0-9]+[bkmgBKMG]?$")
ENDPOINT_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$")

MODEL_NAME_ACCEPTS = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"

# Docker's image reference grammar (distribution/reference): [registry[:port]/]name[:tag][@digest].
_REF_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REF_DOMAIN_PART = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_REF_DOMAIN = (
    rf"(?:{_REF_DOMAIN_PART}(?:\.{_REF_DOMAIN_PART})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?"
)
# The registry part only where Docker takes the first component for one: with '.' or ':' in
# it, or localhost (else it is a path component, e.g. tensorflow/serving).
_REF_NAME = (
    rf"(?:(?:{_REF_DOMAIN_PART}(?:\.{_REF_DOMAIN_PART})+|{_REF_DOMAIN_PART}:[0-9]{{1,5}}|"
    rf"{_REF_DOMAIN_PART}(?:\.{_REF_DOMAIN_PART})+:[0-9]{{1,5}}|localhost(?::[0-9]{{1,5}})?|"
    rf"\[[0-9A-Fa-f:.]+\](?::[0-9]{{1,5}})?)/)?{_REF_COMPONENT}(?:/{_REF_COMPONENT})*"
)
REPOSITORY_RE = re.compile(rf"^{_REF_NAME}$")
IMAGE_REF_RE = re.compile(
    rf"^{_REF_NAME}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[0-9a-f]{{64}})?$"
)
REGISTRY_URL_RE = re.compile(rf"^(?:https?://)?{_REF_DOMAIN}(?:/[A-Za-z0-9._~/-]*)?$")
REPOSITORY_ACCEPTS = (
    "a Docker repository [registry[:port]/]name (lowercase path components of letters, digits, "
    "'.', '_' or '-' separated by '/'; no tag, no spaces or shell characters)"
)
IMAGE_REF_ACCEPTS = (
    "a Docker image reference [registry[:port]/]name[:tag][@sha256:<64 hex>] (no spaces or "
    "shell characters)"
)

ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Directories of the operating system: never a directory the roles own (they create, chmod and
# prune what is in them).
SYSTEM_DIRS = frozenset(
    {"/", "/etc", "/usr", "/bin", "/sbin", "/boot", "/dev", "/proc", "/sys", "/var", "/root",
     "/home"}
)  # fmt: skip
SYSTEM_DIR_RE = re.compile(r"^/lib[^/]*$")


class Problems:
    """Collects one sentence per problem."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, name: str, value: Any, accepts: str) -> None:
        self.items.append(f"{name}: {value!r} is not accepted; it accepts {accepts}.")

    def note(self, text: str) -> None:
        self.items.append(text)


def as_int(value: Any) -> int | None:
    """An integer from an int or a string of digits (extra vars are strings); None otherwise.
    Booleans are refused: YAML's true is not a port."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        return int(value)
    return None


def _int_at_least(p: Problems, values: Mapping[str, Any], name: str, low: int) -> int | None:
    if name not in values:
        return None
    number = as_int(values[name])
    if number is None or number < low:
        p.add(name, values[name], f"an integer >= {low}")
        return None
    return number


def _port(p: Problems, values: Mapping[str, Any], name: str) -> int | None:
    if name not in values:
        return None
    number = as_int(values[name])
    if number is None or not 1 <= number <= 65535:
        p.add(name, values[name], "a port number from 1 to 65535 (an integer, not a boolean)")
        return None
    return number


def _abs_path(
    p: Problems, values: Mapping[str, Any], name: str, empty_ok: bool = False
) -> str | None:
    if name not in values:
        return None
    value = values[name]
    if empty_ok and value in ("", None):
        return None
    if not isinstance(value, str) or not value.startswith("/") or "\n" in value:
        p.add(
            name, value, "an absolute path (starting with /)" + (", or empty" if empty_ok else "")
        )
        return None
    if ".." in value.split("/"):
        p.add(name, value, "an absolute path without '..'")
        return None
    normal = posixpath.normpath(value)
    if normal == "/":
        p.add(name, value, "an absolute path below / (not / itself)")
        return None
    return normal


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def _not_a_system_dir(p: Problems, values: Mapping[str, Any], name: str, path: str | None) -> None:
    if path is not None and (path in SYSTEM_DIRS or SYSTEM_DIR_RE.match(path)):
        p.add(
            name,
            values[name],
            "a directory of its own, not a system directory such as /etc, /usr, /var, /lib* or "
            "/home (e.g. /srv/tfserving/models)",
        )


def check_serving(p: Problems, values: Mapping[str, Any]) -> None:
    grpc = _port(p, values, "tfserving_grpc_port")
    rest = _port(p, values, "tfserving_rest_port")
    if grpc is not None and rest is not None and grpc == rest:
        p.note(
            f"tfserving_grpc_port and tfserving_rest_port are both {grpc}; they need two "
            "different ports."
        )
    per_gpu = as_bool(values.get("tfserving_per_gpu_containers", False))
    # 0: one container per GPU that the nvidia_driver role detects (unknown here: the ports are
    # checked for two containers, enough to show a stride that collides).
    count = _int_at_least(p, values, "tfserving_gpu_count", 0)
    stride = _int_at_least(p, values, "tfserving_per_gpu_port_stride", 1)
    if per_gpu and None not in (grpc, rest, count, stride) and grpc != rest:
        assert grpc is not None and rest is not None and count is not None and stride is not None
        seen: dict[int, str] = {}
        for index in range(count or 2):
            for kind, base in (("gRPC", grpc), ("REST", rest)):
                port = base + index * stride
                where = f"{kind} of GPU {index}"
                if port > 65535:
                    p.note(
                        f"tfserving_per_gpu_port_stride: {stride} with tfserving_gpu_count "
                        f"{count} puts the {where} on port {port}, above 65535; lower the stride "
                        "or the base ports."
                    )
                    return
                if port in seen:
                    p.note(
                        f"tfserving_per_gpu_port_stride: {stride} makes the per-GPU containers' "
                        f"ports collide ({seen[port]} and {where} both on {port}); it accepts a "
                        "stride that keeps every container's two ports distinct, e.g. "
                        f"{abs(rest - grpc) + 1} or more when REST is gRPC + {abs(rest - grpc)}."
                    )
                    return
                seen[port] = where
    name = values.get("tfserving_model_name", "")
    if name not in ("", None) and (not isinstance(name, str) or not MODEL_NAME_RE.match(name)):
        p.add("tfserving_model_name", name, f"empty (the first model) or {MODEL_NAME_ACCEPTS}")
    cname = values.get("tfserving_container_name", "tfserving")
    if not isinstance(cname, str) or not CONTAINER_NAME_RE.match(cname):
        p.add(
            "tfserving_container_name",
            cname,
            "a Docker container name ([A-Za-z0-9][A-Za-z0-9_.-]*)",
        )
    if "tfserving_bind_address" in values:
        check_bind_address(p, values["tfserving_bind_address"])
    config = _abs_path(p, values, "tfserving_config_dir")
    _not_a_system_dir(p, values, "tfserving_config_dir", config)
    _abs_path(p, values, "tfserving_models_host_dir", empty_ok=True)
    check_env(p, values)
    _int_at_least(p, values, "tfserving_log_max_file", 1)
    _int_at_least(p, values, "tfserving_file_system_poll_wait_seconds", 1)
    _int_at_least(p, values, "tfserving_model_config_poll_wait_seconds", 1)
    size = values.get("tfserving_log_max_size", "50m")
    if not isinstance(size, str) or not SIZE_RE.match(size):
        p.add("tfserving_log_max_size", size, "a size such as 50m, 1g or 500k")
    memory = values.get("tfserving_memory", "")
    if memory not in ("", None) and (not isinstance(memory, str) or not SIZE_RE.match(memory)):
        p.add("tfserving_memory", memory, "empty (no limit) or a size such as 16g")
    cpus = values.get("tfserving_cpus", 0)
    try:
        cpus_ok = not isinstance(cpus, bool) and math.isfinite(float(cpus)) and float(cpus) >= 0
    except (TypeError, ValueError):
        cpus_ok = False
    if not cpus_ok:
        p.add("tfserving_cpus", cpus, "a finite number >= 0 (0: no limit)")
    check_tls(p, values)


def check_env(p: Problems, values: Mapping[str, Any]) -> None:
    """tfserving_env: the container's environment (docker_container's env: string values)."""
    env = values.get("tfserving_env")
    if env is None:
        return
    if not isinstance(env, Mapping):
        p.add("tfserving_env", env, "a dictionary NAME: value")
        return
    for key, value in env.items():
        if not isinstance(key, str) or not ENV_KEY_RE.match(key):
            p.add(
                "tfserving_env",
                key,
                "variable names of letters, digits and '_', not starting with a digit "
                "([A-Za-z_][A-Za-z0-9_]*)",
            )
            continue
        if not isinstance(value, str):
            p.add(
                f"tfserving_env.{key}",
                value,
                "a string (quote numbers and booleans: the container gets text)",
            )
        elif "\n" in value or "\r" in value or "\0" in value or "$(" in value or "`" in value:
            p.add(
                f"tfserving_env.{key}",
                value,
                "a one-line string without command substitution ($(...) or backticks) or NUL",
            )


def check_bind_address(p: Problems, value: Any) -> None:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        p.add(
            "tfserving_bind_address", value, "an IPv4 or IPv6 address of the host, e.g. 127.0.0.1"
        )


def check_tls(p: Problems, values: Mapping[str, Any]) -> None:
    if not as_bool(values.get("tfserving_tls_enabled", False)):
        return
    for name in ("tfserving_tls_cert_file", "tfserving_tls_key_file"):
        if name in values and values[name] in ("", None):
            p.note(
                f"{name} is empty; tfserving_tls_enabled needs the server's PEM certificate and key."
            )


def check_models(p: Problems, values: Mapping[str, Any]) -> None:
    base = _abs_path(p, values, "tfserving_models_base_dir")
    retired = _abs_path(p, values, "tfserving_models_retired_dir")
    _not_a_system_dir(p, values, "tfserving_models_base_dir", base)
    _not_a_system_dir(p, values, "tfserving_models_retired_dir", retired)
    config = values.get("tfserving_config_dir")
    if base and isinstance(config, str) and config.startswith("/") and ".." not in config:
        config = posixpath.normpath(config)
        if _inside(config, base) or _inside(base, config):
            p.note(
                f"tfserving_config_dir {values['tfserving_config_dir']!r} and "
                f"tfserving_models_base_dir {values['tfserving_models_base_dir']!r} overlap; "
                "the configuration needs a directory outside the models directory (TF Serving "
                "would take it for a model, the model cleanup would prune it), and the other "
                "way round."
            )
    if base and retired and (_inside(retired, base) or _inside(base, retired)):
        p.note(
            f"tfserving_models_retired_dir {values['tfserving_models_retired_dir']!r} and "
            f"tfserving_models_base_dir {values['tfserving_models_base_dir']!r} overlap; "
            "retired versions need a directory outside the served one (and the other way round)."
        )
    default_keep = _int_at_least(p, values, "tfserving_models_keep", 1)
    models = values.get("tfserving_models_list", [])
    if not isinstance(models, list):
        p.add("tfserving_models_list", models, "a list of models ({name: ..., versions: [...]})")
        return
    seen: set[str] = set()
    for index, model in enumerate(models):
        where = f"tfserving_models_list[{index}]"
        if not isinstance(model, Mapping):
            p.add(where, model, "a dictionary with at least a name")
            continue
        name = model.get("name")
        if not isinstance(name, str) or not MODEL_NAME_RE.match(name) or name in {".", ".."}:
            p.add(f"{where}.name", name, MODEL_NAME_ACCEPTS)
        elif name in seen:
            p.note(f"{where}.name: model {name!r} is listed twice; list each model once.")
        else:
            seen.add(name)
            where = f"tfserving_models_list[{name}]"
        exported = _exported_versions(values, model)
        before = len(p.items)
        check_model(p, where, model, default_keep, labels_checked=exported is not None)
        if exported is not None and len(p.items) == before:  # else fix those values first
            model_dir, versions = exported
            p.items.extend(
                label_problems(
                    f"tfserving_models_list[{index}]", model, versions, default_keep, model_dir
                )
            )
        if model.get("golden") is not None and isinstance(name, str):
            _golden_file(p, f"{where}.golden", model["golden"], values, name)
    verify = values.get("tfserving_verify_models", [])
    if isinstance(verify, list):
        for name in verify:
            if not isinstance(name, str) or not MODEL_NAME_RE.match(name):
                p.add("tfserving_verify_models", name, f"model names: {MODEL_NAME_ACCEPTS}")


def _golden_file(p: Problems, where: str, value: Any, values: Mapping[str, Any], name: str) -> None:
    """A model's golden requests: a JSON file on the controller (relative paths under
    <export base>/<model>/, as the tfserving_verify role resolves them) that must be there
    before anything changes; its contents are checked by the smoke test against the SavedModel."""
    if not isinstance(value, str) or not value.strip():
        p.add(where, value, "a path to a JSON file of golden requests on the controller")
        return
    base = values.get("tfserving_verify_export_base") or values.get("tfserving_models_export_base")
    if not os.path.isabs(value) and not (isinstance(base, str) and base):
        return  # no export base to resolve against: the export base's own check names it
    path = value if os.path.isabs(value) else os.path.join(str(base), name, value)
    if not os.path.isfile(path):
        p.add(
            where,
            value,
            f"an existing JSON file of golden requests on the controller ({path} is not a file; "
            "relative paths are read under <export base>/<model>/)",
        )


def _versions(p: Problems, where: str, value: Any) -> list[int] | None:
    if value in (None, []):
        return None
    if not isinstance(value, list):
        p.add(where, value, "a list of version numbers >= 1")
        return None
    numbers = [as_int(v) for v in value]
    if any(n is None or n < 1 for n in numbers):
        p.add(where, value, "a list of version numbers >= 1")
        return None
    result = [n for n in numbers if n is not None]
    if len(set(result)) != len(result):
        p.add(where, value, "each version once")
    return sorted(set(result))


def _exported_versions(
    values: Mapping[str, Any], model: Mapping[str, Any]
) -> tuple[str, list[int]] | None:
    """(the model's directory, its exported versions) in tfserving_models_export_base on the
    controller, for a model entry with labels; None where there is nothing to check them against
    (no labels, no usable export base, no directory of the model: the models play's scan of the
    export base names a missing model)."""
    labels = model.get("labels")
    name = model.get("name")
    base = values.get("tfserving_models_export_base")
    if not labels or not isinstance(labels, Mapping) or not isinstance(name, str):
        return None
    if not MODEL_NAME_RE.match(name) or name in {".", ".."}:
        return None
    if not isinstance(base, str) or not os.path.isabs(base):
        return None
    model_dir = os.path.join(os.path.normpath(base), name)
    if not os.path.isdir(model_dir):
        return None
    try:
        versions, _ = find_versions(model_dir)  # refused children: the models play's scan
    except SourceError:
        return None
    return model_dir, sorted(versions)


def label_problems(
    where: str,
    model: Mapping[str, Any],
    exported: Iterable[int],
    default_keep: int | None,
    model_dir: str,
) -> list[str]:
    """One sentence per label of a model entry that TF Serving would refuse: a label must point
    at a version that was exported (``exported``: the versions in ``model_dir``, as
    model_sources.find_versions finds them) and that the entry serves - its ``versions``, else
    the newest ``keep`` exported (model_sources.wanted_versions), and of those the newest
    ``latest_count`` under version_policy latest. ``where`` names the entry
    (tfserving_models_list[0]).

    The one home of the rule: the preflight (check_models) calls it before any host changes; the
    tfserving_models role's plan (filter model_plan) can call it with the same arguments. Values
    that are not label names or version numbers are check_model's to report, not repeated here."""
    labels = model.get("labels") or {}
    if not isinstance(labels, Mapping) or not labels:
        return []
    name = model.get("name")
    have = sorted(set(exported))
    problems: list[str] = []
    chosen: tuple[list[int], list[int], str, int | None] | None = None
    for label, version in labels.items():
        number = as_int(version)
        if not isinstance(label, str) or not LABEL_RE.match(label) or number is None:
            continue
        path = f"{where}.labels.{label}"
        if number not in have:
            problems.append(
                f"{path}: version {number} of model {name!r} was never exported: {model_dir} "
                f"holds {'versions ' + str(have) if have else 'no version'}. Export version "
                f"{number} there first (scripts/export_model.py --export-base "
                "<tfserving_models_export_base>), or point the label at an exported version "
                "that the model serves."
            )
            continue
        if chosen is None:
            try:
                served, keep = wanted_versions(model, have, default_keep, model_dir)
            except PlanError as err:  # e.g. versions asks for what was never exported
                return [*problems, f"{where}.labels cannot be checked: {err}."]
            chosen = _loaded_versions(model, served, keep, have)
        served, loaded, note, latest = chosen
        if number in loaded:
            continue
        if number in served:  # version_policy latest loads fewer than the entry serves
            fix = (
                f"Set {where}.version_policy to all or specific (or {where}.latest_count to "
                f"{len([v for v in served if v >= number])})"
            )
        elif model.get("versions"):
            fix = f"Add {number} to {where}.versions"
        else:
            fix = f"List {number} in {where}.versions or raise {where}.keep"
        if (
            number not in served
            and latest is not None
            and number not in sorted([*served, number])[-latest:]
        ):
            fix += f" with {where}.version_policy all or specific"
        problems.append(
            f"{path}: version {number} of model {name!r} is exported but not served: the "
            f"entry serves {note}, and TF Serving refuses a label on a version it does not "
            f"serve. {fix}, or point the label at one of {loaded}."
        )
    return problems


def _loaded_versions(
    model: Mapping[str, Any], served: list[int], keep: int | None, have: list[int]
) -> tuple[list[int], list[int], str, int | None]:
    """(the versions the entry serves, those TF Serving loads of them, how they were chosen,
    the latest_count of version_policy latest or None)."""
    if model.get("versions"):
        note = f"versions {served}"
    elif keep is not None:
        note = f"the newest {keep} (keep) of the exported {have}: {served}"
    else:
        note = f"every exported version: {served}"
    latest = as_int(model.get("latest_count") or 1)
    if (model.get("version_policy") or "latest") != "latest" or latest is None or latest < 1:
        return served, served, note, None
    if latest < len(served):
        note += f", of which version_policy latest (latest_count {latest}) loads {served[-latest:]}"
    return served, served[-latest:], note, latest


def check_model(
    p: Problems,
    where: str,
    model: Mapping[str, Any],
    default_keep: int | None,
    labels_checked: bool = False,
) -> None:
    """One entry of tfserving_models_list. ``labels_checked``: label_problems checks the labels'
    versions against the export base, so the policy checks without it are left out here."""
    keep = default_keep
    if model.get("keep") is not None:
        keep = as_int(model["keep"])
        if keep is None or keep < 1:
            p.add(f"{where}.keep", model["keep"], "an integer >= 1")
            keep = None
    versions = _versions(p, f"{where}.versions", model.get("versions"))
    _versions(p, f"{where}.pinned", model.get("pinned"))
    latest = 1
    if model.get("latest_count") is not None:
        latest_value = as_int(model["latest_count"])
        if latest_value is None or latest_value < 1:
            p.add(f"{where}.latest_count", model["latest_count"], "an integer >= 1")
        else:
            latest = latest_value
    policy = model.get("version_policy") or "latest"
    if policy not in {"latest", "all", "specific"}:
        p.add(f"{where}.version_policy", policy, "latest, all or specific")
        return
    labels = model.get("labels") or {}
    if not isinstance(labels, Mapping):
        p.add(f"{where}.labels", labels, "a dictionary label -> version")
        return
    served = versions
    if served is None and keep is not None:
        served_note = f"the newest {keep} exported"
    else:
        served_note = f"{served}"
    if policy == "latest":
        loaded = served[-latest:] if served is not None else None
        loaded_note = f"{loaded}" if loaded is not None else f"the newest {latest} of {served_note}"
    else:
        loaded = served
        loaded_note = served_note
    for label, version in labels.items():
        if not isinstance(label, str) or not LABEL_RE.match(label):
            p.add(f"{where}.labels", label, "label names of letters, digits, '.', '_' or '-'")
            continue
        number = as_int(version)
        if number is None or number < 1:
            p.add(f"{where}.labels.{label}", version, "a version number >= 1")
            continue
        if not labels_checked and loaded is not None and number not in loaded:
            p.note(
                f"{where}.labels.{label}: version {number} is not loaded by the policy "
                f"({policy}{'' if policy != 'latest' else f', latest_count {latest}'}: versions "
                f"{loaded_note}); TF Serving refuses a label on a version it does not serve. "
                "Point the label at a served version or change the policy."
            )
    distinct = {as_int(v) for v in labels.values()} - {None}
    if not labels_checked and loaded is None and policy == "latest" and len(distinct) > latest:
        p.note(
            f"{where}.labels: labels on {len(distinct)} different versions, but version_policy "
            f"latest with latest_count {latest} loads only {latest}; TF Serving refuses a label "
            "on a version it does not serve. Use version_policy all or specific, or raise "
            "latest_count."
        )


def check_image(p: Problems, values: Mapping[str, Any]) -> None:
    version = values.get("tfserving_image_version")
    if version is not None and (not isinstance(version, str) or not RELEASE_RE.match(version)):
        p.add(
            "tfserving_image_version",
            version,
            "a TF Serving release such as 2.19.0 (a pinned X.Y.Z; not latest, which the CUDA "
            "gate cannot check)",
        )
    digest = values.get("tfserving_image_digest", "")
    if digest not in ("", None) and (not isinstance(digest, str) or not DIGEST_RE.match(digest)):
        p.add(
            "tfserving_image_digest", digest, "empty or sha256: followed by 64 lowercase hex digits"
        )
    tag = values.get("tfserving_image_tag", "")
    if tag not in ("", None) and (not isinstance(tag, str) or not TAG_RE.match(tag)):
        p.add("tfserving_image_tag", tag, "empty or a Docker tag ([A-Za-z0-9_][A-Za-z0-9_.-]*)")
    user = values.get("tfserving_image_registry_username", "")
    password = values.get("tfserving_image_registry_password", "")
    if user and not password:
        p.note(
            "tfserving_image_registry_username is set but tfserving_image_registry_password is "
            "empty; set the password (in an Ansible vault) or clear the username."
        )
    if password and not user:
        p.note(
            "tfserving_image_registry_password is set but tfserving_image_registry_username is "
            "empty; set both or neither."
        )
    _abs_path(p, values, "tfserving_image_archive_cache_dir")
    _abs_path(p, values, "tfserving_image_build_dir")
    if "tfserving_image_docker_timeout" in values:
        timeout = as_int(values["tfserving_image_docker_timeout"])
        if timeout is None or not 1 <= timeout <= 86400:
            p.add(
                "tfserving_image_docker_timeout",
                values["tfserving_image_docker_timeout"],
                "a whole number of seconds from 1 to 86400",
            )
    check_image_refs(p, values)


# tfserving_image variables that name a repository, a whole image reference or a registry.
IMAGE_REPOSITORY_VARS = (
    "tfserving_image_repository",
    "tfserving_image_build_base_repository",
    "tfserving_image_build_repository",
)
IMAGE_REF_VARS = ("tfserving_image_archive_ref", "tfserving_image_standin_ref")


def check_image_refs(p: Problems, values: Mapping[str, Any]) -> None:
    for name in IMAGE_REPOSITORY_VARS:
        value = values.get(name)
        if name in values and (
            not isinstance(value, str) or len(value) > 255 or not REPOSITORY_RE.match(value)
        ):
            p.add(name, value, REPOSITORY_ACCEPTS)
    for name in IMAGE_REF_VARS:
        value = values.get(name)
        if value not in ("", None) and (
            not isinstance(value, str) or not IMAGE_REF_RE.match(value)
        ):
            empty = "empty or " if name == "tfserving_image_archive_ref" else ""
            p.add(name, value, empty + IMAGE_REF_ACCEPTS)
    url = values.get("tfserving_image_registry_url")
    if url not in ("", None) and (not isinstance(url, str) or not REGISTRY_URL_RE.match(url)):
        p.add(
            "tfserving_image_registry_url",
            url,
            "empty or a registry host[:port], optionally as an http(s):// URL (no spaces or "
            "shell characters)",
        )


def check_verify(p: Problems, values: Mapping[str, Any]) -> None:
    for name in ("tfserving_verify_grpc_endpoint", "tfserving_verify_rest_endpoint"):
        value = values.get(name)
        if value is None:
            continue
        match = ENDPOINT_RE.match(str(value))
        if not match or not 1 <= int(match.group(2)) <= 65535:
            p.add(name, value, "HOST:PORT with a port from 1 to 65535")
    _int_at_least(p, values, "tfserving_verify_wait_seconds", 1)
    if values.get("tfserving_verify_wait_seconds_override") is not None:
        _int_at_least(p, values, "tfserving_verify_wait_seconds_override", 1)
    _int_at_least(p, values, "tfserving_verify_repeat", 1)
    _int_at_least(p, values, "tfserving_verify_timeout_seconds", 1)


# The daemon.json keys dockerd reads (its daemon.json reference), with the types it accepts:
# a Python type is a leaf (dict: any JSON object), [T] a list of T, {"*": T} a map of any key to
# T, and any other dict an object with exactly those keys. dockerd refuses an unknown key and a
# wrong type at start, with the engine down: the preflight refuses them first.
DAEMON_JSON_SCHEMA: dict[str, Any] = {
    "allow-nondistributable-artifacts": [str],
    "api-cors-header": str,
    "authorization-plugins": [str],
    "bip": str,
    "bip6": str,
    "bridge": str,
    "builder": dict,
    "cdi-spec-dirs": [str],
    "cgroup-parent": str,
    "containerd": str,
    "containerd-namespace": str,
    "containerd-plugins-namespace": str,
    "data-root": str,
    "debug": bool,
    "default-address-pools": [{"base": str, "size": int}],
    "default-cgroupns-mode": str,
    "default-gateway": str,
    "default-gateway-v6": str,
    "default-ipc-mode": str,
    "default-network-opts": {"*": {"*": str}},
    "default-runtime": str,
    "default-shm-size": str,
    "default-ulimits": {"*": {"Name": str, "Hard": int, "Soft": int}},
    "dns": [str],
    "dns-opts": [str],
    "dns-search": [str],
    "exec-opts": [str],
    "exec-root": str,
    "experimental": bool,
    "features": {"*": bool},
    "fixed-cidr": str,
    "fixed-cidr-v6": str,
    "group": str,
    "host-gateway-ip": str,
    "host-gateway-ips": [str],
    "hosts": [str],
    "http-proxy": str,
    "https-proxy": str,
    "icc": bool,
    "init": bool,
    "init-path": str,
    "insecure-registries": [str],
    "ip": str,
    "ip-forward": bool,
    "ip-masq": bool,
    "ip6tables": bool,
    "iptables": bool,
    "ipv6": bool,
    "labels": [str],
    "live-restore": bool,
    "log-driver": str,
    "log-format": str,
    "log-level": str,
    "log-opts": {"*": str},
    "max-concurrent-downloads": int,
    "max-concurrent-uploads": int,
    "max-download-attempts": int,
    "metrics-addr": str,
    "mtu": int,
    "no-new-privileges": bool,
    "no-proxy": str,
    "node-generic-resources": [str],
    "oom-score-adjust": int,
    "pidfile": str,
    "proxies": {"http-proxy": str, "https-proxy": str, "no-proxy": str},
    "raw-logs": bool,
    "registry-mirrors": [str],
    "runtimes": {"*": {"path": str, "runtimeArgs": [str], "runtimeType": str, "options": dict}},
    "seccomp-profile": str,
    "selinux-enabled": bool,
    "shutdown-timeout": int,
    "storage-driver": str,
    "storage-opts": [str],
    "swarm-default-advertise-addr": str,
    "tls": bool,
    "tlscacert": str,
    "tlscert": str,
    "tlskey": str,
    "tlsverify": bool,
    "userland-proxy": bool,
    "userland-proxy-path": str,
    "userns-remap": str,
}

_TYPE_NAMES = {str: "a string", bool: "a boolean", int: "an integer", dict: "an object"}


def _schema_accepts(schema: Any) -> str:
    if isinstance(schema, list):
        return f"a list, each item {_schema_accepts(schema[0])}"
    if isinstance(schema, dict) and "*" in schema:
        return f"a map, each value {_schema_accepts(schema['*'])}"
    if isinstance(schema, dict):
        return f"an object with the keys {', '.join(sorted(schema))}"
    return _TYPE_NAMES[schema]


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Mapping):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    return False


def check_daemon_json(p: Problems, where: str, value: Any, schema: Any) -> None:
    """``value`` against a DAEMON_JSON_SCHEMA entry, naming the key path of each problem."""
    if _non_finite(value):
        p.add(where, value, "finite numbers only (JSON has no .inf or NaN; dockerd refuses them)")
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            p.add(where, value, _schema_accepts(schema))
            return
        for index, item in enumerate(value):
            check_daemon_json(p, f"{where}[{index}]", item, schema[0])
        return
    if isinstance(schema, dict):
        if not isinstance(value, Mapping):
            p.add(where, value, _schema_accepts(schema))
            return
        for key, item in value.items():
            if "*" in schema:
                check_daemon_json(p, f"{where}.{key}", item, schema["*"])
            elif key in schema:
                check_daemon_json(p, f"{where}.{key}", item, schema[key])
            else:
                close = difflib.get_close_matches(str(key), sorted(schema), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]}?)" if close else ""
                p.note(
                    f"{where}.{key}: dockerd has no such daemon.json key{hint}; it accepts "
                    f"{', '.join(sorted(schema))}."
                )
        return
    if schema is dict:
        ok = isinstance(value, Mapping)
    elif schema is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, schema)
    if not ok:
        hint = " (dockerd wants it quoted)" if schema is str and isinstance(value, int) else ""
        p.add(where, value, _schema_accepts(schema) + hint)


def check_docker(p: Problems, values: Mapping[str, Any]) -> None:
    _abs_path(p, values, "docker_daemon_json_path")
    _abs_path(p, values, "nvidia_container_toolkit_daemon_json_path")
    options = values.get("docker_daemon_options")
    if options in (None, {}):
        return
    if not isinstance(options, Mapping):
        p.add("docker_daemon_options", options, "a dictionary of daemon.json keys")
        return
    check_daemon_options(p, options, "docker_daemon_options")


def check_daemon_options(p: Problems, options: Mapping[str, Any], variable: str) -> None:
    """Each top-level daemon.json key of ``options`` against DAEMON_JSON_SCHEMA, the problems
    named ``variable.key`` (an unknown key with a did-you-mean). The preflight's check, and the
    docker_daemon_json module's on an engine without dockerd --validate."""
    for key, value in options.items():
        where = f"{variable}.{key}"
        if key in DAEMON_JSON_SCHEMA:
            check_daemon_json(p, where, value, DAEMON_JSON_SCHEMA[key])
            continue
        close = difflib.get_close_matches(str(key), sorted(DAEMON_JSON_SCHEMA), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        p.note(
            f"{where}: dockerd has no such daemon.json key{hint}; it accepts the keys of its "
            "daemon.json reference (DAEMON_JSON_SCHEMA in module_utils/preflight.py)."
        )


ROLLOUT_BATCH_RE = re.compile(r"^([1-9][0-9]*|[1-9][0-9]?%|100%)$")
ROLLOUT_STEPS = ("image", "models", "serving")


def check_rollout(p: Problems, values: Mapping[str, Any]) -> None:
    for name in ("tfserving_rollout_serial", "tfserving_rollout_host_change_serial"):
        serial = values.get(name)
        if serial is None:
            continue
        sizes = serial if isinstance(serial, list) else [serial]
        if not sizes or any(
            isinstance(s, bool) or not ROLLOUT_BATCH_RE.match(str(s)) for s in sizes
        ):
            p.add(
                name,
                serial,
                "a batch size or a non-empty list of them: whole numbers from 1 or "
                "percentages such as '25%' up to '100%' (set it with -e: Ansible reads it "
                "before any host variable)",
            )
    fail = as_int(values.get("tfserving_rollout_max_fail_percentage", 0))
    if fail is None or not 0 <= fail <= 100:
        p.add(
            "tfserving_rollout_max_fail_percentage",
            values.get("tfserving_rollout_max_fail_percentage"),
            "a whole number from 0 to 100",
        )
    steps = values.get("tfserving_rollout_steps")
    if steps is not None and (
        not isinstance(steps, list) or not steps or any(s not in ROLLOUT_STEPS for s in steps)
    ):
        p.add("tfserving_rollout_steps", steps, f"a non-empty list of {', '.join(ROLLOUT_STEPS)}")
    for name in ("tfserving_rollout_drain_command", "tfserving_rollout_undrain_command"):
        value = values.get(name)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            p.add(name, value, "an argv list of strings (empty: no command)")
    _int_at_least(p, values, "tfserving_rollout_rollback_wait_seconds", 1)


LB_PORTS = (
    "tfserving_lb_grpc_port",
    "tfserving_lb_rest_port",
    "tfserving_lb_stats_port",
    "tfserving_lb_metrics_port",
)


# LB ports that 0 turns off (the metrics-only listener: the loopback stats port keeps serving).
LB_PORTS_OFF_AT_0 = frozenset({"tfserving_lb_metrics_port"})


def check_lb(p: Problems, values: Mapping[str, Any]) -> None:
    ports = {
        name: None
        if name in LB_PORTS_OFF_AT_0 and as_int(values.get(name)) == 0
        else _port(p, values, name)
        for name in LB_PORTS
    }
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port is None:
            continue
        if port in seen:
            p.note(
                f"{seen[port]} and {name} are both {port}; the load balancer needs a port of "
                "its own for each."
            )
        else:
            seen[port] = name


def check_lb_on_a_serving_host(
    p: Problems, values: Mapping[str, Any], groups: Iterable[str], host: str
) -> None:
    """A host in both the LB group and the serving group: HAProxy's ports and TF Serving's
    (each per-GPU container's too) must differ, else one of them cannot bind."""
    groups = set(groups)
    lb_group = values.get("tfserving_lb_group", "lb")
    backend_group = values.get("tfserving_lb_backend_group", "gpu_servers")
    if lb_group not in groups or backend_group not in groups:
        return
    serving: dict[int, str] = {}
    grpc = as_int(values.get("tfserving_grpc_port"))
    rest = as_int(values.get("tfserving_rest_port"))
    count = 1
    stride = 0
    if as_bool(values.get("tfserving_per_gpu_containers", False)):
        count = as_int(values.get("tfserving_gpu_count")) or 2
        stride = as_int(values.get("tfserving_per_gpu_port_stride")) or 0
    for name, base in (("tfserving_grpc_port", grpc), ("tfserving_rest_port", rest)):
        if base is None:
            continue
        for index in range(max(count, 1)):
            serving.setdefault(base + index * stride, name)
    for name in LB_PORTS:
        port = as_int(values.get(name))
        if port is not None and port in serving:
            p.note(
                f"{name}: {port} is also {serving[port]} (TF Serving's port) on {host}, which is "
                f"in both {lb_group} and {backend_group}; it accepts a port that no serving "
                "container of the host uses (e.g. give the serving containers other ports)."
            )


def check_monitoring(p: Problems, values: Mapping[str, Any]) -> None:
    for name in (
        "tfserving_monitoring_lb_port",
        "tfserving_monitoring_node_exporter_port",
        "tfserving_monitoring_dcgm_port",
    ):
        _port(p, values, name)
    node = check_listen_ip(p, values, "tfserving_monitoring_node_exporter_address")
    try:
        scraped = ipaddress.ip_address(str(values.get("tfserving_monitoring_address")))
    except ValueError:
        return  # a name, or "" (ansible_host): not comparable here
    if node is not None and not node.is_unspecified and node != scraped:
        p.note(
            f"tfserving_monitoring_node_exporter_address: node exporter would listen on {node} "
            f"only, but Prometheus scrapes this host at {scraped} (tfserving_monitoring_address); "
            "it accepts the address Prometheus scrapes, or empty (every address of the host)."
        )


def check_listen_ip(
    p: Problems, values: Mapping[str, Any], name: str
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address a service listens on: empty (every address of the host) or one IP address,
    without port or brackets (the port has a variable of its own). The address, else None."""
    value = values.get(name)
    if value in (None, ""):
        return None
    try:
        return ipaddress.ip_address(value if isinstance(value, str) else "not a string")
    except ValueError:
        p.add(
            name,
            value,
            'empty ("": every address of the host) or one IPv4 or IPv6 address of the host, '
            "e.g. 10.0.0.5 or fd00::5 (no port, no brackets: the port is a variable of its own)",
        )
        return None


def unknown_variables(
    defined: Iterable[str], known: Iterable[str], prefixes: Iterable[str]
) -> list[str]:
    """Variables that carry a role's prefix but are no option or fact of any role."""
    known_set = set(known) | ROLE_FACTS | INVENTORY_PLUGIN_VARS
    prefix_list = sorted({f"{prefix}_" for prefix in prefixes}, key=len, reverse=True)
    problems = []
    for name in sorted(set(defined)):
        if name in known_set or not any(name.startswith(prefix) for prefix in prefix_list):
            continue
        close = difflib.get_close_matches(name, sorted(known_set), n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        role = next(prefix for prefix in prefix_list if name.startswith(prefix))[:-1]
        problems.append(
            f"{name}: no role of this project has such a variable{hint}; the {role} role's "
            f"variables are listed in roles/{role}/README.md (a typo is otherwise ignored)."
        )
    return problems


CHECKS = {
    "docker": check_docker,
    "tfserving": check_serving,
    "tfserving_models": check_models,
    "tfserving_image": check_image,
    "tfserving_verify": check_verify,
    "tfserving_rollout": check_rollout,
    "tfserving_lb": check_lb,
    "tfserving_monitoring": check_monitoring,
}


def check_booleans(p: Problems, values: Mapping[str, Any], names: Iterable[str]) -> None:
    """Options of ``type: bool``: a boolean by Ansible's rules (module_utils/booleans.py), or
    None where the option is unset (auto). "flase" or 2 would pass as true in a role."""
    for name in sorted(names):
        if name in values and values[name] is not None and as_bool(values[name]) is None:
            p.add(name, values[name], BOOL_ACCEPTS)


def check_variables(
    values: Mapping[str, Any],
    defined: Iterable[str],
    options: Mapping[str, Iterable[str]],
    roles: Iterable[str],
    groups: Iterable[str] = (),
    host: str = "this host",
) -> list[str]:
    """Every problem found: ``values`` holds the effective value of each option (host value or
    role default), ``defined`` every variable name the host sees, ``options`` role -> option
    names (all roles; where it is the argument spec's option -> spec mapping, the values of
    ``type: bool`` options are checked to be booleans), ``roles`` the roles whose values are
    checked, ``groups`` the host's groups (group_names) and ``host`` its name."""
    p = Problems()
    roles = list(roles)
    check_booleans(
        p,
        values,
        {
            name
            for names in options.values()
            if isinstance(names, Mapping)
            for name, spec in names.items()
            if isinstance(spec, Mapping) and spec.get("type") == "bool"
        },
    )
    for role in roles:
        check = CHECKS.get(role)
        if check is not None:
            check(p, values)
    if "tfserving_lb" in roles and "tfserving" in roles:
        check_lb_on_a_serving_host(p, values, groups, host)
    known = {name for names in options.values() for name in names}
    p.items.extend(unknown_variables(defined, known, options))
    return p.items
