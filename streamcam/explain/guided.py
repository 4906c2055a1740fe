"""A copy of a classifier whose ReLUs pass back only positive gradients (guided backpropagation).

Only the gradient changes: each replaced op computes its forward pass with the original
function (options such as negative_slope, threshold and max_value included), so the copy's
outputs equal the model's. Backwards, a unit passes dy where dy > 0 and the unit was in its
active (identity) region, low < x < high: x > threshold (0 by default) and x < max_value.
The negative-slope side of a leaky ReLU counts as inactive, like the zero side of a ReLU:
guided backprop keeps only signal that flowed forward through positively firing units.
"""

from __future__ import annotations

import math

from streamcam.backends import active, keras_module, ops
from streamcam.models.layers import all_layers


def _guided(forward, low: float = 0.0, high: float = math.inf):
    """forward(x) unchanged; gradient dy * (dy > 0) * (low < x < high)."""

    def backward(x, dy):
        passes = ops.logical_and(dy > 0, x > ops.cast(low, x.dtype))
        if high != math.inf:
            passes = ops.logical_and(passes, x < ops.cast(high, x.dtype))
        return ops.where(passes, dy, ops.zeros_like(dy))

    return active().with_gradient(forward, backward)


def _replacement(layer):
    """The guided op for a ReLU-like layer or activation, or None to leave it alone."""
    import keras

    activation = getattr(layer, "activation", None)
    kind = type(layer).__name__
    if activation in (keras.activations.relu, keras.activations.leaky_relu):
        return "activation", _guided(activation)
    if activation is keras.activations.relu6:
        return "activation", _guided(activation, high=6.0)
    if kind == "ReLU":
        high = math.inf if layer.max_value is None else float(layer.max_value)
        return "call", _guided(layer.call, low=float(layer.threshold), high=high)
    if kind == "LeakyReLU":
        return "call", _guided(layer.call)
    return None


def guided_model(model):
    """Clone `model` (same weights) with every ReLU flavour replaced by its guided version."""
    keras = keras_module()
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for layer in all_layers(clone):
        replacement = _replacement(layer)
        if replacement is None:
            continue
        attribute, op = replacement
        if attribute == "activation":
            layer.activation = op
        else:  # the layer's own call (bound before this) stays the forward pass
            object.__setattr__(layer, "call", lambda inputs, _op=op: _op(inputs))
    return clone
