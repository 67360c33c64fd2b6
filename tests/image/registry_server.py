"""The real registry for the image role's tests: Debian's `docker-registry` (the CNCF
distribution registry, the program private registries and mirrors run) on the controller's
loopback, with a temporary configuration, htpasswd users (bcrypt, made by `htpasswd -B`) and
optionally TLS from a test CA made here with `cryptography`. Its log says which user each
request authenticated as (`auth.user.name`) and each refused login (`authentication failure`).

The programs come from Debian's docker-registry, apache2-utils and skopeo packages
(scripts/ensure_controller_tools.sh installs them); a missing one fails the test, naming it.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def require_program(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AssertionError(
            f"{name} is missing on the controller: run `make controller-tools` "
            f"(apt-get install {package})"
        )
    return path


@dataclass
class TestCA:
    """A CA, and a server certificate it signed for 127.0.0.1 and localhost (PEM)."""

    ca_pem: str
    cert_pem: str
    key_pem: str


def make_ca(name: str = "tfs-fleet pytest CA") -> TestCA:
    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return TestCA(
        ca_pem=ca.public_bytes(pem).decode(),
        cert_pem=cert.public_bytes(pem).decode(),
        key_pem=key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Registry:
    address: str  # 127.0.0.1:<port>
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    tls: TestCA | None = None
    users: dict[str, str] = field(default_factory=dict)

    @property
    def log(self) -> str:
        return (self.directory / "registry.log").read_text(errors="replace")

    def entries(self) -> list[dict[str, str]]:
        """The registry's log lines (logfmt) as dicts, quotes removed."""
        found = []
        for line in self.log.splitlines():
            pairs = re.findall(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S+)', line)
            found.append({key: value.strip('"') for key, value in pairs})
        return found

    def authorized(self, agent: str) -> list[dict[str, str]]:
        """The requests the registry authorized whose user agent starts with ``agent``, each
        with the fields of every line logged for it (the user is on the later ones)."""
        fields: dict[str, dict[str, str]] = {}
        for entry in self.entries():
            if "http.request.id" in entry:
                fields.setdefault(entry["http.request.id"], {}).update(entry)
        return [
            fields[entry["http.request.id"]]
            for entry in self.entries()
            if entry.get("msg") == "authorized request"
            and entry.get("http.request.useragent", "").startswith(agent)
        ]

    def refused_users(self) -> list[str]:
        return re.findall(r'error authenticating user \\"([^"\\]+)\\"', self.log)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def push(self, image: str, repository: str, tag: str) -> str:
        """Copy a local engine image into the registry with skopeo; return its manifest digest."""
        skopeo = require_program("skopeo", "skopeo")
        digest_file = self.directory / "pushed.digest"
        user, password = next(iter(self.users.items()))
        tls = (
            ["--dest-cert-dir", str(self.directory / "certs")]
            if self.tls
            else ["--dest-tls-verify=false"]
        )
        subprocess.run(
            [skopeo, "copy", "--quiet", "--digestfile", str(digest_file), *tls,
             "--dest-creds", f"{user}:{password}",
             f"docker-daemon:{image}", f"docker://{self.address}/{repository}:{tag}"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        return digest_file.read_text().strip()


@contextmanager
def real_registry(
    directory: Path, users: dict[str, str], tls: TestCA | None = None
) -> Iterator[Registry]:
    """Run docker-registry on 127.0.0.1:<free port> (TLS when ``tls``); stop it afterwards."""
    binary = require_program("docker-registry", "docker-registry")
    htpasswd = require_program("htpasswd", "apache2-utils")
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for user, password in users.items():
        made = subprocess.run(
            [htpasswd, "-niB", "-C", "5", user],
            input=password, capture_output=True, text=True, check=True,
        )  # fmt: skip
        lines.append(made.stdout.strip())
    (directory / "htpasswd").write_text("\n".join(lines) + "\n")
    port = free_port()
    registry = Registry(address=f"127.0.0.1:{port}", directory=directory, tls=tls, users=users)
    tls_config = ""
    if tls:
        certs = directory / "certs"
        certs.mkdir(exist_ok=True)
        (certs / "ca.crt").write_text(tls.ca_pem)  # skopeo's --dest-cert-dir
        (directory / "tls.crt").write_text(tls.cert_pem)
        (directory / "tls.key").write_text(tls.key_pem)
        tls_config = f"  tls:\n    certificate: {directory}/tls.crt\n    key: {directory}/tls.key\n"
    (directory / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: info\n"
        f"storage:\n  filesystem:\n    rootdirectory: {directory}/data\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{tls_config}"
        f"auth:\n  htpasswd:\n    realm: tfsf-pytest\n    path: {directory}/htpasswd\n"
    )
    with (directory / "registry.log").open("wb") as log:
        registry.process = subprocess.Popen(
            [binary, "serve", str(directory / "config.yml")], stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 15
        while "listening on" not in registry.log:
            if registry.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"docker-registry did not start:\n{registry.log[-2000:]}")
            time.sleep(0.1)
        yield registry
    finally:
        registry.stop()
