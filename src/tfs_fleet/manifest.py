"""The per-version export manifest (JSON), read by the smoke test without TensorFlow."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tfs_fleet.tensors import TensorCodecError, array_from_doc

MANIFEST_NAME = "tfs_fleet_manifest.json"
MANIFEST_FORMAT = 1


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and the problem."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def iter_files(root: Path) -> Iterator[Path]:
    """Every regular file below root, sorted, manifest excluded."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.relative_to(root).as_posix() != MANIFEST_NAME:
            yield path


def file_checksums(root: Path) -> dict[str, dict[str, Any]]:
    """The manifest's files table. Read back, on the host or in tests, by the one check:
    the collection's module_utils/model_manifest.py (model_version_publish)."""
    return {
        p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "size": p.stat().st_size}
        for p in iter_files(root)
    }


@dataclass(frozen=True)
class GoldenSample:
    """The sample request and expected answer recorded at export time."""

    signature: str
    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    rtol: float
    atol: float


@dataclass(frozen=True)
class Manifest:
    path: Path
    doc: dict[str, Any]

    @property
    def model_name(self) -> str:
        return str(self.doc["model_name"])

    @property
    def version(self) -> int:
        return int(self.doc["version"])

    @property
    def signatures(self) -> dict[str, Any]:
        signatures = self.doc["signatures"]
        if not isinstance(signatures, dict):
            raise ManifestError(f"{self.path}: 'signatures' must be an object")
        return dict(signatures)

    def golden(self) -> GoldenSample:
        sample = self.doc["sample"]
        try:
            return GoldenSample(
                signature=str(sample["signature"]),
                inputs={k: array_from_doc(v) for k, v in sample["inputs"].items()},
                expected={k: array_from_doc(v) for k, v in sample["expected_outputs"].items()},
                rtol=float(sample.get("rtol", 1e-5)),
                atol=float(sample.get("atol", 1e-6)),
            )
        except (KeyError, TypeError, AttributeError, ValueError, TensorCodecError) as exc:
            raise ManifestError(f"{self.path}: bad 'sample' section: {exc}") from exc


_REQUIRED = ("format", "model_name", "version", "signatures", "sample")


def load_manifest(path: Path) -> Manifest:
    """Read and check a manifest; raises ManifestError naming the file."""
    if not path.is_file():
        raise ManifestError(
            f"--manifest {path}: no such file (export_model.py writes it as "
            f"<export base>/<model>/<version>/{MANIFEST_NAME})"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"--manifest {path}: not readable JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ManifestError(f"--manifest {path}: top level must be a JSON object")
    missing = [k for k in _REQUIRED if k not in doc]
    if missing:
        raise ManifestError(f"--manifest {path}: missing keys {missing}")
    if doc["format"] != MANIFEST_FORMAT:
        raise ManifestError(
            f"--manifest {path}: format {doc['format']!r}, this toolkit reads {MANIFEST_FORMAT}"
        )
    manifest = Manifest(path, doc)
    manifest.golden()  # fail early on a broken sample section
    _ = manifest.signatures
    return manifest
