#!/usr/bin/env python3
"""Record which Debian packages the roles name exist in bookworm and trixie, and at which version
and component, from Debian's own Packages indexes (tests/data/debian_archive.json; read by
tests/test_os_vars.py, which checks the roles' package names against it without a network).

    scripts/debian_archive_snapshot.py [--mirror URL] [--indexes DIR] \
        > tests/data/debian_archive.json

--indexes DIR reads DIR/<suite>-<component> (uncompressed Packages files) instead of downloading
<mirror>/dists/<suite>/<component>/binary-amd64/Packages.xz. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

SUITES = ("bookworm", "trixie")
COMPONENTS = ("main", "contrib", "non-free", "non-free-firmware")
# Every package a role installs from the distribution on Debian (tests/test_os_vars.py checks
# that this list covers what the roles' vars and the driver plan name).
PACKAGES = (
    "docker.io", "docker-cli", "containerd", "runc", "python3-requests",
    "nvidia-driver", "nvidia-kernel-dkms", "nvidia-open-kernel-dkms", "nvidia-smi", "libcuda1",
    "nvidia-persistenced", "firmware-nvidia-gsp",
    "haproxy", "prometheus", "prometheus-node-exporter",
    "docker-registry", "python3-passlib", "python3-bcrypt",
    "rsync", "python3", "dkms",
)  # fmt: skip


def parse(text: str) -> dict[str, str]:
    """{package: version} of a Packages index (the highest version when listed twice)."""
    out: dict[str, str] = {}
    for stanza in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if "Package" in fields and "Version" in fields:
            out.setdefault(fields["Package"], fields["Version"])
    return out


def index(mirror: str, indexes: Path | None, suite: str, component: str) -> str:
    if indexes is not None:
        return (indexes / f"{suite}-{component}").read_text()
    url = f"{mirror}/dists/{suite}/{component}/binary-amd64/Packages.xz"
    with urllib.request.urlopen(url, timeout=120) as response:
        return lzma.decompress(response.read()).decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", default="http://deb.debian.org/debian")
    parser.add_argument("--indexes", type=Path)
    args = parser.parse_args()
    snapshot: dict[str, object] = {
        "source": f"{args.mirror}/dists/<suite>/<component>/binary-amd64/Packages.xz",
        "read": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
    for suite in SUITES:
        found: dict[str, dict[str, str]] = {}
        for component in COMPONENTS:
            versions = parse(index(args.mirror, args.indexes, suite, component))
            for name in PACKAGES:
                if name in versions and name not in found:
                    found[name] = {"version": versions[name], "component": component}
        snapshot[suite] = dict(sorted(found.items()))
    json.dump(snapshot, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
