"""tfs_fleet.common's registry filters: the registry role's input checks and htpasswd plan, and
the host:port whose CA the image role installs for the engine."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.tfs_fleet.common.plugins.filter.registry import (
    registry_host,
    registry_htpasswd_stale,
    registry_input_problem,
)

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def inputs(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "users": [{"name": "puller", "password": "s3cret-puller"}],
        "tls_cert": PEM, "tls_cert_src": "", "tls_key": KEY, "tls_key_src": "",
        "proxy_remote_url": "", "proxy_username": "", "proxy_password": "",
    }  # fmt: skip
    return base | changes


def test_consistent_input_has_no_problem() -> None:
    assert registry_input_problem(inputs()) == ""
    assert registry_input_problem(inputs(tls_cert="", tls_cert_src="files/r.crt", users=[])) == ""
    proxy = inputs(
        proxy_remote_url="https://upstream.invalid", proxy_username="u", proxy_password="p"
    )
    assert registry_input_problem(proxy) == ""


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        (
            {"tls_cert": ""},
            ["tfserving_registry_tls_cert", "tfserving_registry_tls_cert_src", "neither"],
        ),
        ({"tls_key_src": "k.pem"}, ["tfserving_registry_tls_key ", "both are", "Ansible vault"]),
        ({"tls_cert": "not a pem"}, ["tfserving_registry_tls_cert is not PEM"]),
        ({"users": [{"name": "a:b", "password": "x"}]}, ["tfserving_registry_users[0]", "':'"]),
        (
            {"users": [{"name": "puller", "password": ""}]},
            ["tfserving_registry_users[0] (puller)", "vault"],
        ),
        (
            {"users": [{"name": "p", "password": "1"}, {"name": "p", "password": "2"}]},
            ["lists p twice"],
        ),
        ({"users": ["puller"]}, ["tfserving_registry_users[0] is not a mapping"]),
        (
            {"proxy_remote_url": "upstream.invalid"},
            ["tfserving_registry_proxy_remote_url", "http(s)"],
        ),
        (
            {"proxy_remote_url": "https://u.invalid", "proxy_username": "u"},
            ["tfserving_registry_proxy_password"],
        ),
        (
            {"proxy_username": "u", "proxy_password": "p"},
            ["tfserving_registry_proxy_remote_url is empty"],
        ),
    ],
)
def test_problems_name_the_variable(changes: dict[str, Any], words: list[str]) -> None:
    problem = registry_input_problem(inputs(**changes))
    for word in words:
        assert word in problem


def test_a_problem_never_shows_a_password() -> None:
    problem = registry_input_problem(inputs(users=[{"name": "p", "password": "pw-9"}] * 2))
    assert problem and "pw-9" not in problem


def test_stale_users_are_those_the_list_no_longer_names() -> None:
    text = "puller:$2y$05$abc\nold:$2y$05$def\n\nbroken-line\nother:$2b$10$x\nold:$2y$dup\n"
    assert registry_htpasswd_stale(text, [{"name": "puller", "password": "x"}]) == ["old", "other"]
    assert registry_htpasswd_stale("", []) == []
    assert registry_htpasswd_stale(text, []) == ["puller", "old", "other"]


@pytest.mark.parametrize(
    ("repository", "url", "host"),
    [
        ("tfsf-registry.test:5000/tfsf-image/serving", "", "tfsf-registry.test:5000"),
        ("registry.internal/ml/serving", "", "registry.internal"),
        ("localhost/ml/serving", "", "localhost"),
        # Docker's rule, as image_reference_problem reads it: upper case names a host.
        ("Registry/ml/serving", "", "Registry"),
        ("127.0.0.1:5000/tfsf-image/serving", "", "127.0.0.1:5000"),
        ("tensorflow/serving", "", ""),
        ("serving", "", ""),
        ("tensorflow/serving", "https://mirror.internal:5443/v2/", "mirror.internal:5443"),
        ("a.b/c", "mirror.internal:5443", "mirror.internal:5443"),
    ],
)
def test_registry_host(repository: str, url: str, host: str) -> None:
    assert registry_host(repository, url) == host
