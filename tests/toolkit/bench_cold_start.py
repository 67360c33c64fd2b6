"""Measure the smoke test's cold start against a client that imports TensorFlow.

Not a test (pytest does not collect it). Run from the repository root:

    .venv/bin/python tests/toolkit/bench_cold_start.py [RUNS]

It exports half_plus_two to a temporary directory, serves it with the in-process stand-in, and
times fresh interpreters: (a) importing the smoke test's modules, (b) importing TensorFlow plus
tensorflow_serving's protos (what a client built on tf.make_tensor_proto pays), (c) a full
scripts/smoke_test.py run against the server, (d) the same run in an interpreter that imports
TensorFlow first. Prints the median and min of RUNS (default 5) per case.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(HERE), str(REPO / "src")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from toolkit_serving_server import Serving, load_model  # noqa: E402

from tfs_fleet import export as ex  # noqa: E402


def timed(cmd: list[str], runs: int) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        samples.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{cmd} failed: {proc.stderr[-2000:]}")
    return statistics.median(samples), min(samples)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory(prefix="tfsf-toolkit-bench-") as tmp:
        result = ex.export(
            ex.demo_source("half_plus_two"),
            ex.ExportOptions(export_base=Path(tmp), model_name="half_plus_two"),
            progress=lambda _: None,
        )
        server = Serving({"half_plus_two": load_model("half_plus_two", result.path.parent)})
        server.start()
        smoke = [
            str(REPO / "scripts" / "smoke_test.py"),
            "--manifest", str(result.manifest_path),
            "--grpc", server.grpc_target, "--rest", server.rest_target,
            "--repeat", "1",
        ]  # fmt: skip
        with_tf = (
            "import sys, runpy, tensorflow; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')"
        )
        py = sys.executable
        cases = {
            "import tfs_fleet.smoke_cli (no TF)": [py, "-c", "import tfs_fleet.smoke_cli"],
            "import tensorflow + serving protos": [
                py, "-c", "import tensorflow; from tensorflow_serving.apis import predict_pb2"
            ],
            "smoke_test.py run (no TF)": [py, *smoke],
            "smoke_test.py run, TF imported first": [py, "-c", with_tf, *smoke],
        }  # fmt: skip
        try:
            for name, cmd in cases.items():
                median, best = timed(cmd, runs)
                print(f"{name:40s} median {median:6.2f} s   min {best:6.2f} s   ({runs} runs)")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
