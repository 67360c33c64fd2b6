"""pytest configuration: make tests/helpers.py importable, and the project-local collection as
ansible_collections.tfs_fleet.common."""

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
if str(TESTS.parent / "collections") not in sys.path:
    sys.path.insert(0, str(TESTS.parent / "collections"))
