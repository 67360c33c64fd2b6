"""Constants and helpers shared by the toolkit tests (imported by name: no 'from conftest')."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("TFS_FLEET_SHARED", REPO / ".." / "shared")).resolve()
REFERENCE_MODEL = SHARED / "reference-models" / "saved_model_half_plus_two_cpu"
VENV_PYTHON = sys.executable

from tfs_fleet import export as ex  # noqa: E402


def quiet(_: str) -> None:
    """Progress sink for in-process exports."""


def export_demo(base: Path, name: str = "half_plus_two", **kw: object) -> ex.ExportResult:
    opts = ex.ExportOptions(export_base=base, model_name=name, **kw)  # type: ignore[arg-type]
    return ex.export(ex.demo_source("half_plus_two"), opts, progress=quiet)
