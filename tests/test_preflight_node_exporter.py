"""Node exporter's listen address (tfserving_monitoring_node_exporter_address): the preflight
refuses what is not an IP address, and the role sets it in Debian's
/etc/default/prometheus-node-exporter ARGS one flag at a time, keeping every other flag."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

import pytest
import yaml

from helpers import REPO

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.tfs_fleet.common.plugins.module_utils import preflight

NAME = "tfserving_monitoring_node_exporter_address"
ROLE = REPO / "roles" / "tfserving_monitoring"


def load_filters() -> ModuleType:
    path = ROLE / "filter_plugins" / "node_exporter_args.py"
    spec = importlib.util.spec_from_file_location("node_exporter_args", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ARGS = load_filters()
TEXTFILE = "/var/lib/prometheus/node-exporter"
FLAGS = {"--web.listen-address": "10.0.0.5:9100", "--collector.textfile.directory": TEXTFILE}


def problems(**values: Any) -> list[str]:
    return preflight.check_variables(values, [], {}, ["tfserving_monitoring"])


# ---- preflight ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", None, "10.0.0.5", "0.0.0.0", "::", "fd00::5", "127.0.0.1"])
def test_an_ip_address_or_empty_is_accepted(value: Any) -> None:
    assert problems(**{NAME: value}) == []


@pytest.mark.parametrize(
    "value", ["localhost", "10.0.0.5:9100", ":9100", "[::1]", "10.0.0.300", "a b", 9100, True]
)
def test_anything_else_is_refused_naming_the_variable(value: Any) -> None:
    assert problems(**{NAME: value}) == [
        f'{NAME}: {value!r} is not accepted; it accepts empty ("": every address of the '
        "host) or one IPv4 or IPv6 address of the host, e.g. 10.0.0.5 or fd00::5 (no port, no "
        "brackets: the port is a variable of its own)."
    ]


def test_an_address_prometheus_does_not_scrape_is_refused() -> None:
    found = problems(**{NAME: "10.0.0.5", "tfserving_monitoring_address": "10.0.0.6"})
    assert len(found) == 1 and found[0].startswith(
        f"{NAME}: node exporter would listen on 10.0.0.5 only, but Prometheus scrapes this host "
        "at 10.0.0.6 (tfserving_monitoring_address)"
    )
    assert problems(**{NAME: "10.0.0.5", "tfserving_monitoring_address": "10.0.0.5"}) == []
    assert problems(**{NAME: "0.0.0.0", "tfserving_monitoring_address": "10.0.0.6"}) == []
    assert problems(**{NAME: "10.0.0.5", "tfserving_monitoring_address": "gpu-1"}) == []


def test_the_default_is_every_address_as_debian_ships_it() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults[NAME] == ""
    assert ARGS.listen_address(defaults[NAME], 9100) == ":9100"


# ---- the ARGS edit -------------------------------------------------------------------------


# Debian bookworm's /etc/default/prometheus-node-exporter, abridged.
DEBIAN = """\
# Set the command-line arguments to pass to the server.
# Due to shell escaping, to pass backslashes for regexes, you need to double
# them (\\\\d for \\d). If running under systemd, you need to double them again
# (\\\\\\\\d to mean \\d), and escape newlines too.
ARGS=""

