"""Preflight (playbooks/preflight.yml + tfs_fleet.common.preflight_check) refuses bad values,
bad combinations and unknown role-prefixed variables, naming the variable and what it accepts,
before any host is contacted."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import REPO, ansible_playbook

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.tfs_fleet.common.plugins.module_utils import preflight

INJECTION = "m'; touch /tmp/pwned; echo '"

# host -> (its variables, a fragment the failure must contain)
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "port-negative": ({"tfserving_grpc_port": -1}, "tfserving_grpc_port: -1 is not accepted"),
    "docker-timeout-zero": (
        {"tfserving_image_docker_timeout": 0},
        "tfserving_image_docker_timeout: 0 is not accepted",
    ),
    "host-change-serial": (
        {"tfserving_rollout_host_change_serial": [0]},
        "tfserving_rollout_host_change_serial: [0] is not accepted",
    ),
    "port-zero": ({"tfserving_rest_port": 0}, "tfserving_rest_port: 0 is not accepted"),
    "port-high": ({"tfserving_grpc_port": 70000}, "tfserving_grpc_port: 70000 is not accepted"),
    "port-bool": ({"tfserving_grpc_port": True}, "tfserving_grpc_port: True is not accepted"),
    "port-same": (
        {"tfserving_grpc_port": 9000, "tfserving_rest_port": 9000},
        "tfserving_grpc_port and tfserving_rest_port are both 9000",
    ),
    "name-empty": (
        {"tfserving_models_list": [{"name": ""}]},
        "tfserving_models_list[0].name: '' is not accepted",
    ),
    "name-slash": (
        {"tfserving_models_list": [{"name": "a/b"}]},
        "tfserving_models_list[0].name: 'a/b' is not accepted",
    ),
    "name-dotdot": (
        {"tfserving_models_list": [{"name": "../etc"}]},
        "tfserving_models_list[0].name: '../etc' is not accepted",
    ),
    "name-twice": (
        {"tfserving_models_list": [{"name": "m"}, {"name": "m"}]},
        "model 'm' is listed twice",
    ),
    "keep-negative": (
        {"tfserving_models_list": [{"name": "m", "keep": -2}]},
        "tfserving_models_list[m].keep: -2 is not accepted; it accepts an integer >= 1",
    ),
    "golden-missing": (
        {"tfserving_models_list": [{"name": "m", "golden": "no-such-golden.json"}]},
        "tfserving_models_list[m].golden: 'no-such-golden.json' is not accepted",
    ),
    "retired-is-base": (
        {"tfserving_models_retired_dir": "/srv/tfserving/models/"},
        "tfserving_models_retired_dir '/srv/tfserving/models/' and tfserving_models_base_dir",
    ),
    "base-relative": (
        {"tfserving_models_base_dir": "srv/models"},
        "tfserving_models_base_dir: 'srv/models' is not accepted; it accepts an absolute path",
    ),
    "gpu-count-negative": (
        {"tfserving_per_gpu_containers": True, "tfserving_gpu_count": -3},
        "tfserving_gpu_count: -3 is not accepted; it accepts an integer >= 0",
    ),
    "stride-zero": (
        {
            "tfserving_per_gpu_containers": True,
            "tfserving_gpu_count": 2,
            "tfserving_per_gpu_port_stride": 0,
        },
        "tfserving_per_gpu_port_stride: 0 is not accepted",
    ),
    "stride-one": (
        {
            "tfserving_per_gpu_containers": True,
            "tfserving_gpu_count": 2,
            "tfserving_per_gpu_port_stride": 1,
        },
        "tfserving_per_gpu_port_stride: 1 makes the per-GPU containers' ports collide",
    ),
    "verify-wait-override-zero": (
        {"tfserving_verify_wait_seconds_override": 0},
        "tfserving_verify_wait_seconds_override: 0 is not accepted; it accepts an integer >= 1",
    ),
    "image-latest": (
        {"tfserving_image_version": "latest"},
        "tfserving_image_version: 'latest' is not accepted",
    ),
    "digest-short": (
        {"tfserving_image_digest": "sha256:abc"},
        "tfserving_image_digest: 'sha256:abc' is not accepted",
    ),
    "user-no-password": (
        {"tfserving_image_registry_username": "bob"},
        "tfserving_image_registry_username is set but tfserving_image_registry_password is empty",
    ),
    "label-not-loaded": (
        {"tfserving_models_list": [{"name": "m", "versions": [1, 2], "labels": {"stable": 1}}]},
        "tfserving_models_list[m].labels.stable: version 1 is not loaded by the policy",
    ),
    "label-not-listed": (
        {
            "tfserving_models_list": [
                {"name": "m", "versions": [1, 2], "version_policy": "all", "labels": {"canary": 3}}
            ]
        },
        "tfserving_models_list[m].labels.canary: version 3 is not loaded",
    ),
    "model-name-injection": (
        {"tfserving_model_name": INJECTION},
        "tfserving_model_name: \"m'; touch /tmp/pwned; echo '\" is not accepted",
    ),
    "typo-host-var": (
        {"tfserving_grcp_port": 9000},
        "tfserving_grcp_port: no role of this project has such a variable "
        "(did you mean tfserving_grpc_port?)",
    ),
    "bind-not-an-address": (
        {"tfserving_bind_address": "localhost; rm"},
        "tfserving_bind_address: 'localhost; rm' is not accepted",
    ),
    "image-repository-space": (
        {"tfserving_image_repository": "tensorflow/serving; rm -rf /"},
        "tfserving_image_repository: 'tensorflow/serving; rm -rf /' is not accepted; it accepts "
        "a Docker repository",
    ),
    "image-archive-ref-space": (
        {"tfserving_image_archive_ref": "tfs-fleet/standin latest"},
        "tfserving_image_archive_ref: 'tfs-fleet/standin latest' is not accepted; it accepts "
        "empty or a Docker image reference",
    ),
    "image-registry-url-semicolon": (
        {"tfserving_image_registry_url": "registry.example.internal;id"},
        "tfserving_image_registry_url: 'registry.example.internal;id' is not accepted",
    ),
    "env-newline": (
        {"tfserving_env": {"A": "x\nB=y"}},
        "tfserving_env.A: 'x\\nB=y' is not accepted; it accepts a one-line string",
    ),
    "env-command-substitution": (
        {"tfserving_env": {"A": "$(id)"}},
        "tfserving_env.A: '$(id)' is not accepted; it accepts a one-line string without "
        "command substitution",
    ),
    "env-backticks": (
        {"tfserving_env": {"A": "`id`"}},
        "tfserving_env.A: '`id`' is not accepted",
    ),
    "env-key-equals": (
        {"tfserving_env": {"A=B": "x"}},
        "tfserving_env: 'A=B' is not accepted; it accepts variable names",
    ),
    "env-key-empty": (
        {"tfserving_env": {"": "x"}},
        "tfserving_env: '' is not accepted; it accepts variable names",
    ),
    "lb-port-is-serving-port": (
        {"_groups": ["lb"], "tfserving_lb_grpc_port": 8500},
        "tfserving_lb_grpc_port: 8500 is also tfserving_grpc_port (TF Serving's port) on "
        "lb-port-is-serving-port, which is in both lb and gpu_servers",
    ),
    "models-dir-etc": (
        {"tfserving_models_base_dir": "/etc"},
        "tfserving_models_base_dir: '/etc' is not accepted; it accepts a directory of its own, "
        "not a system directory",
    ),
    "models-dir-lib64": (
        {"tfserving_models_base_dir": "/lib64/"},
        "tfserving_models_base_dir: '/lib64/' is not accepted",
    ),
    "config-dir-is-models-dir": (
        {"tfserving_config_dir": "/srv/tfserving/models"},
        "tfserving_config_dir '/srv/tfserving/models' and tfserving_models_base_dir "
        "'/srv/tfserving/models' overlap",
    ),
    "config-dir-inside-models-dir": (
        {"tfserving_config_dir": "/srv/tfserving/models/config"},
        "tfserving_config_dir '/srv/tfserving/models/config' and tfserving_models_base_dir",
    ),
    "daemon-json-inf": (
        {"docker_daemon_options": {"max-concurrent-downloads": float("inf")}},
        "docker_daemon_options.max-concurrent-downloads: inf is not accepted; it accepts finite "
        "numbers only",
    ),
    "daemon-json-nan": (
        {"docker_daemon_options": {"mtu": float("nan")}},
        "docker_daemon_options.mtu: nan is not accepted",
    ),
    "daemon-json-unknown-key": (
        {"docker_daemon_options": {"storage-drvier": "vfs"}},
        "docker_daemon_options.storage-drvier: dockerd has no such daemon.json key (did you "
        "mean storage-driver?)",
    ),
    "daemon-json-int-log-opt": (
        {"docker_daemon_options": {"log-opts": {"max-size": "10m", "max-file": 3}}},
        "docker_daemon_options.log-opts.max-file: 3 is not accepted; it accepts a string "
        "(dockerd wants it quoted)",
    ),
    "daemon-json-bool-as-string": (
        {"docker_daemon_options": {"live-restore": "yes"}},
        "docker_daemon_options.live-restore: 'yes' is not accepted; it accepts a boolean",
    ),
    # Hosts outside gpu_servers ("_groups": the host's groups instead).
    "lb-only-typo": (
        {"_groups": ["lb"], "_not_serving": True, "tfserving_lb_grcp_port": 8500},
        "tfserving_lb_grcp_port: no role of this project has such a variable "
        "(did you mean tfserving_lb_grpc_port?)",
    ),
    "lb-only-bad-port": (
        {"_groups": ["lb"], "_not_serving": True, "tfserving_lb_rest_port": 0},
        "tfserving_lb_rest_port: 0 is not accepted",
    ),
    "lb-only-ports-same": (
        {"_groups": ["lb"], "_not_serving": True, "tfserving_lb_stats_port": 8501},
        "tfserving_lb_rest_port and tfserving_lb_stats_port are both 8501",
    ),
    "monitoring-only-bad-port": (
        {"_groups": ["monitoring"], "_not_serving": True, "tfserving_monitoring_lb_port": 99999},
        "tfserving_monitoring_lb_port: 99999 is not accepted",
    ),
    "monitoring-only-node-exporter-address": (
        {
            "_groups": ["monitoring"],
            "_not_serving": True,
            "tfserving_monitoring_node_exporter_address": "0.0.0.0:9100",
        },
        "tfserving_monitoring_node_exporter_address: '0.0.0.0:9100' is not accepted; it accepts "
        'empty ("": every address of the host) or one IPv4 or IPv6 address',
    ),
    "node-exporter-address-name": (
        {"tfserving_monitoring_node_exporter_address": "localhost"},
        "tfserving_monitoring_node_exporter_address: 'localhost' is not accepted",
    ),
    "monitoring-only-typo": (
        {"_groups": ["monitoring"], "_not_serving": True, "tfserving_monitoring_retenion": "7d"},
        "tfserving_monitoring_retenion: no role of this project has such a variable "
        "(did you mean tfserving_monitoring_retention?)",
    ),
}

# Version labels against the export base on the controller (the fixture exports versions 1, 2
# and 3 of model m and points tfserving_models_export_base at it): host -> (its
# tfserving_models_list, the fragments the failure must contain; none: it passes).
EXPORTED = (1, 2, 3)
EXPORT_CASES: dict[str, tuple[list[dict[str, Any]], tuple[str, ...]]] = {
    "label-never-exported": (
        [{"name": "m", "version_policy": "all", "labels": {"stable": 2, "canary": 7}}],
        (
            "tfserving_models_list[0].labels.canary: version 7 of model 'm' was never exported:",
            "/m holds versions [1, 2, 3]. Export version 7 there first",
        ),
    ),
    "label-exported-not-served": (
        [{"name": "m", "versions": [2, 3], "version_policy": "specific", "labels": {"old": 1}}],
        ("tfserving_models_list[0].labels.old: version 1 of model 'm' is exported but not served",),
    ),
    "label-beyond-keep": (
        [{"name": "m", "keep": 1, "labels": {"stable": 2}}],
        (
            "tfserving_models_list[0].labels.stable: version 2 of model 'm' is exported but not "
            "served: the entry serves the newest 1 (keep) of the exported [1, 2, 3]: [3]",
        ),
    ),
    "labels-exported-and-served": (
        [{"name": "m", "version_policy": "all", "labels": {"stable": 2, "canary": 3}}],
        (),
    ),
}


def export_versions(base: Path, model: str = "m", versions: tuple[int, ...] = EXPORTED) -> Path:
    """SavedModel version directories as TF Serving finds them (only saved_model.pb needed)."""
    for version in versions:
        (base / model / str(version)).mkdir(parents=True)
        (base / model / str(version) / "saved_model.pb").write_bytes(b"")
    return base


# Hosts outside gpu_servers whose serving values are bad: the serving checks do not apply there.
GOOD_ELSEWHERE: dict[str, dict[str, Any]] = {
    "lb-only-good": {"_groups": ["lb"], "_not_serving": True, "tfserving_grpc_port": 0,
                     "tfserving_env": {"A=B": "$(id)"}, "docker_daemon_options": {"x": 1},
                     "tfserving_verify_grpc_endpoint": "127.0.0.1:0"},
    "monitoring-only-good": {"_groups": ["monitoring"], "_not_serving": True,
                             "tfserving_models_base_dir": "/etc",
                             "tfserving_image_repository": "Not A Repo"},
}  # fmt: skip


def write_inventory(path: Path, hosts: dict[str, dict[str, Any]]) -> Path:
    """Each host in gpu_servers, and in the groups its "_groups" names ("_not_serving": not in
    gpu_servers)."""
    children: dict[str, Any] = {g: {"hosts": {}} for g in ("gpu_servers", "lb", "monitoring")}
    inv = {"all": {"children": children}}
    for host, given in hosts.items():
        hostvars = {k: v for k, v in given.items() if not k.startswith("_")}
        groups = list(given.get("_groups", []))
        if not given.get("_not_serving"):
            groups.append("gpu_servers")
        for group in groups:
            # An address nothing answers on: preflight must never need the host.
            children[group]["hosts"][host] = {
                "ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_connection": "ssh",
                **hostvars,
            }  # fmt: skip
    path.write_text(yaml.safe_dump(inv))
    return path


def failures(output: str) -> dict[str, str]:
    """host -> failure text from the default callback's output."""
    found: dict[str, str] = {}
    for match in re.finditer(r"^(?:fatal|failed): \[([^\]]+)\].*?(?=^\S|\Z)", output, re.M | re.S):
        found[match.group(1)] = found.get(match.group(1), "") + match.group(0)
    return found


