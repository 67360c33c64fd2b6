# Copyright: tfs-fleet contributors
# Apache-2.0
"""Fingerprints of the OpenPGP keys in a key file (ASCII-armored or binary), computed as
RFC 4880 section 12.2 (v4: SHA-1 over 0x99, a two-octet length and the key packet's body)
and RFC 9580 section 5.5.4 (v6: SHA-256 over 0x9b and a four-octet length; v5 alike with
0x9a). Pure Python: the roles check a downloaded signing key against a pinned fingerprint
before apt or dnf trusts it."""

from __future__ import annotations

import base64
import binascii
import hashlib

_KEY_TAGS = (6, 14)  # public key, public subkey


class PgpKeyError(ValueError):
    """Raised when the data is not an OpenPGP key file."""


def _dearmor(data: bytes) -> bytes:
    text = data.decode("ascii", errors="strict")
    lines = text.strip().splitlines()
    try:
        start = next(
            i for i, line in enumerate(lines) if line.startswith("-----BEGIN PGP PUBLIC KEY BLOCK")
        )
        end = next(
            i for i, line in enumerate(lines) if line.startswith("-----END PGP PUBLIC KEY BLOCK")
        )
    except StopIteration as exc:
        raise PgpKeyError("no PGP PUBLIC KEY BLOCK armor") from exc
    body = lines[start + 1 : end]
    if "" in body:  # armor headers end at the first blank line
        body = body[body.index("") + 1 :]
    body = [line for line in body if not line.startswith("=")]
    try:
        return base64.b64decode("".join(body), validate=True)
    except binascii.Error as exc:
        raise PgpKeyError(f"bad base64 in the armor: {exc}") from exc


def _packets(data: bytes) -> list[tuple[int, bytes]]:
    packets = []
    pos = 0
    while pos < len(data):
        head = data[pos]
        if not head & 0x80:
            raise PgpKeyError(f"not an OpenPGP packet at offset {pos}")
        if head & 0x40:  # new format
            tag = head & 0x3F
            first = data[pos + 1]
            if first < 192:
                length, pos = first, pos + 2
            elif first < 224:
                length, pos = ((first - 192) << 8) + data[pos + 2] + 192, pos + 3
            elif first == 255:
                length, pos = int.from_bytes(data[pos + 2 : pos + 6], "big"), pos + 6
            else:
                raise PgpKeyError("partial body lengths do not occur in key files")
        else:  # old format
            tag = (head >> 2) & 0x0F
            size = {0: 1, 1: 2, 2: 4}.get(head & 0x03)
            if size is None:
                raise PgpKeyError("indeterminate packet length")
            length = int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
            pos += 1 + size
        if pos + length > len(data):
            raise PgpKeyError("truncated packet")
        packets.append((tag, data[pos : pos + length]))
        pos += length
    return packets


def fingerprints(content: str | bytes, encoded: bool = True) -> list[str]:
    """Upper-case hex fingerprints of every primary key and subkey in a key file.

    ``content`` is the file base64-encoded (what ansible.builtin.slurp returns) unless
    ``encoded`` is false (then the file's own bytes or text)."""
    raw = content.encode() if isinstance(content, str) else content
    if encoded:
        try:
            raw = base64.b64decode(raw, validate=False)
        except binascii.Error as exc:
            raise PgpKeyError(f"content is not base64: {exc}") from exc
    data = _dearmor(raw) if raw.lstrip().startswith(b"-----BEGIN") else raw
    found = []
    for tag, body in _packets(data):
        if tag not in _KEY_TAGS or not body:
            continue
        version = body[0]
        if version == 4:
            digest = hashlib.sha1(
                b"\x99" + len(body).to_bytes(2, "big") + body, usedforsecurity=False
            )
        elif version in (5, 6):
            prefix = b"\x9a" if version == 5 else b"\x9b"
            digest = hashlib.sha256(prefix + len(body).to_bytes(4, "big") + body)
        else:
            continue
        found.append(digest.hexdigest().upper())
    if not found:
        raise PgpKeyError("no v4/v5/v6 public key in the file")
    return found


def normalize(fingerprint: str) -> str:
    return "".join(fingerprint.split()).upper().removeprefix("0X")
