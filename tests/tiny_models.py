"""Tiny Keras classifiers for exact tests (in the spirit of tf-keras-vis's mock models)."""

from __future__ import annotations

import numpy as np

from streamcam.core.labels import Labels
from streamcam.models import Classifier


def gap_dense_classifier(num_classes: int = 4, size: int = 16, channels: int = 6, seed: int = 0) -> Classifier:
    """conv -> relu -> (target) -> global average pool -> dense logits: Grad-CAM equals CAM here."""
    from streamcam.backends import keras_module

    keras = keras_module()

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
    from streamcam.backends import keras_module

    keras = keras_module()

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
    from streamcam.backends import keras_module

    keras = keras_module()

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
    from streamcam.backends import keras_module

    keras = keras_module()

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


def bright_square_classifier(height: int = 32, width: int = 32) -> Classifier:
    """A fixed-size head with known weights: 4x4/4 conv -> relu -> 3x3 box conv ('same') -> relu
    (target) -> Flatten -> Dense. Channel 0 is brightness above mid-grey, channel 1 redness.
    Class 0 "background" is a constant logit 1, class 1 "bright" sums 2 x channel 0, class 2 "red"
    sums 2 x channel 1, so Grad-CAM of class 1 is the blurred bright area (lower at the tile's
    border cells, where the box conv sees zero padding)."""
    from streamcam.backends import keras_module

    keras = keras_module()

    inputs = keras.Input((height, width, 3))
    cells = keras.layers.Conv2D(2, 4, strides=4, activation="relu", name="cells")
    box = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="features")
    x = box(cells(inputs))
    logits = keras.layers.Dense(3, name="logits")
    model = keras.Model(inputs, logits(keras.layers.Flatten()(x)))
    kernel = np.zeros((4, 4, 3, 2), np.float32)
    kernel[..., 0] = 1 / 48  # mean brightness (input is 0..1)
    kernel[..., 0, 1], kernel[..., 1:, 1] = 1 / 16, -1 / 32  # red minus the mean of green and blue
    cells.set_weights([kernel, np.array([-0.5, 0.0], np.float32)])
    box_kernel = np.zeros((3, 3, 2, 2), np.float32)
    box_kernel[..., 0, 0] = box_kernel[..., 1, 1] = 1 / 9
    box.set_weights([box_kernel, np.zeros(2, np.float32)])
    dense = np.zeros((height // 4, width // 4, 2, 3), np.float32)
    dense[..., 0, 1] = dense[..., 1, 2] = 2.0
    logits.set_weights([dense.reshape(-1, 3), np.array([1.0, 0.0, 0.0], np.float32)])
    return Classifier("tiny-bright-square", model, (height, width), lambda t: t / 255.0, ("features",), Labels(3))


def patch_pool_classifier(
    num_classes: int = 5, size: int = 16, patch: int = 8, channels: int = 6, pooling: str = "avg", deep_head: bool = False, seed: int = 4
) -> Classifier:
    """patch x patch conv with stride patch -> relu (target) -> global pool -> head.

    One feature cell per patch (stride `patch`), so a test can compute the feature map from the
    pixels with a reshape. pooling 'avg' or 'max'; the head is Dense logits, or with deep_head
    Dropout -> Dense(7, relu) -> Dense logits. size is the native input size.
    """
    from streamcam.backends import keras_module

    keras = keras_module()

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(channels, patch, strides=patch, name="patches")(inputs)
    x = keras.layers.Activation("relu", name="features")(x)
    pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
    x = pool(name="pool")(x)
    if deep_head:
        x = keras.layers.Dropout(0.5, name="dropout")(x)
        x = keras.layers.Dense(7, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, outputs)
    return Classifier("tiny-patch-pool", model, (size, size), lambda t: t / 127.5 - 1.0, ("features",), Labels(num_classes))


def patch_features(classifier: Classifier, images: np.ndarray, patch: int = 8) -> np.ndarray:
    """The patch_pool_classifier's feature map (N, H/patch, W/patch, C), computed with numpy."""
    kernel, bias = classifier.model.get_layer("patches").get_weights()
    x = images.astype(np.float64) / 127.5 - 1.0
    n, height, width, _ = x.shape
    h, w = height // patch, width // patch
    cells = x.reshape(n, h, patch, w, patch, 3).transpose(0, 1, 3, 2, 4, 5).reshape(n, h, w, -1)
    return np.maximum(cells @ kernel.reshape(-1, kernel.shape[-1]) + bias, 0.0)
