#!/usr/bin/env python3
"""Thin wrapper around tfs_fleet.load_cli; run it with the venv python (--help: usage)."""

import sys
from pathlib import Path

# Use the tfs_fleet of the checkout this script belongs to, whether or not (or wherever) the
# package is installed in the running environment.
_SRC = Path(__file__).resolve().parents[1] / "src"
if (_SRC / "tfs_fleet" / "__init__.py").is_file():
    sys.path.insert(0, str(_SRC))

from tfs_fleet.load_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
