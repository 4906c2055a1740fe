"""Tiny Keras classifiers for exact tests (in the spirit of tf-keras-vis's mock models)."""

from __future__ import annotations

import numpy as np

from streamcam.labels import Labels
from streamcam.models import Classifier


def gap_dense_classifier(num_classes: int = 4, size: int = 16, channels: int = 6, seed: int = 0) -> Classifier:
    """conv -> relu -> (target) -> global average pool -> dense logits: Grad-CAM equals CAM here."""
    from streamcam._tf import tensorflow

    tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(channels, 3, padding="same", name="conv")(inputs)
    x = keras.layers.Activation("relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, outputs)
    return Classifier("tiny-gap", model, (size, size), lambda t: t / 127.5 - 1.0, ("features",), Labels(num_classes))


def nonlinear_head_classifier(num_classes: int = 3, size: int = 12, seed: int = 1) -> Classifier:
    """conv -> relu -> (target) -> conv -> relu -> flatten -> dense: a head that is not linear in A."""
    from streamcam._tf import tensorflow

    tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="features")(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="head_conv")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, outputs)
    return Classifier("tiny-nonlinear", model, (size, size), lambda t: t / 127.5 - 1.0, ("features",), Labels(num_classes))


def random_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
