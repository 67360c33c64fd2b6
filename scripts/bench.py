#!/usr/bin/env python3
"""Thin wrapper around tfs_bench.cli (`make bench`); run it with the venv python (--help)."""

import sys
from pathlib import Path

# Use the packages of the checkout this script belongs to.
_SRC = Path(__file__).resolve().parents[1] / "src"
if (_SRC / "tfs_bench" / "__init__.py").is_file():
    sys.path.insert(0, str(_SRC))

from tfs_bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
