"""module_utils/registry_probe: the manifest request, its Bearer token flow and the reason a
failure is reported under, with a scripted opener (the real registry: test_tfserving_image_role)."""

from __future__ import annotations

import email.message
import io
import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest
from ansible_collections.tfs_fleet.common.plugins.module_utils import registry_probe as rp

DIGEST = "sha256:" + "c3" * 32


class Answer:
    def __init__(self, headers: dict[str, str], body: bytes = b"") -> None:
        self.headers = email.message.Message()
        for key, value in headers.items():
            self.headers[key] = value
        self._body = body

    def read(self) -> bytes:
        return self._body


def http_error(
    url: str, code: int, headers: dict[str, str] | None = None
) -> urllib.error.HTTPError:
    message = email.message.Message()
    for key, value in (headers or {}).items():
        message[key] = value
    return urllib.error.HTTPError(url, code, "error", message, io.BytesIO())


def scripted(*steps: Any) -> tuple[list[urllib.request.Request], Any]:
    seen: list[urllib.request.Request] = []
    queue = list(steps)

    def opener(request: urllib.request.Request) -> Any:
        seen.append(request)
        step = queue.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    return seen, opener


URL = rp.manifest_url("https", "reg.test:5000", "ml/serving", "2.19.0")


def test_basic_credentials_and_the_digest() -> None:
    seen, opener = scripted(Answer({"Docker-Content-Digest": DIGEST, "Content-Type": "x"}))
    found = rp.probe(URL, "ml/serving", "2.19.0", "puller", "pw", opener=opener)
    assert found == {"digest": DIGEST, "media_type": "x"}
    assert URL == "https://reg.test:5000/v2/ml/serving/manifests/2.19.0"
    assert seen[0].get_method() == "HEAD"
    assert seen[0].get_header("Authorization") == rp.basic("puller", "pw")
    assert "manifest.list.v2+json" in seen[0].get_header("Accept")


def test_bearer_token_from_the_realm() -> None:
    challenge = 'Bearer realm="https://auth.test/token",service="reg.test"'
    seen, opener = scripted(
        http_error(URL, 401, {"WWW-Authenticate": challenge}),
        Answer({}, b'{"token": "T0K"}'),
        Answer({"Docker-Content-Digest": DIGEST}),
    )
    assert rp.probe(URL, "ml/serving", "2.19.0", "puller", "pw", opener=opener)["digest"] == DIGEST
    assert seen[1].full_url == (
        "https://auth.test/token?scope=repository%3Aml%2Fserving%3Apull&service=reg.test"
    )
    assert seen[1].get_header("Authorization") == rp.basic("puller", "pw")
    assert seen[2].get_header("Authorization") == "Bearer T0K"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (http_error(URL, 401, {"WWW-Authenticate": 'Basic realm="r"'}), rp.AUTH),
        (http_error(URL, 403), rp.AUTH),
        (http_error(URL, 404), rp.NOT_FOUND),
        (http_error(URL, 500), rp.ERROR),
        (urllib.error.URLError(ssl.SSLCertVerificationError("verify failed")), rp.TLS),
        (urllib.error.URLError(ConnectionRefusedError(111, "refused")), rp.UNREACHABLE),
        (urllib.error.URLError(OSError("Name or service not known")), rp.UNREACHABLE),
    ],
)
def test_failures_are_classified(error: BaseException, reason: str) -> None:
    _, opener = scripted(error)
    with pytest.raises(rp.ProbeError) as raised:
        rp.probe(URL, "ml/serving", "2.19.0", opener=opener)
    assert raised.value.reason == reason


def test_a_digest_reference_must_come_back_as_itself() -> None:
    other = "sha256:" + "ab" * 32
    _, opener = scripted(Answer({"Docker-Content-Digest": other}))
    with pytest.raises(rp.ProbeError) as raised:
        rp.probe(URL, "ml/serving", DIGEST, opener=opener)
    assert raised.value.reason == rp.DIGEST_MISMATCH
    assert other in raised.value.detail and DIGEST in raised.value.detail


def test_no_credentials_no_authorization_header() -> None:
    seen, opener = scripted(Answer({"Docker-Content-Digest": DIGEST}))
    rp.probe(URL, "ml/serving", "2.19.0", opener=opener)
    assert seen[0].get_header("Authorization") is None
