"""Model builders for ``export_model.py --checkpoint DIR --model-fn toolkit_models:<name>``."""

from __future__ import annotations

from typing import Any

import tensorflow as tf


class Linear(tf.Module):
    """y = a * x + b; the checkpoint decides a and b."""

    serving_input_spec = tf.TensorSpec([None, 1], tf.float32)

    def __init__(self) -> None:
        super().__init__(name="linear")
        self.a = tf.Variable(0.0, name="a")
        self.b = tf.Variable(0.0, name="b")

    def __call__(self, x: Any) -> Any:
        return self.a * x + self.b


class Noisy(Linear):
    """Non-deterministic on purpose: the reloaded model cannot match the in-memory one."""

    def __call__(self, x: Any) -> Any:
        return self.a * x + self.b + tf.random.uniform(tf.shape(x), 1.0, 2.0)


def linear() -> Linear:
    return Linear()


def noisy() -> Noisy:
    return Noisy()


def not_a_model() -> str:
    return "a string is not a model"


def broken() -> Linear:
    raise RuntimeError("builder failed on purpose")


def save_checkpoint(directory: str, a: float, b: float) -> str:
    """Write tf.train.Checkpoint(model=Linear) with the given weights; returns the prefix."""
    model = Linear()
    model.a.assign(a)
    model.b.assign(b)
    return str(tf.train.Checkpoint(model=model).save(f"{directory}/ckpt"))
