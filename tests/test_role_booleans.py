"""Every `type: bool` option is read through Ansible's boolean rules (issue 23, item 4).

`-e tfserving_per_gpu_containers=false` arrives as the string "false": argument specs accept
it, and a bare Jinja read (`when: tfserving_per_gpu_containers`, `if ... else`) takes it as
true. The roles convert each boolean where they read it, with `| bool`; the preflight, the
filters and module_utils convert with module_utils/booleans.py (Ansible's rules, once)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import REPO, ansible_playbook, report_of

sys.path.insert(0, str(REPO / "collections"))
from ansible.module_utils.parsing.convert_bool import BOOLEANS_FALSE, BOOLEANS_TRUE, boolean
from ansible.plugins.filter.core import to_bool
from ansible_collections.tfs_fleet.common.plugins.module_utils import booleans, preflight

# Keys whose string values Ansible evaluates as bare Jinja expressions.
CONDITIONALS = {"when", "failed_when", "changed_when", "until", "that"}
BLOCK = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}", re.S)
STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
# A read that converts: `name | bool` (a `| default(...)` between is fine), or a test of
# whether it is set at all (`name is none`: unset nullable booleans mean "detect").
CONVERTED = re.compile(
    r"\s*(\|\s*default\([^()]*\)\s*)?\|\s*bool\b|\s+is\s+(not\s+)?(none|defined|undefined)\b"
)


def spec_booleans() -> dict[str, str]:
    """Every option of type bool in every role's argument spec (all entry points, nested
    options too) -> its role."""
    found: dict[str, str] = {}

    def walk(options: dict[str, Any] | None, role: str) -> None:
        for name, spec in (options or {}).items():
            if spec.get("type") == "bool":
                found[name] = role
            walk(spec.get("options"), role)

    for path in sorted(REPO.glob("roles/*/meta/argument_specs.yml")):
        for entry in yaml.safe_load(path.read_text())["argument_specs"].values():
            walk(entry.get("options"), path.parent.parent.name)
    return found


class _Loader(yaml.SafeLoader):
    """safe_load that keeps going over Ansible's tags (!unsafe, !vault)."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def source_files() -> list[Path]:
    files = [REPO / "site.yml", *sorted((REPO / "playbooks").rglob("*.yml"))]
    for path in sorted((REPO / "roles").rglob("*")):
        if not path.is_file() or path.name == "argument_specs.yml":
            continue
        if path.suffix in {".yml", ".yaml"} or "templates" in path.parts:
            files.append(path)
    return files


def expressions(path: Path) -> Iterator[str]:
    """The Jinja expressions of a role, playbook or template file."""
    if path.suffix not in {".yml", ".yaml"}:
        for match in BLOCK.finditer(path.read_text(errors="replace")):
            yield match.group(1) or match.group(2)
        return

    def walk(node: Any, key: Any = None) -> Iterator[str]:
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, k)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, key)
        elif isinstance(node, str):
            blocks = [m.group(1) or m.group(2) for m in BLOCK.finditer(node)]
            if blocks:
                yield from blocks
            elif key in CONDITIONALS:
                yield node

    yield from walk(yaml.load(path.read_text(), Loader=_Loader))  # a SafeLoader


def bare_reads_in(path: Path, names: dict[str, str]) -> list[str]:
    """`path: name in {{ expression }}` for each read of a boolean option without `| bool`."""
    pattern = re.compile(r"(?<![\w.'\"])(" + "|".join(map(re.escape, names)) + r")\b")
    found = []
    for expression in expressions(path):
        code = STRING.sub("''", expression)
        for match in pattern.finditer(code):
            if not CONVERTED.match(code, match.end()):
                where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
                found.append(f"{where}: {match.group(1)} in {{{{ {' '.join(code.split())} }}}}")
    return found


def bare_reads(names: dict[str, str]) -> list[str]:
    return [read for path in source_files() for read in bare_reads_in(path, names)]


def test_the_argument_specs_declare_booleans() -> None:
    names = spec_booleans()
    expected = {"tfserving_per_gpu_containers", "nvidia_driver_reboot", "docker_service_enabled"}
    assert expected <= set(names), names


def test_every_boolean_option_is_read_through_the_bool_filter() -> None:
    problems = bare_reads(spec_booleans())
    assert not problems, (
        "type: bool options read without `| bool` (a string such as 'false' from -e would be "
        "true):\n" + "\n".join(problems)
    )


