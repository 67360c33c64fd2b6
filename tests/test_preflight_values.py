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
}


def write_inventory(path: Path, hosts: dict[str, dict[str, Any]]) -> Path:
    inv = {"all": {"children": {"gpu_servers": {"hosts": {}}}}}
    for host, hostvars in hosts.items():
        # An address nothing answers on: preflight must never need the host.
        inv["all"]["children"]["gpu_servers"]["hosts"][host] = {
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


def test_good_values_pass(preflight_run: subprocess.CompletedProcess[str]) -> None:
    assert "all-good" not in failures(preflight_run.stdout)
    assert re.search(r"^all-good\s+: ok=[1-9][0-9]* .* failed=0", preflight_run.stdout, re.M)


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
