# Copyright: tfs-fleet developers
# Apache License 2.0
"""The registry role's input checks and htpasswd plan, and the registry a pull talks to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.tfs_fleet.common.plugins.filter.image_ref import names_a_registry

DOCUMENTATION = r"""
name: registry_input_problem
short_description: What is wrong with the tfserving_registry role's input (empty when nothing)
description:
  - Checks what meta/argument_specs.yml cannot express. The TLS certificate and key are each
    given once, as content or as a controller path; every user has a name (no C(:)) and a
    password, and no name is listed twice; the pull-through cache's credentials come in a pair
    and only with its remote URL, which is an http(s) URL.
  - Returns one sentence naming the variable and the fix, or an empty string. Passwords are
    never part of the sentence.
  - The same file provides C(registry_htpasswd_stale) (the users an htpasswd file has that the
    list no longer names) and C(registry_host) (the C(host[:port]) a pull talks to, for the
    engine's C(/etc/docker/certs.d/<host:port>/)).
options:
  _input:
    description: The role's variables without their C(tfserving_registry_) prefix.
    type: dict
    required: true
"""

_PREFIX = "tfserving_registry_"


def registry_input_problem(inputs: Mapping[str, Any]) -> str:
    """'' when the role's input is consistent, else the first problem, naming the variable."""
    for what in ("cert", "key"):
        content = str(inputs.get(f"tls_{what}") or "")
        src = str(inputs.get(f"tls_{what}_src") or "")
        name, src_name = f"{_PREFIX}tls_{what}", f"{_PREFIX}tls_{what}_src"
        if bool(content) == bool(src):
            return (
                f"Set exactly one of {name} (PEM content{', from an Ansible vault' if what == 'key' else ''}) "
                f"and {src_name} (a path on the controller): the registry serves TLS only "
                f"({'both are' if content else 'neither is'} set)."
            )
        if content and "-----BEGIN " not in content:
            return f"{name} is not PEM content (no '-----BEGIN' line); for a file use {src_name}."
    users = inputs.get("users") or []
    if not isinstance(users, list):
        return f"{_PREFIX}users must be a list of {{name, password}}."
    seen: set[str] = set()
    for index, user in enumerate(users):
        if not isinstance(user, Mapping):
            return f"{_PREFIX}users[{index}] is not a mapping {{name, password}}."
        name = str(user.get("name") or "")
        if not name or ":" in name or name != name.strip():
            return (
                f"{_PREFIX}users[{index}] has no usable name (empty, a ':' or white space): "
                "give each user a name such as 'puller'."
            )
        if not str(user.get("password") or ""):
            return (
                f"{_PREFIX}users[{index}] ({name}) has no password: set it from an Ansible vault."
            )
        if name in seen:
            return f"{_PREFIX}users lists {name} twice: keep one entry per user."
        seen.add(name)
    remote = str(inputs.get("proxy_remote_url") or "")
    username = str(inputs.get("proxy_username") or "")
    password = str(inputs.get("proxy_password") or "")
    if remote and not remote.startswith(("https://", "http://")):
        return (
            f"{_PREFIX}proxy_remote_url {remote!r} is not an http(s) URL of the upstream registry."
        )
    if bool(username) != bool(password):
        return (
            f"Set both {_PREFIX}proxy_username and {_PREFIX}proxy_password (from an Ansible "
            "vault), or neither."
        )
    if username and not remote:
        return (
            f"{_PREFIX}proxy_username is set but {_PREFIX}proxy_remote_url is empty: the "
            "credentials are for the upstream of a pull-through cache."
        )
    return ""


def registry_htpasswd_stale(htpasswd: str, users: list[Mapping[str, Any]]) -> list[str]:
    """The names an htpasswd file has that ``users`` no longer lists, in file order."""
    wanted = {str(user.get("name")) for user in users or []}
    found: list[str] = []
    for line in (htpasswd or "").splitlines():
        name, sep, _ = line.partition(":")
        if sep and name and name not in wanted and name not in found:
            found.append(name)
    return found


def registry_host(repository: str, url: str = "") -> str:
    """The ``host[:port]`` the engine pulls ``repository`` from: ``url`` when set (its scheme and
    path dropped), else the repository's first path component when it names a registry, else ''
    (Docker Hub). The engine's trust directory is /etc/docker/certs.d/<this>/."""
    if url:
        rest = url.split("://", 1)[-1]
        return rest.split("/", 1)[0]
    head, sep, _ = (repository or "").partition("/")
    return head if sep and names_a_registry(head) else ""


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "registry_input_problem": registry_input_problem,
            "registry_htpasswd_stale": registry_htpasswd_stale,
            "registry_host": registry_host,
        }
