"""Session fixtures of the toolkit tests (scoped to tests/toolkit only).

TensorFlow is imported once per session (~3 s); exports and the in-process TF Serving stand-in
are shared at session scope so that the whole stage stays well under a minute of TF work.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import toolkit_models
from toolkit_helpers import REFERENCE_MODEL, export_demo, quiet
from toolkit_serving_server import Serving, load_model

from tfs_fleet import export as ex


@pytest.fixture(scope="session")
def reference_model() -> Path:
    if not (REFERENCE_MODEL / "00000123" / "saved_model.pb").is_file():
        pytest.fail(
            f"TF Serving's reference model is missing at {REFERENCE_MODEL}; set TFS_FLEET_SHARED "
            "to the directory holding reference-models/ (CI keeps shared/ beside the clone)"
        )
    return REFERENCE_MODEL


@pytest.fixture(scope="session")
def good_export(tmp_path_factory: pytest.TempPathFactory) -> ex.ExportResult:
    """half_plus_two version 1 with both signatures and warmup records."""
    base = tmp_path_factory.mktemp("tfsf-toolkit-good")
    return export_demo(base, example_signature="tf_example", warmup_records=5)


@pytest.fixture(scope="session")
def wrong_export(tmp_path_factory: pytest.TempPathFactory) -> ex.ExportResult:
    """A different model (y = 0.5x + 3) under the same name, exported from a checkpoint."""
    base = tmp_path_factory.mktemp("tfsf-toolkit-wrong")
    ckpt = tmp_path_factory.mktemp("tfsf-toolkit-ckpt")
    toolkit_models.save_checkpoint(str(ckpt), a=0.5, b=3.0)
    source = ex.checkpoint_source(ckpt, "toolkit_models:linear")
    opts = ex.ExportOptions(export_base=base, model_name="half_plus_two")
    return ex.export(source, opts, progress=quiet)


@pytest.fixture(scope="session")
def serving(good_export: ex.ExportResult, reference_model: Path) -> Iterator[Serving]:
    """Serves the exported half_plus_two (typed-field answers, like TF Serving's default) and
    the reference model as 'reference'."""
    model = load_model("half_plus_two", good_export.path.parent)
    model.labels["stable"] = good_export.version
    server = Serving(
        {"half_plus_two": model, "reference": load_model("reference", reference_model)}
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def serving_tensor_content(good_export: ex.ExportResult) -> Iterator[Serving]:
    """Like ``serving`` but answers in tensor_content."""
    model = load_model("half_plus_two", good_export.path.parent)
    server = Serving({"half_plus_two": model}, tensor_content=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def wrong_serving(wrong_export: ex.ExportResult) -> Iterator[Serving]:
    server = Serving({"half_plus_two": load_model("half_plus_two", wrong_export.path.parent)})
    yield server.start()
    server.stop()
