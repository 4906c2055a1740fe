"""A copy of a classifier whose ReLUs pass back only positive gradients (guided backpropagation)."""

from __future__ import annotations

from ._tf import tensorflow


def _guided_relu(max_value: float | None):
    tf = tensorflow()

    @tf.custom_gradient
    def guided(x):
        y = tf.nn.relu(x) if max_value is None else tf.clip_by_value(x, 0.0, max_value)

        def grad(dy):
            passes = tf.cast(x > 0, dy.dtype) * tf.cast(dy > 0, dy.dtype)
            if max_value is not None:
                passes *= tf.cast(x < max_value, dy.dtype)
            return dy * passes

        return y, grad

    return guided


def guided_model(model):
    """Clone `model` (same weights) with every ReLU / ReLU6 replaced by its guided version."""
    tensorflow()
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    relu, relu6 = keras.activations.relu, keras.activations.relu6
    for layer in _all_layers(clone):
        activation = getattr(layer, "activation", None)
        if activation is relu:
            layer.activation = _guided_relu(None)
        elif activation is relu6:
            layer.activation = _guided_relu(6.0)
        elif type(layer).__name__ == "ReLU":
            fn = _guided_relu(None if layer.max_value is None else float(layer.max_value))
            object.__setattr__(layer, "call", lambda inputs, _fn=fn: _fn(inputs))
    return clone


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
