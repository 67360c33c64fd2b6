"""tests/lb: the load balancer role's pieces against a real HAProxy (the distribution's package
on this machine) and the toolkit's in-process TF Serving stand-in, then the sandbox proof."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
for path in (TESTS, TESTS / "toolkit", TESTS.parent / "collections"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
