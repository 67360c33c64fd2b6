#!/usr/bin/env python3
"""Thin wrapper around tfs_fleet.prom_targets: `up` of every target, a table (--help: usage)."""

import sys
from pathlib import Path

_SRC = Path(__file__).resolve().parents[1] / "src"
if (_SRC / "tfs_fleet" / "__init__.py").is_file():
    sys.path.insert(0, str(_SRC))

from tfs_fleet.prom_targets import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
