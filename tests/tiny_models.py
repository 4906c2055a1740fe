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


def steady_and_varied_classifier(num_classes: int = 4, size: int = 8, channels: int = 16, seed: int = 2) -> Classifier:
    """1x1 conv -> relu -> (target) -> GAP -> dense, with channels chosen so mean and variance disagree.

    The first half of the channels are "steady": a large bias and a tiny kernel, so they have the
    highest mean activations but almost no spatial variance. The second half are "varied": no bias
    and kernels of growing scale, so their variances are the highest and strictly ordered.
    """
    from streamcam._tf import tensorflow

    tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    half = channels // 2
    kernel = rng.normal(size=(1, 1, 3, channels)).astype(np.float32)
    kernel[..., :half] *= 0.01
    kernel[..., half:] *= np.linspace(0.5, 4.0, channels - half, dtype=np.float32)
    bias = np.zeros(channels, np.float32)
    bias[:half] = np.linspace(5.0, 8.0, half)
    inputs = keras.Input((size, size, 3))
    conv = keras.layers.Conv2D(channels, 1, name="conv")
    x = keras.layers.Activation("relu", name="features")(conv(inputs))
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, outputs)
    conv.set_weights([kernel, bias])
    return Classifier("tiny-steady-varied", model, (size, size), lambda t: t / 127.5 - 1.0, ("features",), Labels(num_classes))


def relu_variants_classifier(num_classes: int = 3, size: int = 10, seed: int = 3) -> Classifier:
    """Every ReLU flavour guided backprop must handle: a ReLU layer with all three options, a
    LeakyReLU layer, relu6 as a conv activation and leaky_relu as an Activation layer. Large
    kernels push pre-activations into every region (below threshold, active, saturated)."""
    from streamcam._tf import tensorflow

    tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    big = keras.initializers.RandomNormal(stddev=1.5, seed=seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", kernel_initializer=big, name="conv1")(inputs)
    x = keras.layers.ReLU(max_value=4.0, negative_slope=0.1, threshold=0.5, name="relu_options")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", kernel_initializer=big, name="conv2")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.2, name="leaky_layer")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", kernel_initializer=big, activation="relu6", name="features")(x)
    x = keras.layers.Conv2D(4, 3, strides=2, kernel_initializer=big, name="conv4")(x)
    x = keras.layers.Activation("leaky_relu", name="leaky_activation")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, outputs)
    return Classifier("tiny-relu-variants", model, (size, size), lambda t: t / 127.5 - 1.0, ("features",), Labels(num_classes))
