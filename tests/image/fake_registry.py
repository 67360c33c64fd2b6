"""A loopback-only stand-in for a private registry's login endpoint (Docker Registry HTTP API
v2, `GET /v2/` with HTTP Basic auth), so that a test can prove which credentials the Docker
engine presented when the role logged in, without any real registry."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Seen:
    """What the registry was shown: (username, password matched) per authenticated request."""

    logins: list[tuple[str, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(username: str, password: str, seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:
            return

        def _challenge(self) -> None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="tfsf-image-test"')
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/v2":
                self.send_error(404)
                return
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                self._challenge()
                return
            user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            with seen.lock:
                seen.logins.append((user, user == username and secret == password))
            if (user, secret) != (username, password):
                self._challenge()
                return
            body = b"{}"
            self.send_response(200)
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def fake_registry(username: str, password: str) -> Iterator[tuple[str, Seen]]:
    """Serve on 127.0.0.1 (a port the kernel picks); yield ("127.0.0.1:PORT", Seen)."""
    seen = Seen()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(username, password, seen))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
