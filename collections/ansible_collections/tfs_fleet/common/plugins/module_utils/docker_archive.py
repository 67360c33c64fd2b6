# Copyright: tfs-fleet contributors
# Apache-2.0
"""Read a ``docker save`` tarball without a Docker engine: which image it holds and its ID.

Both layouts that ``docker save`` writes are understood: the classic one (Docker up to 24,
``manifest.json`` pointing at ``<hex>.json``) and the OCI one (Docker 25 and later,
``manifest.json`` pointing at ``blobs/sha256/<hex>``). The archive may be gzip-, bzip2- or
xz-compressed (``docker save | gzip``); ``docker load`` accepts all of them.

The image ID is the sha256 of the image's config blob, which is what ``docker image inspect``
reports as ``Id`` on an engine that stores images the classic way (the containerd image store
reports the manifest digest instead; see docs/image.md).

Pure Python without Ansible imports, so that it is unit-testable.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from typing import Any

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class DockerArchiveError(ValueError):
    """The file is not a docker save tarball, or does not hold the image asked for."""


def _read_member(archive: tarfile.TarFile, path: str, name: str) -> bytes:
    try:
        member = archive.getmember(name)
    except KeyError as exc:
        raise DockerArchiveError(
            f"{path}: '{name}' is missing: not a complete 'docker save' tarball"
        ) from exc
    handle = archive.extractfile(member)
    if handle is None:
        raise DockerArchiveError(f"{path}: '{name}' is not a regular file")
    return handle.read()


def _load_manifest(path: str, raw: bytes) -> list[dict[str, Any]]:
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise DockerArchiveError(f"{path}: manifest.json is not valid JSON ({exc})") from exc
    if not isinstance(manifest, list) or not manifest:
        raise DockerArchiveError(f"{path}: manifest.json lists no image")
    for entry in manifest:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise DockerArchiveError(f"{path}: a manifest.json entry has no 'Config' path")
    return manifest


def _select(path: str, manifest: list[dict[str, Any]], reference: str) -> dict[str, Any]:
    if reference:
        wanted = normalize_reference(reference)
        for entry in manifest:
            tags = [normalize_reference(t) for t in entry.get("RepoTags") or []]
            if wanted in tags:
                return entry
        found = [t for e in manifest for t in e.get("RepoTags") or []] or ["no tag at all"]
        raise DockerArchiveError(
            f"{path} does not hold {reference} (it holds: {', '.join(found)}); set "
            "tfserving_image_archive_ref to one of those, or save the right image: "
            f"docker save -o {path} {reference}"
        )
    if len(manifest) > 1:
        found = [t for e in manifest for t in e.get("RepoTags") or []]
        raise DockerArchiveError(
            f"{path} holds {len(manifest)} images ({', '.join(found)}): set "
            "tfserving_image_archive_ref to the one the hosts should run"
        )
    return manifest[0]


def normalize_reference(reference: str) -> str:
    """'probe' -> 'probe:latest'; 'docker.io/library/x:1' -> 'x:1' (as docker save tags it)."""
    ref = reference.strip()
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
            break
    last = ref.rsplit("/", 1)[-1]
    if "@" not in ref and ":" not in last:
        ref = f"{ref}:latest"
    return ref


def read_archive(path: str, reference: str = "") -> dict[str, Any]:
    """Describe the image in a docker save tarball.

    Returns ``image_id`` ('sha256:<hex>'), ``repo_tags`` (of the selected image),
    ``reference`` (the tag to run: the one asked for, or the image's first tag), ``layers``
    (count) and ``path``.
    """
    try:
        with tarfile.open(path, mode="r:*") as archive:
            manifest = _load_manifest(path, _read_member(archive, path, "manifest.json"))
            entry = _select(path, manifest, reference)
            config_name: str = entry["Config"]
            config = _read_member(archive, path, config_name)
    except FileNotFoundError as exc:
        raise DockerArchiveError(
            f"{path} does not exist on the controller: create it with "
            "'docker save -o <file> <image>' or fix tfserving_image_archive_path"
        ) from exc
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DockerArchiveError(
            f"{path} cannot be read as a tar archive ({exc}): create it with "
            "'docker save -o <file> <image>'"
        ) from exc
    digest = hashlib.sha256(config).hexdigest()
    named = config_name.rsplit("/", 1)[-1].removesuffix(".json")
    if _HEX64.match(named) and named != digest:
        raise DockerArchiveError(
            f"{path}: config blob {config_name} has sha256 {digest}: the archive is corrupt"
        )
    tags = list(entry.get("RepoTags") or [])
    if not reference and not tags:
        raise DockerArchiveError(
            f"{path} holds an untagged image: save it by name (docker save -o <file> "
            "<repository>:<tag>) so that the hosts can run it by that name"
        )
    return {
        "path": path,
        "image_id": f"sha256:{digest}",
        "repo_tags": tags,
        "reference": reference.strip() if reference else tags[0],
        "layers": len(entry.get("Layers") or []),
    }
