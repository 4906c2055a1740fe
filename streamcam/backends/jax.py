"""The JAX side of the engine: jax.vjp for the head's gradient, jax.jit for the compiled call.

TensorFlow is never imported here, so this path runs on a machine that has only JAX.
"""

from __future__ import annotations

import contextlib
import math
from functools import lru_cache, partial

from streamcam.core.errors import UsageError

from . import check_device, stderr_fd_silenced

NAME = "jax"


@lru_cache(maxsize=1)
def load():
    with stderr_fd_silenced():
        import jax

        jax.devices()  # the platform probe happens here
    return jax


def version() -> str:
    return load().__version__


def gpus() -> list:
    try:
        return load().devices("gpu")
    except RuntimeError:  # no GPU platform in this jaxlib or on this machine
        return []


def devices() -> list[str]:
    return [str(d) for d in load().devices()]


def device_scope(device: str):
    """jax.default_device for 'cpu' / 'gpu', or a no-op for 'auto' (JAX's default platform)."""
    check_device(device)
    jax = load()
    if device == "cpu":
        return jax.default_device(jax.devices("cpu")[0])
    if device == "gpu":
        found = gpus()
        if not found:
            raise UsageError("--device gpu was asked for, but JAX sees no GPU on this machine")
        return jax.default_device(found[0])
    return contextlib.nullcontext()


def uses_xla(requested: bool | None, on_gpu: bool) -> bool:
    """Always: jax.jit compiles with XLA on every platform (there is no other compiled path)."""
    return True


def compile(fn, model, xla: bool, static_argnums: tuple[int, ...] = ()):
    """jax.jit of fn (XLA always: that is how JAX runs), with the model's weights as arguments.

    A Keras layer read outside a StatelessScope would bake its weights into the compiled program
    as constants (550 MB of them for VGG16); mapping each variable to a traced argument keeps one
    copy and lets the same program serve new weights.
    """
    jax = load()
    import keras

    variables = list(model.variables)

    def stateless(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return fn(*args)

    jitted = jax.jit(stateless, static_argnums=tuple(i + 1 for i in static_argnums))
    return lambda *args: jitted([v.value for v in variables], *args)


def compile_for_shapes(fn, specs):
    """jax.jit of fn (reading no model weights); XLA needs static shapes, so it is traced again for
    each new shape and the specs go unused."""
    return load().jit(fn)


def head_gradients(forward, x, pick_targets, with_gradients: bool):
    """As backends.tensorflow.head_gradients, through one jax.vjp.

    JAX differentiates with respect to inputs, not intermediate values, so the head is opened
    at the target layer with an additive offset (zero): the gradient with respect to the offset
    is the gradient with respect to the features, and only the layers after the target take part
    in the backward pass. Each class's cotangent is a one-hot over the logits.
    """
    jax = load()
    jnp = jax.numpy
    spec = jax.eval_shape(lambda images: forward(images)[0], x)

    def from_offset(offset):
        features, logits, *pooled = forward(x, offset)
        return logits.astype(jnp.float32), (features, pooled[0] if pooled else None)

    logits, pullback, (features, pooled) = jax.vjp(from_offset, jnp.zeros(spec.shape, spec.dtype), has_aux=True)
    targets = pick_targets(logits)
    grads = []
    if with_gradients:
        one_hot = jax.nn.one_hot(targets, logits.shape[-1], dtype=logits.dtype)  # (N, K, classes)
        grads = [pullback(one_hot[:, k])[0].astype(jnp.float32) for k in range(targets.shape[1])]
    return features.astype(jnp.float32), logits, targets, grads, pooled


def input_gradients(fn, x, class_ids):
    """d fn(x)[n, class_ids[n, k]] / dx for each k: (N, K, *x.shape[1:])."""
    jax = load()
    outputs, pullback = jax.vjp(fn, x)
    one_hot = jax.nn.one_hot(class_ids, outputs.shape[-1], dtype=outputs.dtype)
    return jax.numpy.stack([pullback(one_hot[:, k])[0] for k in range(class_ids.shape[1])], axis=1)


def with_gradient(forward, backward):
    """An op computing forward(x) whose gradient is backward(x, dy) instead of forward's own."""
    jax = load()

    @jax.custom_vjp
    def op(x):
        return forward(x)

    op.defvjp(lambda x: (forward(x), x), lambda x, dy: (backward(x, dy),))
    return op


def prepare(layers, on_gpu: bool) -> None:
    """Run the model's depthwise convolutions as shifted multiply-adds when it runs on the CPU.

    XLA's CPU backend lowers a grouped convolution to a slow generic loop: a 3x3 depthwise
    layer on (8, 112, 112, 96) took 466 ms there, against 42 ms as nine shifted multiply-adds
    (TensorFlow's own kernel: 41 ms), and EfficientNet-Lite0 ran 7x slower than on TensorFlow.
    The layers keep their weights; only how their output is computed changes (same values to
    float rounding). GPUs have fast grouped convolutions and are left alone.
    """
    if on_gpu:
        return
    for layer in layers:
        if type(layer).__name__ == "DepthwiseConv2D" and layer.data_format == "channels_last":
            object.__setattr__(layer, "call", partial(_depthwise_call, layer))


def _depthwise_call(layer, inputs):
    """keras.layers.DepthwiseConv2D's call, with the convolution done by _shifted_depthwise."""
    outputs = _shifted_depthwise(inputs, layer.kernel, layer.strides, layer.padding, layer.dilation_rate)
    if layer.use_bias:
        outputs = outputs + layer.bias
    return outputs if layer.activation is None else layer.activation(outputs)


def _shifted_depthwise(x, kernel, strides, padding: str, dilation):
    """Depthwise convolution (N, H, W, C) * (kh, kw, C, M) -> (N, H', W', C * M), as a sum of
    kh * kw strided slices of the (padded) input, each times one tap of the kernel."""
    jnp = load().numpy
    kh, kw, channels, multiplier = kernel.shape
    if multiplier != 1:  # output channel c * M + m is input channel c times kernel[..., c, m]
        x = jnp.repeat(x, multiplier, axis=-1)
    kernel = jnp.reshape(kernel, (kh, kw, channels * multiplier)).astype(x.dtype)
    (sh, sw), (dh, dw) = strides, dilation
    pads, out_size = [], []
    for size, k, s, d in ((x.shape[1], kh, sh, dh), (x.shape[2], kw, sw, dw)):
        span = (k - 1) * d + 1
        if padding == "same":
            out = math.ceil(size / s)
            total = max((out - 1) * s + span - size, 0)
            pads.append((total // 2, total - total // 2))
        else:
            out = (size - span) // s + 1
            pads.append((0, 0))
        out_size.append(out)
    x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    (oh, ow) = out_size
    total = None
    for i in range(kh):
        for j in range(kw):
            window = x[:, i * dh : i * dh + (oh - 1) * sh + 1 : sh, j * dw : j * dw + (ow - 1) * sw + 1 : sw, :]
            term = window * kernel[i, j]
            total = term if total is None else total + term
    return total
