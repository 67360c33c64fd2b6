"""A loopback-only stand-in for a private registry (Docker Registry HTTP API v2, read-only, HTTP
Basic auth), for tests: no real registry is reachable from this machine.

- In pytest (`fake_registry()`): only the login endpoint `GET /v2/`, to prove which credentials
  the Docker engine presented when the role logged in.
- As a program inside a molecule test host (`python3 fake_registry.py --archive probe.tar ...`):
  also serves the image of a `docker save` tarball as `<repository>:<tag>` (schema 2 manifest,
  gzip layers), so that the role's pull source runs for real. Every request is appended to a
  log file, so that a verifier can count the pulls.

Standard library only (the test hosts have python3 and nothing else).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


@dataclass
class Seen:
    """What the registry was shown: (username, password matched) per authenticated request,
    and the request lines it answered."""

    logins: list[tuple[str, bool]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Image:
    """One image served as <repository>:<tag>: manifest bytes and blobs by digest."""

    repository: str
    tag: str
    manifest: bytes
    blobs: dict[str, bytes]

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_from_archive(path: Path, repository: str, tag: str) -> Image:
    """Turn the (single) image of a classic `docker save` tarball into registry content."""
    with tarfile.open(path) as archive:
        entry = json.load(archive.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
        config = archive.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
        layers = [
            gzip.compress(archive.extractfile(name).read(), mtime=0)  # type: ignore[union-attr]
            for name in entry["Layers"]
        ]
    blobs = {_digest(config): config} | {_digest(layer): layer for layer in layers}
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {"mediaType": CONFIG_V1, "size": len(config), "digest": _digest(config)},
        "layers": [
            {"mediaType": LAYER_GZIP, "size": len(layer), "digest": _digest(layer)}
            for layer in layers
        ],
    }
    return Image(repository, tag, json.dumps(manifest, indent=2).encode(), blobs)


def _handler(
    username: str, password: str, seen: Seen, image: Image | None, log: Path | None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:
            return

        def _send(self, code: int, body: bytes, headers: dict[str, str], head: bool) -> None:
            self.send_response(code)
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _authorized(self) -> bool:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return False
            user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            with seen.lock:
                seen.logins.append((user, user == username and secret == password))
            return (user, secret) == (username, password)

        def _record(self) -> None:
            line = f"{self.command} {self.path}"
            with seen.lock:
                seen.requests.append(line)
                if log is not None:
                    with log.open("a") as handle:
                        handle.write(line + "\n")

        def _content(self) -> tuple[bytes, dict[str, str]] | None:
            path = self.path.rstrip("/")
            if path == "/v2":
                return b"{}", {"Content-Type": "application/json"}
            if image is None:
                return None
            prefix = f"/v2/{image.repository}/"
            if not path.startswith(prefix):
                return None
            kind, _, ref = path[len(prefix) :].partition("/")
            if kind == "manifests" and ref in (image.tag, image.digest):
                return image.manifest, {
                    "Content-Type": MANIFEST_V2,
                    "Docker-Content-Digest": image.digest,
                }
            if kind == "blobs" and ref in image.blobs:
                return image.blobs[ref], {
                    "Content-Type": "application/octet-stream",
                    "Docker-Content-Digest": ref,
                }
            return None

        def _answer(self, head: bool) -> None:
            self._record()
            if not self._authorized():
                challenge = {"WWW-Authenticate": 'Basic realm="tfsf-image-test"'}
                self._send(401, b"", challenge, head)
                return
            content = self._content()
            if content is None:
                self._send(404, b"", {}, head)
                return
            self._send(200, content[0], content[1], head)

        def do_GET(self) -> None:
            self._answer(head=False)

        def do_HEAD(self) -> None:
            self._answer(head=True)

    return Handler


@contextmanager
def fake_registry(username: str, password: str) -> Iterator[tuple[str, Seen]]:
    """Serve the login endpoint on 127.0.0.1 (a free port); yield ("127.0.0.1:PORT", Seen)."""
    seen = Seen()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(username, password, seen, None, None))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Serve one docker save image as <repository>:<tag> on 127.0.0.1 "
        "(Registry API v2, HTTP Basic auth). Test use only."
    )
    parser.add_argument("--archive", type=Path, required=True, help="docker save tarball")
    parser.add_argument("--repository", required=True, help="repository path, e.g. tfsf/serving")
    parser.add_argument("--tag", required=True, help="tag the image is served under")
    parser.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1")
    parser.add_argument("--username", required=True)
    parser.add_argument("--password-file", type=Path, required=True, help="file with the password")
    parser.add_argument("--log", type=Path, required=True, help="request log (appended)")
    args = parser.parse_args(argv)
    image = image_from_archive(args.archive, args.repository, args.tag)
    password = args.password_file.read_text().strip()
    handler = _handler(args.username, password, Seen(), image, args.log)
    ThreadingHTTPServer(("127.0.0.1", args.port), handler).serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
