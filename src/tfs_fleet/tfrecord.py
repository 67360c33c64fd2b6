"""TFRecord files without TensorFlow: read (CRCs verified) and write.

Each record is framed as TensorFlow's ``io/record_writer.cc`` writes it::

    uint64  length            little-endian
    uint32  masked_crc32c(length bytes)
    byte    data[length]
    uint32  masked_crc32c(data)

``masked_crc32c(x) = ((crc >> 15) | (crc << 17)) + 0xa282ead8`` (mod 2**32), crc32c being the
Castagnoli CRC. The CRC is computed in pure Python: fine for warmup files (TF Serving reads at
most 1000 records), slow for big data sets.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO


class TFRecordError(ValueError):
    """A TFRecord file that cannot be read; the message names the file, record and offset."""


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()
_MASK_DELTA = 0xA282EAD8


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of data. ``crc32c(b"123456789") == 0xE3069283``."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _read_exact(handle: BinaryIO, size: int) -> bytes:
    data = handle.read(size)
    return data if data is not None else b""


def iter_records(path: Path, max_records: int | None = None) -> Iterator[bytes]:
    """Yield each record's data; TFRecordError on a short read, a bad CRC, or more than
    ``max_records`` records."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise TFRecordError(f"{path}: not readable: {exc}") from exc
    with handle:
        index = 0
        offset = 0
        while True:
            header = _read_exact(handle, 12)
            if not header:
                return
            where = f"{path}: record {index + 1} at byte {offset}"
            if len(header) < 12:
                raise TFRecordError(f"{where}: truncated header ({len(header)} of 12 bytes)")
            (length,) = struct.unpack("<Q", header[:8])
            (length_crc,) = struct.unpack("<I", header[8:])
            if masked_crc32c(header[:8]) != length_crc:
                raise TFRecordError(f"{where}: length CRC mismatch (corrupt or not a TFRecord)")
            if max_records is not None and index >= max_records:
                raise TFRecordError(f"{path}: more than {max_records} records")
            data = _read_exact(handle, length)
            if len(data) < length:
                raise TFRecordError(f"{where}: truncated data ({len(data)} of {length} bytes)")
            footer = _read_exact(handle, 4)
            if len(footer) < 4:
                raise TFRecordError(f"{where}: truncated data CRC ({len(footer)} of 4 bytes)")
            if masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                raise TFRecordError(f"{where}: data CRC mismatch (corrupt record)")
            yield data
            index += 1
            offset += 16 + length


def read_records(path: Path, max_records: int | None = None) -> list[bytes]:
    return list(iter_records(path, max_records))


def frame(data: bytes) -> bytes:
    """One record, framed."""
    length = struct.pack("<Q", len(data))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


def write_records(path: Path, records: Iterable[bytes]) -> int:
    """Write records as a TFRecord file (no compression); returns how many."""
    count = 0
    with path.open("wb") as out:
        for data in records:
            out.write(frame(data))
            count += 1
    return count
