"""The TensorFlow side of the engine: tf.GradientTape for the head's gradient, tf.function for
the compiled call (XLA where asked: on GPUs; on CPUs it measured slower than plain graphs)."""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache

from streamcam.core.errors import UsageError

from . import check_device, stderr_fd_silenced

NAME = "tensorflow"


@lru_cache(maxsize=1)
def load():
    """Import TensorFlow once (quietly) and return the module."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with stderr_fd_silenced():
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        tf.config.list_physical_devices("GPU")  # the CUDA probe happens here
    return tf


def version() -> str:
    return load().__version__


def gpus() -> list:
    return load().config.list_physical_devices("GPU")


def devices() -> list[str]:
    return [d.name for d in load().config.list_physical_devices()]


def device_scope(device: str):
    """tf.device for 'cpu' / 'gpu', or a no-op for 'auto' (TensorFlow's own placement)."""
    check_device(device)
    tf = load()
    if device == "cpu":
        return tf.device("/CPU:0")
    if device == "gpu":
        if not gpus():
            raise UsageError("--device gpu was asked for, but TensorFlow sees no GPU on this machine")
        return tf.device("/GPU:0")
    return contextlib.nullcontext()


def uses_xla(requested: bool | None, on_gpu: bool) -> bool:
    """XLA where asked; by default on GPUs only (on CPUs it measured slower than plain graphs)."""
    return on_gpu if requested is None else requested


def prepare(layers, on_gpu: bool) -> None:
    """Nothing to adapt: TensorFlow's CPU and GPU kernels serve the model as it is."""


def compile(fn, model, xla: bool, static_argnums: tuple[int, ...] = ()):
    """fn traced once per input shape and static value; tf.function treats Python ints as static
    already and reads the model's variables by reference, so neither needs passing."""
    return load().function(fn, jit_compile=xla)


def compile_for_shapes(fn, specs):
    """fn (reading no model weights) traced once, for arguments of the given (shape, dtype) specs,
    None in a shape for any size; returns a callable on arrays.

    One trace serves every batch and input size, and calling the traced graph directly skips the
    matching of each call's arguments to traces that tf.function does: 0.3-0.6 ms of a 1-2 ms maps
    call for 8 frames at 224x224 (timed per call on a 2-core AMD EPYC)."""
    tf = load()
    traced = tf.function(fn, input_signature=[tf.TensorSpec(shape, dtype) for shape, dtype in specs]).get_concrete_function()
    return lambda *args: traced(*(tf.convert_to_tensor(a) for a in args))


def head_gradients(forward, x, pick_targets, with_gradients: bool):
    """Run forward(x) -> (features, logits[, pooled]) once and differentiate only the head.

    pick_targets(logits) -> (N, K) class ids. Returns features, float32 logits, targets, K
    gradients d(sum_n logit[n, targets[n, k]]) / d features (images are independent, so each
    image's share is its own gradient), and the pooled map or None.
    """
    tf = load()
    with tf.GradientTape(persistent=True) as tape:
        features, logits, *pooled = forward(x)
        logits = tf.cast(logits, tf.float32)
        targets = pick_targets(logits)
        scores = tf.gather(logits, targets, batch_dims=1)  # (N, K)
        per_class = [tf.reduce_sum(scores[:, k]) for k in range(scores.shape[1])] if with_gradients else []
    grads = [tf.cast(tape.gradient(s, features), tf.float32) for s in per_class]
    del tape
    return tf.cast(features, tf.float32), logits, targets, grads, (pooled[0] if pooled else None)


def input_gradients(fn, x, class_ids):
    """d fn(x)[n, class_ids[n, k]] / dx for each k: (N, K, *x.shape[1:])."""
    tf = load()
    grads = []
    for k in range(class_ids.shape[1]):
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.reduce_sum(tf.gather(fn(x), class_ids[:, k], batch_dims=1))
        grads.append(tape.gradient(score, x))
    return tf.stack(grads, axis=1)


def with_gradient(forward, backward):
    """An op computing forward(x) whose gradient is backward(x, dy) instead of forward's own."""
    tf = load()

    @tf.custom_gradient
    def op(x):
        return forward(x), lambda dy: backward(x, dy)

    return op