# prometheus-node-exporter supports the following options:
#
#  --web.listen-address=":9100"
#                            Address on which to expose metrics and web interface.
"""


def args_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("ARGS="))


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ('ARGS=""', f'ARGS="--web.listen-address=10.0.0.5:9100 '
                    f'--collector.textfile.directory={TEXTFILE}"'),
        # Other flags stay where they are; the role's flags are replaced in place.
        ('ARGS="--collector.systemd --web.listen-address=:9100 --no-collector.wifi"',
         'ARGS="--collector.systemd --web.listen-address=10.0.0.5:9100 --no-collector.wifi '
         f'--collector.textfile.directory={TEXTFILE}"'),
        # The space-separated form, single quotes, a flag that only starts like ours.
        ("ARGS='--web.listen-address :9100 --web.listen-address-x=1 "
         "--collector.textfile.directory /srv/old --log.level=debug'",
         "ARGS='--web.listen-address=10.0.0.5:9100 --web.listen-address-x=1 "
         f"--collector.textfile.directory={TEXTFILE} --log.level=debug'"),
        # A second listen address would make node exporter listen twice: dropped.
        ('ARGS="--web.listen-address=:9100 --collector.ntp --web.listen-address=[::1]:9100"',
         'ARGS="--web.listen-address=10.0.0.5:9100 --collector.ntp '
         f'--collector.textfile.directory={TEXTFILE}"'),
        # Unquoted: quoted, so that the SysV script's shell does not split it.
        ("ARGS=--collector.systemd",
         f'ARGS="--collector.systemd --web.listen-address=10.0.0.5:9100 '
         f'--collector.textfile.directory={TEXTFILE}"'),
        # Regular expressions with backslashes and quotes kept byte for byte.
        ('ARGS="--collector.filesystem.mount-points-exclude=^/(dev|proc)($$|/) '
         '--collector.diskstats.device-exclude=^(ram|loop)\\\\d+$$"',
         'ARGS="--collector.filesystem.mount-points-exclude=^/(dev|proc)($$|/) '
         '--collector.diskstats.device-exclude=^(ram|loop)\\\\d+$$ '
         f'--web.listen-address=10.0.0.5:9100 --collector.textfile.directory={TEXTFILE}"'),
    ],
)  # fmt: skip
def test_the_role_sets_its_flags_and_keeps_every_other(before: str, after: str) -> None:
    text = DEBIAN.replace('ARGS=""', before)
    edited = ARGS.set_args(text, FLAGS)
    assert args_line(edited) == after
    assert edited.replace(after, before) == text  # nothing else in the file changed
    assert ARGS.set_args(edited, FLAGS) == edited  # a re-run changes nothing


def test_the_file_is_unchanged_when_the_flags_are_set() -> None:
    text = DEBIAN.replace(
        'ARGS=""',
        f'ARGS="--collector.ntp --web.listen-address=10.0.0.5:9100 '
        f'--collector.textfile.directory={TEXTFILE}"',
    )
    assert ARGS.set_args(text, FLAGS) == text


def test_the_last_args_line_is_the_one_edited() -> None:
    """systemd's EnvironmentFile and a shell keep the last assignment."""
    text = 'ARGS="--collector.a"\nOTHER=1\nARGS="--collector.b"\n'
    assert ARGS.set_args(text, {"--web.listen-address": ":9100"}) == (
        'ARGS="--collector.a"\nOTHER=1\nARGS="--collector.b --web.listen-address=:9100"\n'
    )


def test_continued_lines_stay_continued() -> None:
    text = 'ARGS="--collector.a \\\n  --web.listen-address=:1 \\\n  --collector.b"\nX=1\n'
    assert ARGS.set_args(text, {"--web.listen-address": ":9100"}) == (
        'ARGS="--collector.a \\\n  --web.listen-address=:9100 \\\n  --collector.b"\nX=1\n'
    )


def test_a_missing_file_or_args_line_gets_one() -> None:
    assert ARGS.set_args("", FLAGS) == (
        f'ARGS="--web.listen-address=10.0.0.5:9100 --collector.textfile.directory={TEXTFILE}"\n'
    )
    assert ARGS.set_args("# no args\nX=1", {"--web.listen-address": ":9100"}) == (
        '# no args\nX=1\nARGS="--web.listen-address=:9100"\n'
    )


def test_a_flag_with_no_value_is_left_alone() -> None:
    """tfserving_textfile_dir "" (drift metrics off): the textfile flag is not touched."""
    text = 'ARGS="--collector.textfile.directory=/mine"\n'
    flags = {"--web.listen-address": ":9100", "--collector.textfile.directory": None}
    assert ARGS.set_args(text, flags) == (
        'ARGS="--collector.textfile.directory=/mine --web.listen-address=:9100"\n'
    )


@pytest.mark.parametrize("value", ["", "a b", '"x"', "$(id)", "`id`", "a\\b"])
def test_a_value_that_cannot_go_into_args_is_refused(value: str) -> None:
    with pytest.raises(ARGS.ArgsError):
        ARGS.set_args('ARGS=""\n', {"--web.listen-address": value})


@pytest.mark.parametrize(
    ("address", "port", "expected"),
    [("", 9100, ":9100"), (None, "9101", ":9101"), ("10.0.0.5", 9100, "10.0.0.5:9100"),
     ("fd00::5", 9100, "[fd00::5]:9100"), ("::", 9100, "[::]:9100")],
)  # fmt: skip
def test_listen_address(address: Any, port: Any, expected: str) -> None:
    assert ARGS.listen_address(address, port) == expected


def test_the_role_edits_args_through_the_filter_not_a_whole_line() -> None:
    """exporters.yml writes the file through tfserving_monitoring_set_args (no lineinfile that
    replaces the whole ARGS line and loses the administrator's flags)."""
    tasks = yaml.safe_load((ROLE / "tasks" / "exporters.yml").read_text())
    writes = [t for t in tasks if "ansible.builtin.copy" in t]
    assert any(
        "tfserving_monitoring_set_args" in t["ansible.builtin.copy"]["content"] for t in writes
    )
    assert any(NAME in t["ansible.builtin.copy"]["content"] for t in writes)
    assert not any("ansible.builtin.lineinfile" in t for t in tasks)
    assert set(ARGS.FilterModule().filters()) == {
        "tfserving_monitoring_set_args",
        "tfserving_monitoring_listen_address",
    }