def test_the_scanner_finds_bare_reads(tmp_path: Path) -> None:
    """The scanner itself: each kind of bare read is found, each converted read is not."""
    names = {"flag_x": "r"}
    bad = [
        "when: flag_x",
        "when: not flag_x and other",
        "msg: \"{{ 'a' if flag_x else 'b' }}\"",
        'x: "{{ some_filter(flag_x) }}"',
        "that: [other or flag_x]",
    ]
    good = [
        "when: flag_x | bool",
        "when: not flag_x | bool and other",
        'x: "{{ flag_x | default(false) | bool }}"',
        'x: "{{ none if flag_x is none else flag_x | bool }}"',
        'msg: "flag_x is false"',
        "msg: \"{{ 'flag_x is false' }}\"",
    ]
    path = tmp_path / "main.yml"
    for text, expected in [(t, 1) for t in bad] + [(t, 0) for t in good]:
        path.write_text(f"- name: t\n  {text}\n")
        assert len(bare_reads_in(path, names)) == expected, text
    assert bare_reads(names) == []  # nothing of the project is named flag_x


# ---- module_utils/booleans.py: Ansible's rules, where its two sets agree ----------------------

SPELLINGS_TRUE = ["true", "True", "TRUE", "yes", "Yes", "on", "ON", "1", True, 1]
SPELLINGS_FALSE = ["false", "False", "no", "NO", "off", "Off", "0", False, 0]
NOT_BOOLEANS = ["flase", "", " true", "false ", "y", "n", "t", "f", 2, -1, 1.5, None, [], {}]


@pytest.mark.parametrize("value", SPELLINGS_TRUE + SPELLINGS_FALSE)
def test_as_bool_agrees_with_the_filter_and_argument_specs(value: Any) -> None:
    expected = value in SPELLINGS_TRUE
    assert booleans.as_bool(value) is expected
    assert to_bool(value) is expected  # what `| bool` in a role gives
    assert boolean(value) is expected  # what argument specs' type bool gives


@pytest.mark.parametrize("value", NOT_BOOLEANS, ids=repr)
def test_as_bool_refuses_what_is_no_boolean(value: Any) -> None:
    assert booleans.as_bool(value) is None


def test_every_spelling_accepted_is_read_the_same_by_the_filter() -> None:
    for spelling in booleans.SPELLINGS:
        for value in (spelling, spelling.upper(), spelling.capitalize()):
            assert booleans.as_bool(value) is to_bool(value) is boolean(value), value
    ansible_spellings = {s for s in BOOLEANS_TRUE | BOOLEANS_FALSE if isinstance(s, str)}
    assert booleans.SPELLINGS.issubset(ansible_spellings)


# ---- the preflight ---------------------------------------------------------------------------


def spec_options() -> dict[str, dict[str, Any]]:
    return {
        path.parent.parent.name: yaml.safe_load(path.read_text())["argument_specs"]["main"][
            "options"
        ]
        for path in REPO.glob("roles/*/meta/argument_specs.yml")
    }


@pytest.mark.parametrize("value", ["false", "no", "0", "off", "False", False, 0])
def test_preflight_reads_false_strings_as_false(value: Any) -> None:
    # With per-GPU containers, stride 1 would collide: no complaint means "false" was false.
    values = {"tfserving_per_gpu_containers": value, "tfserving_gpu_count": 2,
              "tfserving_per_gpu_port_stride": 1, "tfserving_grpc_port": 8500,
              "tfserving_rest_port": 8501}  # fmt: skip
    assert preflight.check_variables(values, [], spec_options(), ["tfserving"]) == []


@pytest.mark.parametrize("value", ["true", "yes", "1", "on", "TRUE", True, 1])
def test_preflight_reads_true_strings_as_true(value: Any) -> None:
    values = {"tfserving_per_gpu_containers": value, "tfserving_gpu_count": 2,
              "tfserving_per_gpu_port_stride": 1, "tfserving_grpc_port": 8500,
              "tfserving_rest_port": 8501}  # fmt: skip
    problems = preflight.check_variables(values, [], spec_options(), ["tfserving"])
    assert len(problems) == 1 and "ports collide" in problems[0], problems


@pytest.mark.parametrize("value", ["flase", 2, "y", " true", 1.5, [True]], ids=repr)
def test_preflight_refuses_what_is_no_boolean_naming_the_variable(value: Any) -> None:
    values = {"tfserving_per_gpu_containers": value, "tfserving_tls_enabled": value}
    problems = preflight.check_variables(values, [], spec_options(), ["tfserving"])
    for name in ("tfserving_per_gpu_containers", "tfserving_tls_enabled"):
        expected = f"{name}: {value!r} is not accepted; it accepts a boolean"
        assert any(p.startswith(expected) for p in problems), problems