@pytest.fixture(scope="module")
def preflight_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    tmp = tmp_path_factory.mktemp("preflight")
    hosts = {name: hostvars for name, (hostvars, _) in CASES.items()}
    good = {
        "name": "m",
        "versions": [1, 2],
        "version_policy": "all",
        "labels": {"stable": 1, "canary": 2},
    }
    hosts["all-good"] = {"tfserving_models_list": [good]}
    hosts.update(GOOD_ELSEWHERE)
    exports = export_versions(tmp / "exports")
    for host, (models, _) in EXPORT_CASES.items():
        hosts[host] = {
            "tfserving_models_list": models,
            "tfserving_models_export_base": str(exports),
        }
    inventory = write_inventory(tmp / "inventory.yml", hosts)
    return ansible_playbook("playbooks/preflight.yml", inventory, timeout=300)


@pytest.mark.parametrize("host", sorted(CASES))
def test_each_bad_value_fails_naming_the_variable(
    preflight_run: subprocess.CompletedProcess[str], host: str
) -> None:
    failed = failures(preflight_run.stdout)
    assert host in failed, preflight_run.stdout[-3000:]
    fragment = CASES[host][1]
    assert fragment in failed[host].replace("\n        ", " ").replace("\n", " "), failed[host]


@pytest.mark.parametrize("host", sorted(EXPORT_CASES))
def test_labels_are_checked_against_the_export_base_in_preflight(
    preflight_run: subprocess.CompletedProcess[str], host: str
) -> None:
    """A label on a version that was never exported, or that the entry does not serve, fails
    the preflight (before any host is contacted), naming the variable path and the versions."""
    failed = failures(preflight_run.stdout)
    fragments = EXPORT_CASES[host][1]
    if not fragments:
        assert host not in failed, failed.get(host)
        assert re.search(rf"^{host}\s+: ok=[1-9][0-9]* .* failed=0", preflight_run.stdout, re.M)
        return
    assert host in failed, preflight_run.stdout[-3000:]
    text = failed[host].replace("\n        ", " ").replace("\n", " ")
    for fragment in fragments:
        assert fragment in text, failed[host]


