"""Export the rollout scenarios' model versions in one process (one TensorFlow import).

    make_models.py EXPORT_BASE good:1 good:2 bad:3 big:5:32

good:N   the demo half_plus_two (y = 0.5x + 2) as version N
bad:N    y = 0.5x + 3 exported as half_plus_two version N; its manifest keeps the files' sha256
         (the sync verifies and publishes it) but carries the model's contract, the demo's golden
         sample, so the smoke test's golden Predict fails: a bad model that passes the transfer
         checks and must be stopped by the gate
big:N:MB the demo with an MB-sized file under assets/ (listed in the manifest), so that a
         throttled transfer takes long enough to be killed midway
slow:N   y = 0.5x + 2 like the demo (same answers, the smoke test passes) with a fixed amount of
         extra work per request: SLOW_ITERATIONS tanh(m @ w) steps on 128x128 float32 (w a
         variable, so nothing is folded away), added to the output at a scale that float32 rounds
         to nothing; deterministically slower, for the rollout's metric gate
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import tensorflow as tf

from tfs_fleet.export import ExportOptions, ModelSource, demo_source, export

MODEL = "half_plus_two"


class _HalfPlusThree(tf.Module):
    def __init__(self) -> None:
        super().__init__(name="half_plus_three")
        self.a = tf.Variable(0.5)
        self.b = tf.Variable(3.0)

    def __call__(self, x: Any) -> Any:
        return self.a * x + self.b


# 150 gave the canary 13.2 ms against 5.3 ms on CI's faster cores: under the gate's 10 ms
# minimum p99 difference. 500 keeps it far above both the factor and the difference.
SLOW_ITERATIONS = 500


class _SlowHalfPlusTwo(tf.Module):
    def __init__(self) -> None:
        super().__init__(name="slow_half_plus_two")
        self.a = tf.Variable(0.5)
        self.b = tf.Variable(2.0)
        self.w = tf.Variable(tf.random.stateless_uniform([128, 128], seed=[12, 7]) / 64.0)

    def __call__(self, x: Any) -> Any:
        def body(i: Any, m: Any) -> tuple[Any, Any]:
            return i + 1, tf.tanh(tf.matmul(m, self.w))

        _, m = tf.while_loop(
            lambda i, m: i < SLOW_ITERATIONS, body, [tf.constant(0), tf.ones([128, 128])]
        )
        return self.a * x + self.b + 1e-30 * tf.reduce_mean(m)


def _manifest(version_dir: Path) -> dict[str, Any]:
    return json.loads((version_dir / "tfs_fleet_manifest.json").read_text())


def _write_manifest(version_dir: Path, manifest: dict[str, Any]) -> None:
    (version_dir / "tfs_fleet_manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def _export(base: Path, source: ModelSource, version: int) -> Path:
    return export(source, ExportOptions(export_base=base, model_name=MODEL, version=version)).path


def good(base: Path, version: int) -> Path:
    return _export(base, demo_source(MODEL), version)


def bad(base: Path, version: int) -> Path:
    module = _HalfPlusThree()
    spec = tf.TensorSpec([None, 1], tf.float32)
    source = ModelSource(root=module, call=module.__call__, input_spec=spec, description="bad")
    path = _export(base, source, version)
    contract = _manifest(good(base / ".contract", version))
    manifest = _manifest(path)
    manifest["sample"] = contract["sample"]
    manifest["source"] = "bad on purpose: y = 0.5x + 3 against the half_plus_two contract"
    _write_manifest(path, manifest)
    return path


def big(base: Path, version: int, megabytes: int) -> Path:
    path = good(base, version)
    padding = path / "assets" / "padding.bin"
    padding.parent.mkdir(exist_ok=True)
    data = os.urandom(megabytes * 1024 * 1024)
    padding.write_bytes(data)
    manifest = _manifest(path)
    manifest["files"]["assets/padding.bin"] = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    _write_manifest(path, manifest)
    return path


def slow(base: Path, version: int) -> Path:
    module = _SlowHalfPlusTwo()
    spec = tf.TensorSpec([None, 1], tf.float32)
    source = ModelSource(root=module, call=module.__call__, input_spec=spec, description="slow")
    path = _export(base, source, version)
    manifest = _manifest(path)
    manifest["source"] = f"slow on purpose: y = 0.5x + 2 after {SLOW_ITERATIONS} 128x128 matmuls"
    _write_manifest(path, manifest)
    return path


def main(argv: list[str]) -> int:
    base = Path(argv[0])
    for spec in argv[1:]:
        kind, version, *rest = spec.split(":")
        if kind == "good":
            path = good(base, int(version))
        elif kind == "bad":
            path = bad(base, int(version))
        elif kind == "slow":
            path = slow(base, int(version))
        elif kind == "big":
            path = big(base, int(version), int(rest[0]))
        else:
            raise SystemExit(f"make_models.py: unknown kind {kind!r} in {spec!r}")
        print(path, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
