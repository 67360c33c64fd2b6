# Copyright: tfs-fleet developers
# Apache License 2.0
"""Ask a registry (Docker Registry HTTP API v2) for a manifest's digest without pulling it, and
say why it could not be had: the registry unreachable, its certificate not trusted, the
credentials refused, the tag or digest not there, or a digest that is not the pin.

Standard library only (runs on the managed host); the I/O is one function, the decisions are
pure functions (tests/image/test_registry_probe.py).
"""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Python 3.8 hosts: collections.abc.Callable is not subscriptable there
    from collections.abc import Callable

    Opener = Callable[[urllib.request.Request], Any]

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
)
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

# Reasons a probe fails (the role maps each to the variable to fix).
UNREACHABLE = "unreachable"
TLS = "tls"
AUTH = "auth"
NOT_FOUND = "not_found"
DIGEST_MISMATCH = "digest_mismatch"
ERROR = "error"


class ProbeError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def manifest_url(scheme: str, registry: str, repository: str, reference: str) -> str:
    return f"{scheme}://{registry}/v2/{repository}/manifests/{reference}"


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="..."`` -> ("bearer", {realm, service, ...})."""
    scheme, _, rest = (header or "").strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


def token_url(params: dict[str, str], repository: str) -> str:
    query = {"scope": f"repository:{repository}:pull"}
    if params.get("service"):
        query["service"] = params["service"]
    return (
        params["realm"] + ("&" if "?" in params["realm"] else "?") + urllib.parse.urlencode(query)
    )


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def check_digest(reference: str, found: str) -> None:
    """A reference that is a digest must come back as that digest."""
    if DIGEST.match(reference) and found and found != reference:
        raise ProbeError(
            DIGEST_MISMATCH, f"the registry answered {found} for the pinned digest {reference}"
        )


def classify(exc: BaseException) -> ProbeError:
    """An exception of urllib / ssl / socket as the reason the registry could not be asked."""
    if isinstance(exc, ProbeError):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code == 401:
            return ProbeError(AUTH, "HTTP 401: the registry refused the credentials")
        if exc.code == 403:
            return ProbeError(AUTH, "HTTP 403: the credentials may not pull this repository")
        if exc.code == 404:
            return ProbeError(NOT_FOUND, "HTTP 404: manifest unknown")
        return ProbeError(ERROR, f"HTTP {exc.code} {exc.reason}")
    reason: Any = getattr(exc, "reason", exc)
    if isinstance(reason, ssl.SSLError) or isinstance(exc, ssl.SSLError):
        return ProbeError(TLS, f"TLS: {reason}")
    if isinstance(reason, (ConnectionError, socket.timeout, socket.gaierror, OSError)):
        return ProbeError(UNREACHABLE, f"{reason}")
    return ProbeError(ERROR, f"{exc}")


def probe(
    url: str,
    repository: str,
    reference: str,
    username: str = "",
    password: str = "",
    ca: str = "",
    timeout: float = 10.0,
    opener: Opener | None = None,
) -> dict[str, str]:
    """HEAD the manifest (Basic auth, or a Bearer token from the registry's realm); returns
    {digest, media_type}; raises ProbeError."""
    context = ssl.create_default_context(cadata=ca or None)
    if opener is None:

        def opener(request: urllib.request.Request) -> Any:
            return urllib.request.urlopen(request, timeout=timeout, context=context)

    headers = {"Accept": MANIFEST_TYPES}
    if username:
        headers["Authorization"] = basic(username, password)
    try:
        try:
            response = opener(urllib.request.Request(url, headers=headers, method="HEAD"))
        except urllib.error.HTTPError as exc:
            scheme, params = parse_challenge(
                exc.headers.get("WWW-Authenticate", "") if exc.headers else ""
            )
            if exc.code != 401 or scheme != "bearer" or "realm" not in params:
                raise
            token_headers = {"Authorization": basic(username, password)} if username else {}
            answer = opener(
                urllib.request.Request(token_url(params, repository), headers=token_headers)
            )
            body = json.loads(answer.read().decode() or "{}")
            token = body.get("token") or body.get("access_token") or ""
            headers["Authorization"] = f"Bearer {token}"
            response = opener(urllib.request.Request(url, headers=headers, method="HEAD"))
        digest = response.headers.get("Docker-Content-Digest", "")
        check_digest(reference, digest)
        return {"digest": digest, "media_type": response.headers.get("Content-Type", "")}
    except Exception as exc:
        raise classify(exc) from exc