def test_good_values_pass(preflight_run: subprocess.CompletedProcess[str]) -> None:
    assert "all-good" not in failures(preflight_run.stdout)
    assert re.search(r"^all-good\s+: ok=[1-9][0-9]* .* failed=0", preflight_run.stdout, re.M)


@pytest.mark.parametrize("host", sorted(GOOD_ELSEWHERE))
def test_serving_checks_do_not_apply_outside_gpu_servers(
    preflight_run: subprocess.CompletedProcess[str], host: str
) -> None:
    """An LB or monitoring host is checked (the lb-only-*/monitoring-only-* cases fail), but
    only for its own role's variables: serving values it carries do not matter there."""
    assert host not in failures(preflight_run.stdout), failures(preflight_run.stdout).get(host)
    assert re.search(rf"^{host}\s+: ok=[1-9][0-9]* .* failed=0", preflight_run.stdout, re.M)


def test_nothing_was_contacted(preflight_run: subprocess.CompletedProcess[str]) -> None:
    assert "UNREACHABLE" not in preflight_run.stdout


def test_a_typo_as_an_extra_var_is_caught(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "inventory.yml", {"h1": {}})
    proc = ansible_playbook(
        "playbooks/preflight.yml", inventory, "-e", "tfserving_modles_keep=4", timeout=300
    )
    assert proc.returncode != 0
    assert "tfserving_modles_keep: no role of this project has such a variable" in proc.stdout
    assert "did you mean tfserving_models_keep?" in proc.stdout