def test_preflight_checks_every_boolean_option_of_the_checked_roles() -> None:
    options = spec_options()
    names = spec_booleans()
    values = {name: "flase" for name in names}
    problems = preflight.check_variables(values, [], options, list(options))
    assert sorted(p.split(":")[0] for p in problems if "a boolean" in p) == sorted(names)


def test_preflight_accepts_unset_nullable_booleans() -> None:
    values = {"cuda_gate_gpu": None, "nvidia_driver_container": None}
    options = spec_options()
    assert preflight.check_variables(values, [], options, list(options)) == []


def test_preflight_run_refuses_a_string_that_is_no_boolean(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  children:\n    gpu_servers:\n      hosts:\n        h1:\n"
        "          {ansible_host: 127.0.0.1, ansible_port: 1, ansible_connection: ssh}\n"
    )
    proc = ansible_playbook(
        "playbooks/preflight.yml", inventory, "-e", "tfserving_per_gpu_containers=flase",
        timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "tfserving_per_gpu_containers: 'flase' is not accepted" in proc.stdout, proc.stdout
    assert "UNREACHABLE" not in proc.stdout
    ok = ansible_playbook(
        "playbooks/preflight.yml", inventory, "-e", "tfserving_per_gpu_containers=false",
        timeout=300,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stdout[-3000:]


# ---- what the tfserving role plans, through Ansible ----------------------------------------


@pytest.fixture(scope="module")
def plan_playbook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tfserving role's defaults and vars on localhost: the containers it plans (the loop of
    tasks/container.yml), and what other booleans decide in vars/main.yml."""
    tmp = tmp_path_factory.mktemp("plan")
    role = REPO / "roles" / "tfserving"
    play = [
        {
            "name": "What the tfserving role plans",
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [
                str(REPO / "roles" / "tfs_fleet_defaults" / "defaults" / "main.yml"),
                str(role / "defaults" / "main.yml"),
                str(role / "vars" / "main.yml"),
            ],
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "nvidia_driver_gpus_pci": ["0000:01:00.0", "0000:02:00.0"],
                "tfserving_models_served": {"m": [1]},
                "tfserving_models_config_file": "",
            },
            "tasks": [
                {
                    "name": "Plan",
                    "ansible.builtin.set_fact": {
                        "plan": {
                            "containers": "{{ _tfserving_container_names }}",
                            "indexes": "{{ _tfserving_indexes }}",
                            "security_opts": "{{ _tfserving_security_opts }}",
                            "args": "{{ _tfserving_args }}",
                        }
                    },
                }
            ],
        }
    ]
    path = tmp / "plan.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    (tmp / "inventory.yml").write_text("all:\n  hosts:\n    localhost:\n")
    return path


def plan(playbook: Path, *extra: str) -> dict[str, Any]:
    proc = ansible_playbook(
        playbook, playbook.parent / "inventory.yml", *extra, json_report=True, timeout=120
    )
    report = report_of(proc)
    assert proc.returncode == 0, json.dumps(report)[-3000:]
    result = report["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return dict(result["ansible_facts"]["plan"])


@pytest.mark.parametrize("value", ["false", "no", "0", "off", "False"])
def test_a_false_string_from_extra_vars_plans_one_container(
    plan_playbook: Path, value: str
) -> None:
    planned = plan(
        plan_playbook,
        "-e", f"tfserving_per_gpu_containers={value}",
        "-e", f"tfserving_no_new_privileges={value}",
        "-e", f"tfserving_tls_enabled={value}",
    )  # fmt: skip
    assert planned["containers"] == ["tfserving"], planned
    assert planned["indexes"] == [None], planned
    assert planned["security_opts"] == [], planned
    assert not any("ssl_config" in a for a in planned["args"]), planned


@pytest.mark.parametrize("value", ["true", "yes", "1", "on", "True"])
def test_a_true_string_from_extra_vars_plans_a_container_per_gpu(
    plan_playbook: Path, value: str
) -> None:
    planned = plan(
        plan_playbook,
        "-e", f"tfserving_per_gpu_containers={value}",
        "-e", f"tfserving_no_new_privileges={value}",
    )  # fmt: skip
    assert planned["containers"] == ["tfserving-gpu0", "tfserving-gpu1"], planned
    assert planned["indexes"] == [0, 1], planned
    assert planned["security_opts"] == ["no-new-privileges"], planned
