# Copyright: tfs-fleet developers
# Apache License 2.0
"""Filters of the tfserving_monitoring role: node exporter's flags in Debian's
/etc/default/prometheus-node-exporter, edited one flag at a time.

The file is an environment file (systemd's EnvironmentFile=, and sourced by the SysV script):
the service runs ``prometheus-node-exporter $ARGS``. The role owns two flags,
``--web.listen-address`` and ``--collector.textfile.directory``; every other flag the
administrator put in ARGS, the comments and the other lines stay as they are, byte for byte.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

DOCUMENTATION = r"""
name: tfserving_monitoring_set_args
short_description: Set flags in the ARGS line of a Debian /etc/default file, keeping the others
description:
  - Takes the text of an environment file such as C(/etc/default/prometheus-node-exporter) and
    returns it with each flag of O(flags) set in its effective (last) C(ARGS=) assignment, as
    C(--flag=value) where the flag was (a second occurrence is dropped: node exporter's
    C(--web.listen-address) can be repeated and would listen twice), appended where it was
    not. Flags whose value is null are left as they are.
  - Everything else - other flags, quoting, comments, other lines - is kept. A file without
    C(ARGS=) gets one at its end.
options:
  _input:
    description: The file's text ("" when the file does not exist yet).
    type: str
    required: true
  flags:
    description: Flag name (with its leading --) -> value.
    type: dict
    required: true
"""

ARGS_LINE_RE = re.compile(r"^(?P<lead>[ \t]*(?:export[ \t]+)?ARGS[ \t]*=)(?P<value>.*)$")
# Characters that a shell would expand or end a double-quoted string on.
_UNSAFE_IN_QUOTES = re.compile(r'["\\$`]')


class ArgsError(ValueError):
    """A flag or value that cannot go into ARGS."""


def _flag_re(flag: str) -> re.Pattern[str]:
    """One occurrence of ``flag`` in ARGS with its value (``--flag=value`` or ``--flag value``),
    and the blanks before it on its line (never a line break: a continuation stays one)."""
    return re.compile(rf"(?P<ws>[ \t]*)(?<!\S){re.escape(flag)}(?:=\S*|[ \t]+(?![-\\])\S+)?(?!\S)")


def set_flag(body: str, flag: str, value: str) -> str:
    """``body`` (the text of ARGS, without its quotes) with ``flag`` set to ``value``: the first
    occurrence replaced in place, the others removed, appended when absent."""
    if not re.fullmatch(r"--[A-Za-z0-9][A-Za-z0-9._-]*", flag):
        raise ArgsError(f"{flag!r} is not a long flag (--name)")
    if not value or re.search(r"\s", value) or _UNSAFE_IN_QUOTES.search(value):
        raise ArgsError(
            f"{flag}: {value!r} cannot go into ARGS (empty, or spaces, quotes, '\\', '$' or '`')"
        )
    token = f"{flag}={value}"
    seen = False

    def replace(match: re.Match[str]) -> str:
        nonlocal seen
        if seen:
            return ""
        seen = True
        return match.group("ws") + token

    edited = _flag_re(flag).sub(replace, body)
    if seen:
        return edited
    return f"{body.rstrip()} {token}" if body.strip() else token


def _split_value(raw: str) -> tuple[str, str, str]:
    """(prefix, body, suffix) of an ARGS value: the quotes and what is around them stay."""
    stripped = raw.lstrip()
    lead = raw[: len(raw) - len(stripped)]
    if stripped[:1] in ('"', "'"):
        quote = stripped[0]
        close = stripped.rfind(quote)
        if close > 0:
            return lead + quote, stripped[1:close], stripped[close:]
    return "", raw, ""


def set_args(text: str, flags: Mapping[str, Any]) -> str:
    """``text`` with each flag of ``flags`` (value None: left alone) set in its last ARGS line."""
    wanted = {str(k): str(v) for k, v in flags.items() if v is not None}
    lines = text.splitlines(keepends=True)
    # The logical lines: a line ending in an odd number of backslashes goes on in the next one.
    found: tuple[int, int] | None = None
    index = 0
    while index < len(lines):
        end = index
        while end + 1 < len(lines):
            content = lines[end].rstrip("\r\n")
            if (len(content) - len(content.rstrip("\\"))) % 2 == 0:
                break
            end += 1
        if ARGS_LINE_RE.match(lines[index].rstrip("\r\n")):
            found = (index, end)
        index = end + 1
    if found is None:
        body = ""
        for flag, value in wanted.items():
            body = set_flag(body, flag, value)
        if not body:
            return text
        separator = "" if not text or text.endswith("\n") else "\n"
        return f'{text}{separator}ARGS="{body}"\n'
    first, last = found
    logical = "".join(lines[first : last + 1])
    newline = logical[len(logical.rstrip("\r\n")) :]
    match = ARGS_LINE_RE.match(logical[: len(logical) - len(newline)].replace("\n", "\0"))
    assert match is not None  # the first line matched on its own
    raw = match.group("value").replace("\0", "\n")
    prefix, body, suffix = _split_value(raw)
    edited = body
    for flag, value in wanted.items():
        edited = set_flag(edited, flag, value)
    if edited == body:
        return text
    if not prefix and not _UNSAFE_IN_QUOTES.search(edited):
        prefix, suffix = '"', '"'  # unquoted: a shell sourcing the file would split it
        edited = edited.strip()
    lines[first : last + 1] = [f"{match.group('lead')}{prefix}{edited}{suffix}{newline}"]
    return "".join(lines)


def listen_address(address: Any, port: Any) -> str:
    """ADDRESS:PORT for a Go listener: "" -> :PORT (every address), IPv6 in brackets."""
    text = "" if address is None else str(address).strip()
    number = int(port)
    if not text:
        return f":{number}"
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError as err:
        raise ArgsError(f"{text!r} is not an IP address (empty: every address)") from err
    return f"[{text}]:{number}" if parsed.version == 6 else f"{text}:{number}"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "tfserving_monitoring_set_args": set_args,
            "tfserving_monitoring_listen_address": listen_address,
        }