def test_a_boolean_port_as_an_extra_var_is_caught(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "inventory.yml", {"h1": {}})
    proc = ansible_playbook(
        "playbooks/preflight.yml", inventory, "-e", json.dumps({"tfserving_rest_port": True}),
        timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0 and "tfserving_rest_port: True is not accepted" in proc.stdout


def test_site_stops_at_preflight_before_any_host_is_contacted(tmp_path: Path) -> None:
    """site.yml with a bad value: the hosts fail in preflight; no later play reaches them (an
    SSH connection to port 1 would show as UNREACHABLE)."""
    inventory = write_inventory(tmp_path / "inventory.yml", {"h1": {"tfserving_rest_port": 0}})
    proc = ansible_playbook("site.yml", inventory, timeout=300)
    assert proc.returncode != 0
    assert "tfserving_rest_port: 0 is not accepted" in proc.stdout
    assert "UNREACHABLE" not in proc.stdout
    assert "Docker engine" not in proc.stdout.split("PLAY RECAP")[0].split("Preflight")[-1]


# ---- the library directly ---------------------------------------------------------------------


def spec_options() -> dict[str, list[str]]:
    options = {}
    for path in REPO.glob("roles/*/meta/argument_specs.yml"):
        spec = yaml.safe_load(path.read_text())["argument_specs"]["main"]["options"]
        options[path.parent.parent.name] = list(spec)
    return options


def test_role_facts_list_matches_the_set_fact_tasks() -> None:
    """Every public fact a role sets is known to preflight (else it would be reported as a typo
    when a fact cache brings it back), and every listed fact exists."""
    facts = set()
    for path in REPO.glob("roles/*/tasks/*.yml"):
        for task in yaml.safe_load(path.read_text()) or []:
            args = task.get("ansible.builtin.set_fact") if isinstance(task, dict) else None
            if isinstance(args, dict):
                facts |= {
                    k for k in args if not k.startswith("_") and k != "cacheable" and "{{" not in k
                }
    assert facts == set(preflight.ROLE_FACTS)


def test_ports_above_65535_through_the_stride() -> None:
    values = {"tfserving_grpc_port": 65000, "tfserving_rest_port": 65001,
              "tfserving_per_gpu_containers": True, "tfserving_gpu_count": 8,
              "tfserving_per_gpu_port_stride": 100}  # fmt: skip
    problems = preflight.check_variables(values, [], spec_options(), ["tfserving"])
    assert any("above 65535" in p for p in problems), problems


def test_defaults_of_every_role_pass() -> None:
    values: dict[str, Any] = {}
    for path in REPO.glob("roles/*/meta/argument_specs.yml"):
        spec = yaml.safe_load(path.read_text())["argument_specs"]["main"]["options"]
        values.update(
            {k: v.get("default") for k, v in spec.items() if "{{" not in str(v.get("default"))}
        )
    options = spec_options()
    assert preflight.check_variables(values, list(values), options, list(options)) == []


def test_latest_policy_with_labels_on_more_versions_than_it_loads() -> None:
    values = {"tfserving_models_list": [{"name": "m", "labels": {"a": 1, "b": 2}}]}
    problems = preflight.check_variables(values, [], spec_options(), ["tfserving_models"])
    assert any("loads only 1" in p for p in problems), problems


def test_unrelated_variables_are_not_reported() -> None:
    defined = [
        "ansible_host",
        "sandbox_published_grpc_port",
        "rollout_serial",
        "dockerfile",
    ]
    assert preflight.unknown_variables(defined, [], ["docker", "tfserving"]) == []


def test_a_golden_file_is_found_under_the_model_directory(tmp_path: Path) -> None:
    """`golden:` resolves like the verify role reads it: relative to <export base>/<model>/."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "golden.json").write_text('{"requests": []}')
    values = {
        "tfserving_models_export_base": str(tmp_path),
        "tfserving_models_list": [{"name": "m", "golden": "golden.json"}],
    }
    options = spec_options()
    assert preflight.check_variables(values, [], options, ["tfserving_models"]) == []
    values["tfserving_models_list"] = [{"name": "m", "golden": "other.json"}]
    problems = preflight.check_variables(values, [], options, ["tfserving_models"])
    assert any(f"{tmp_path}/m/other.json is not a file" in p for p in problems), problems
    values["tfserving_models_list"] = [{"name": "m", "golden": str(tmp_path / "m/golden.json")}]
    assert preflight.check_variables(values, [], options, ["tfserving_models"]) == []


def all_defaults() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in REPO.glob("roles/*/meta/argument_specs.yml"):
        spec = yaml.safe_load(path.read_text())["argument_specs"]["main"]["options"]
        values.update(
            {k: v.get("default") for k, v in spec.items() if "{{" not in str(v.get("default"))}
        )
    return values


def without_templates(values: dict[str, Any]) -> dict[str, Any]:
    """The values without templates, but with `{{ other }}` resolved where `other` is given."""
    resolved = {}
    for key, value in values.items():
        match = re.fullmatch(r"\{\{ *([A-Za-z_][A-Za-z0-9_]*) *\}\}", str(value))
        if match and match.group(1) in values:
            resolved[key] = values[match.group(1)]
        elif "{{" not in str(value):
            resolved[key] = value
    return resolved


@pytest.mark.parametrize(
    "files",
    [
        "inventories/sandbox/group_vars/all/*.yml",
        "inventories/production/group_vars/all/*.yml",
    ],
)
def test_the_inventories_values_pass(files: str) -> None:
    """The sandbox's (and the production example's) own values pass, on a serving host that
    is also in lb and monitoring (every check at once)."""
    given: dict[str, Any] = {}
    for path in sorted(REPO.glob(files)):
        given.update(yaml.safe_load(path.read_text()) or {})
    values = {**all_defaults(), **without_templates(given)}
    options = spec_options()
    problems = preflight.check_variables(
        values, list(values), options, list(options), groups=["gpu_servers", "monitoring"]
    )
    assert problems == []


def test_the_molecule_scenarios_values_pass() -> None:
    options = spec_options()
    for path in sorted(REPO.glob("molecule/*/molecule.yml")):
        scenario = yaml.safe_load(path.read_text())
        group_vars = scenario.get("provisioner", {}).get("inventory", {}).get("group_vars", {})
        for group, given in group_vars.items():
            values = {**all_defaults(), **without_templates(given)}
            problems = preflight.check_variables(values, [], options, list(options))
            assert problems == [], (path, group)


@pytest.mark.parametrize(
    "ref",
    [
        "tensorflow/serving",
        "serving",
        "127.0.0.1:5000/tfsf-image/serving",
        "registry.example.internal:5000/ml/tensorflow-serving",
        "localhost/a__b/c-d.e",
        "[::1]:5000/ml/serving",
    ],
)
def test_docker_repositories_are_accepted(ref: str) -> None:
    values = {"tfserving_image_repository": ref, "tfserving_image_archive_ref": ref + ":2.19.0"}
    assert preflight.check_variables(values, [], spec_options(), ["tfserving_image"]) == []
    values["tfserving_image_archive_ref"] = f"{ref}:v1@sha256:{'a' * 64}"
    assert preflight.check_variables(values, [], spec_options(), ["tfserving_image"]) == []


@pytest.mark.parametrize(
    "ref",
    ["Tensorflow/Serving", "tensorflow/serving:2.19.0", "a b", "a;b", "-a/b", "a//b", "$(id)/x"],
)
def test_docker_repositories_are_refused(ref: str) -> None:
    for name in preflight.IMAGE_REPOSITORY_VARS:
        problems = preflight.check_variables({name: ref}, [], spec_options(), ["tfserving_image"])
        assert any(p.startswith(f"{name}: {ref!r} is not accepted") for p in problems), problems


def test_image_references_and_registries_are_refused() -> None:
    values = {
        "tfserving_image_standin_ref": "tfs-fleet/standin:latest;id",
        "tfserving_image_archive_ref": "tfs-fleet/standin@sha256:abc",
        "tfserving_image_registry_url": "https://registry example",
    }
    problems = preflight.check_variables(values, [], spec_options(), ["tfserving_image"])
    assert len(problems) == 3, problems
    ok = {"tfserving_image_registry_url": "https://registry.example.internal:5000/v2/"}
    assert preflight.check_variables(ok, [], spec_options(), ["tfserving_image"]) == []


def test_daemon_json_nested_types_name_the_key_path() -> None:
    values = {
        "docker_daemon_options": {
            "default-address-pools": [{"base": "10.10.0.0/16", "size": "24"}],
            "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": "x"}},
            "features": {"cdi": "true"},
            "registry-mirrors": "https://mirror.example",
            "proxies": {"http-proxy": "http://p:3128", "ftp-proxy": "x"},
        }
    }
    problems = "\n".join(preflight.check_variables(values, [], spec_options(), ["docker"]))
    for fragment in (
        "docker_daemon_options.default-address-pools[0].size: '24' is not accepted; it accepts "
        "an integer",
        "docker_daemon_options.runtimes.nvidia.runtimeArgs: 'x' is not accepted; it accepts a "
        "list, each item a string",
        "docker_daemon_options.features.cdi: 'true' is not accepted; it accepts a boolean",
        "docker_daemon_options.registry-mirrors: 'https://mirror.example' is not accepted",
        "docker_daemon_options.proxies.ftp-proxy: dockerd has no such daemon.json key",
    ):
        assert fragment in problems, problems
    good = {
        "docker_daemon_options": {
            "default-address-pools": [{"base": "10.10.0.0/16", "size": 24}],
            "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}},
            "features": {"cdi": True},
            "default-runtime": "nvidia",
            "registry-mirrors": ["https://mirror.example"],
            "live-restore": True,
            "max-concurrent-downloads": 3,
            "log-opts": {"max-size": "10m", "max-file": "3"},
            "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 65536, "Soft": 65536}},
        }
    }
    assert preflight.check_variables(good, [], spec_options(), ["docker"]) == []


def test_lb_ports_on_a_serving_host_only_matter_when_it_is_in_both_groups() -> None:
    values = all_defaults()  # LB 8500/8501, serving 8500/8501
    options = spec_options()
    roles = list(options)
    assert preflight.check_variables(values, [], options, roles, groups=["gpu_servers"]) == []
    assert preflight.check_variables(values, [], options, roles, groups=["lb"]) == []
    problems = preflight.check_variables(
        values, [], options, roles, groups=["gpu_servers", "lb"], host="h1"
    )
    assert any(p.startswith("tfserving_lb_grpc_port: 8500 is also") for p in problems)
    assert any(p.startswith("tfserving_lb_rest_port: 8501 is also") for p in problems)
    # Per-GPU containers: GPU 1's ports (base + stride) count too.
    values.update({"tfserving_lb_grpc_port": 9500, "tfserving_lb_rest_port": 9501,
                   "tfserving_per_gpu_containers": True, "tfserving_gpu_count": 2,
                   "tfserving_per_gpu_port_stride": 1000})  # fmt: skip
    problems = preflight.check_variables(values, [], options, roles, groups=["gpu_servers", "lb"])
    assert any(p.startswith("tfserving_lb_grpc_port: 9500 is also") for p in problems), problems


def test_env_values_must_be_strings() -> None:
    values = {"tfserving_env": {"GOOD": "a b=c", "N": 3}}
    problems = preflight.check_variables(values, [], spec_options(), ["tfserving"])
    assert problems == [
        "tfserving_env.N: 3 is not accepted; it accepts a string (quote numbers and booleans: "
        "the container gets text)."
    ]


@pytest.mark.parametrize("path", ["/", "/usr", "/var/", "/home", "/lib", "/lib32", "/boot"])
def test_system_directories_are_refused(path: str) -> None:
    for name in ("tfserving_models_base_dir", "tfserving_models_retired_dir"):
        problems = preflight.check_variables({name: path}, [], spec_options(), ["tfserving_models"])
        assert any(p.startswith(f"{name}: {path!r} is not accepted") for p in problems), problems
    problems = preflight.check_variables(
        {"tfserving_config_dir": path}, [], spec_options(), ["tfserving"]
    )
    assert any(p.startswith(f"tfserving_config_dir: {path!r}") for p in problems), problems


def test_models_dir_inside_the_config_dir_is_refused() -> None:
    values = {"tfserving_config_dir": "/srv/tfs", "tfserving_models_base_dir": "/srv/tfs/models"}
    problems = preflight.check_variables(values, [], spec_options(), ["tfserving_models"])
    assert any("overlap" in p for p in problems), problems


# ---- version labels against the export base (the library directly) --------------------------


def label_values(base: Path, *models: dict[str, Any]) -> dict[str, Any]:
    return {
        "tfserving_models_export_base": str(base),
        "tfserving_models_keep": 3,
        "tfserving_models_list": list(models),
    }


def test_a_label_on_a_version_never_exported_is_refused_naming_the_variable(
    tmp_path: Path,
) -> None:
    base = export_versions(tmp_path)
    values = label_values(
        base,
        {"name": "other", "versions": [1]},
        {"name": "m", "version_policy": "all", "labels": {"stable": 2, "next": 4}},
    )
    (base / "other" / "1").mkdir(parents=True)
    (base / "other" / "1" / "saved_model.pbtxt").write_text("")
    problems = preflight.check_variables(values, [], spec_options(), ["tfserving_models"])
    assert problems == [
        f"tfserving_models_list[1].labels.next: version 4 of model 'm' was never exported: "
        f"{base}/m holds versions [1, 2, 3]. Export version 4 there first "
        "(scripts/export_model.py --export-base <tfserving_models_export_base>), or point the "
        "label at an exported version that the model serves."
    ]


def test_a_directory_tf_serving_would_not_load_is_no_exported_version(tmp_path: Path) -> None:
    """Versions are found as TF Serving finds them (model_sources.find_versions): a numbered
    directory without a SavedModel is not a version a label can point at."""
    base = export_versions(tmp_path)
    (base / "m" / "4").mkdir()  # a half-written export
    (base / "m" / "notes").mkdir()
    values = label_values(base, {"name": "m", "version_policy": "all", "labels": {"next": 4}})
    problems = preflight.check_variables(values, [], spec_options(), ["tfserving_models"])
    assert len(problems) == 1 and "version 4 of model 'm' was never exported" in problems[0]
    assert "holds versions [1, 2, 3]" in problems[0]


@pytest.mark.parametrize(
    ("model", "fragment"),
    [
        (
            {"versions": [2, 3], "version_policy": "specific", "labels": {"old": 1}},
            "tfserving_models_list[0].labels.old: version 1 of model 'm' is exported but not "
            "served: the entry serves versions [2, 3], and TF Serving refuses a label on a "
            "version it does not serve. Add 1 to tfserving_models_list[0].versions, or point "
            "the label at one of [2, 3].",
        ),
        (
            {"keep": 2, "version_policy": "all", "labels": {"old": 1}},
            "tfserving_models_list[0].labels.old: version 1 of model 'm' is exported but not "
            "served: the entry serves the newest 2 (keep) of the exported [1, 2, 3]: [2, 3]",
        ),
        (
            {"labels": {"stable": 2}},  # latest policy, latest_count 1: only 3 is loaded
            "of which version_policy latest (latest_count 1) loads [3], and TF Serving refuses "
            "a label on a version it does not serve. Set tfserving_models_list[0].version_policy "
            "to all or specific (or tfserving_models_list[0].latest_count to 2)",
        ),
    ],
)
def test_a_label_on_an_exported_version_not_served_is_refused(
    tmp_path: Path, model: dict[str, Any], fragment: str
) -> None:
    values = label_values(export_versions(tmp_path), {"name": "m", **model})
    problems = preflight.check_variables(values, [], spec_options(), ["tfserving_models"])
    assert len(problems) == 1 and fragment in problems[0], problems


@pytest.mark.parametrize(
    "model",
    [
        {"version_policy": "all", "labels": {"stable": 2, "canary": 3}},
        {"versions": [1, 3], "version_policy": "specific", "labels": {"stable": 1}},
        {"labels": {"stable": 3}},
        {"keep": 2, "latest_count": 2, "labels": {"stable": 2, "canary": 3}},
    ],
)
def test_labels_on_exported_and_served_versions_pass(tmp_path: Path, model: dict[str, Any]) -> None:
    values = label_values(export_versions(tmp_path), {"name": "m", **model})
    assert preflight.check_variables(values, [], spec_options(), ["tfserving_models"]) == []


def test_label_problems_is_the_rule_of_one_entry(tmp_path: Path) -> None:
    """label_problems is what the preflight calls (and what the models role's plan can call):
    an entry, the exported versions and default keep in, one sentence per refused label out."""
    model = {"name": "m", "versions": [2], "labels": {"a": 2, "b": 1, "c": 9}}
    problems = preflight.label_problems("tfserving_models_list[0]", model, [1, 2, 3], 3, "/x/m")
    assert [p.split(":")[0] for p in problems] == [
        "tfserving_models_list[0].labels.b",
        "tfserving_models_list[0].labels.c",
    ]
    assert "exported but not served" in problems[0] and "never exported" in problems[1]


def test_without_the_models_directory_the_labels_are_left_to_the_models_play(
    tmp_path: Path,
) -> None:
    """No directory of the model in the export base (not exported yet, or a production export
    base not mounted here): the preflight checks what it can without it."""
    values = label_values(tmp_path, {"name": "m", "version_policy": "all", "labels": {"a": 9}})
    assert preflight.check_variables(values, [], spec_options(), ["tfserving_models"]) == []


def test_the_lb_metrics_listener_turned_off_with_0_is_accepted() -> None:
    """tfserving_lb_metrics_port: 0 turns that listener off (roles/tfserving_lb); other LB ports
    still need a port."""
    options = spec_options()
    values = {"tfserving_lb_metrics_port": 0}
    assert preflight.check_variables(values, [], options, ["tfserving_lb"]) == []
    values = {"tfserving_lb_stats_port": 0}
    problems = preflight.check_variables(values, [], options, ["tfserving_lb"])
    assert problems and problems[0].startswith("tfserving_lb_stats_port: 0 is not accepted")
