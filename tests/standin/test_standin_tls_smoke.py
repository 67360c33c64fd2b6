"""scripts/smoke_test.py (and tfs_fleet.client) over TLS and mutual TLS against the stand-in,
with a CA this test makes: the server's certificate is checked, and with client_verify the
stand-in refuses a client without a certificate signed by that CA."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from standin_helpers import REPO, StandinProcess

from helpers import free_ports

# Its fixture exports a model and starts a TLS stand-in: seconds per test.
pytestmark = pytest.mark.slow

SMOKE = REPO / "scripts" / "smoke_test.py"


def make_pki(directory: Path) -> None:
    """ca.pem/ca.key, server.pem/key (localhost, 127.0.0.1), client.pem/key, and a second CA
    (other-ca.pem) that signed nothing here."""

    def openssl(*args: str) -> None:
        subprocess.run(
            ["openssl", *args], check=True, capture_output=True, timeout=60, cwd=directory
        )

    for ca in ("ca", "other-ca"):
        subject = f"/CN=tfs-fleet {ca}"
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", subject,
                "-keyout", f"{ca}.key", "-out", f"{ca}.pem")  # fmt: skip
    for who, usage in (("server", "serverAuth"), ("client", "clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=tfs-fleet {who}",
                "-keyout", f"{who}.key", "-out", f"{who}.csr")  # fmt: skip
        (directory / f"{who}.ext").write_text(
            f"subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage={usage}\n"
        )
        openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "1", "-extfile", f"{who}.ext",
                "-out", f"{who}.pem")  # fmt: skip


class Served:
    def __init__(self, pki: Path, manifest: Path, grpc_port: int, rest_port: int) -> None:
        self.pki, self.manifest = pki, manifest
        self.grpc, self.rest = f"127.0.0.1:{grpc_port}", f"127.0.0.1:{rest_port}"

    def smoke(self, *flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SMOKE), "--manifest", str(self.manifest), "--grpc", self.grpc,
             "--rest", self.rest, "--wait", "3", "--timeout", "3", "--json", *flags],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def tls(self, *names: str) -> list[str]:
        flags = {"ca": "--tls-ca", "other-ca": "--tls-ca", "client": "--tls-cert"}
        out: list[str] = []
        for name in names:
            out += [flags[name], str(self.pki / f"{name}.pem")]
            if name == "client":
                out += ["--tls-key", str(self.pki / "client.key")]
        return out


@pytest.fixture(scope="module")
def mutual_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = Path(tmp_path_factory.mktemp("standin-tls"))
    pki = root / "pki"
    pki.mkdir()
    make_pki(pki)
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "export_model.py"), "--demo", "half_plus_two",
         "--export-base", str(root / "models")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    ssl = root / "ssl.config"
    ssl.write_text(
        "".join(
            f"{field}: {json.dumps((pki / name).read_text())}\n"
            for field, name in (("server_key", "server.key"), ("server_cert", "server.pem"),
                                ("custom_ca", "ca.pem"))
        )
        + "client_verify: true\n"
    )  # fmt: skip
    grpc_port, rest_port = free_ports(2)
    server = StandinProcess(
        [f"--port={grpc_port}", f"--rest_api_port={rest_port}", "--model_name=half_plus_two",
         f"--model_base_path={root / 'models' / 'half_plus_two'}", f"--ssl_config_file={ssl}"],
        root / "server.log", rest_port,
    )  # fmt: skip
    server.start("half_plus_two")
    yield Served(
        pki,
        root / "models" / "half_plus_two" / "1" / "tfs_fleet_manifest.json",
        grpc_port,
        rest_port,
    )
    assert server.stop() == 0, server.log()


def test_smoke_test_passes_over_mutual_tls(mutual_tls: Served) -> None:
    proc = mutual_tls.smoke(*mutual_tls.tls("ca", "client"), "--tls-server-name", "localhost")
    assert proc.returncode == 0, proc.stderr
    [host] = json.loads(proc.stdout)["hosts"]
    assert host["ok"] is True and host["version"] == 1


def test_the_certificate_name_is_checked(mutual_tls: Served) -> None:
    """Without --tls-server-name the client checks 127.0.0.1, which the certificate also
    names (IP SAN); a wrong name is refused."""
    assert mutual_tls.smoke(*mutual_tls.tls("ca", "client")).returncode == 0
    proc = mutual_tls.smoke(*mutual_tls.tls("ca", "client"), "--tls-server-name", "gpu9.example")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["hosts"][0]["failed_check"] == "status"


@pytest.mark.parametrize(
    "names",
    [
        (),  # plain gRPC against a TLS port
        ("ca",),  # TLS, but no client certificate: client_verify refuses
        ("other-ca", "client"),  # the server's certificate is not signed by the CA given
    ],
)
def test_refused_without_the_right_certificates(mutual_tls: Served, names: tuple[str, ...]) -> None:
    proc = mutual_tls.smoke(*mutual_tls.tls(*names))
    assert proc.returncode == 1, proc.stderr
    [host] = json.loads(proc.stdout)["hosts"]
    assert host["failed_check"] == "status" and host["ok"] is False


def test_tls_flag_errors_exit_2(mutual_tls: Served, tmp_path: Path) -> None:
    proc = mutual_tls.smoke("--tls-cert", str(mutual_tls.pki / "client.pem"))
    assert proc.returncode == 2 and "need --tls-ca" in proc.stderr
    proc = mutual_tls.smoke(*mutual_tls.tls("ca"), "--tls-cert", str(mutual_tls.pki / "client.pem"))
    assert proc.returncode == 2 and "both --tls-cert and --tls-key" in proc.stderr
    proc = mutual_tls.smoke("--tls-ca", str(tmp_path / "missing.pem"))
    assert proc.returncode == 2 and "missing.pem: no such file" in proc.stderr
