"""pgp_keys.fingerprints against gpg's own answer for a throwaway key (armored and binary),
and Debian's archive keyring (several keys); bad input is refused with a reason."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest
from ansible_collections.tfs_fleet.common.plugins.module_utils import pgp_keys


def _gpg(home: Path, *args: str) -> str:
    env = {**os.environ, "GNUPGHOME": str(home)}
    return subprocess.run(
        ["gpg", "--batch", "--quiet", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout


def _gpg_fingerprints(home: Path, path: Path) -> list[str]:
    out = _gpg(home, "--with-colons", "--show-keys", str(path))
    return [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")]


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    batch = ["--pinentry-mode", "loopback", "--passphrase", ""]
    _gpg(
        home,
        *batch,
        "--quick-gen-key",
        "tfs-fleet <test@tfs-fleet.invalid>",
        "rsa2048",
        "sign",
        "never",
    )
    primary = _gpg(home, "--with-colons", "--list-keys").split("fpr:::::::::")[1].split(":")[0]
    _gpg(home, *batch, "--quick-add-key", primary, "rsa2048", "encr", "never")
    armored = home / "key.asc"
    armored.write_text(_gpg(home, "--armor", "--export"))
    binary = home / "key.gpg"
    env = {**os.environ, "GNUPGHOME": str(home)}
    binary.write_bytes(
        subprocess.run(
            ["gpg", "--batch", "--export"], env=env, capture_output=True, check=True
        ).stdout
    )
    return home, armored, binary


def test_armored_key_matches_gpg(key: tuple[Path, Path, Path]) -> None:
    home, armored, _ = key
    expected = _gpg_fingerprints(home, armored)
    assert len(expected) == 2  # primary key and its subkey
    assert pgp_keys.fingerprints(base64.b64encode(armored.read_bytes()).decode()) == expected


def test_binary_key_matches_gpg(key: tuple[Path, Path, Path]) -> None:
    home, _, binary = key
    assert pgp_keys.fingerprints(binary.read_bytes(), encoded=False) == _gpg_fingerprints(
        home, binary
    )


def test_debian_archive_keyring(key: tuple[Path, Path, Path]) -> None:
    keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
    if not keyring.exists():
        pytest.fail("this test reads Debian's archive keyring; install debian-archive-keyring")
    expected = _gpg_fingerprints(key[0], keyring)
    assert len(expected) > 3
    assert pgp_keys.fingerprints(keyring.read_bytes(), encoded=False) == expected


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n",
            "bad base64",
        ),
        (b"<html>not found</html>", "not an OpenPGP packet"),
        (b"-----BEGIN PGP SIGNATURE-----\n", "no PGP PUBLIC KEY BLOCK"),
    ],
)
def test_bad_key_files_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(pgp_keys.PgpKeyError, match=reason):
        pgp_keys.fingerprints(data, encoded=False)


def test_normalize() -> None:
    assert pgp_keys.normalize("9dc8 5822 9fc7 dd38 854a  e2d8 8d81 803c 0ebf cd88") == (
        "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
    )
