"""Classifiers streamcam can explain: the embedded default, VGG16, or any Keras model file.

May import streamcam.backends (which Keras) and streamcam.core; nothing that explains or writes.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamcam.core.errors import ModelError, UsageError
from streamcam.core.labels import Labels

from .cache import cache_dir
from .head import Head, describe_head
from .keras_weights import load_keras_weights
from .layers import find_target_layer, resolve_layer

DEFAULT_MODEL = "efficientnet-lite0"
BUILTIN_MODELS = ("efficientnet-lite0", "vgg16")


@dataclass
class Classifier:
    """A Keras model that outputs logits, plus what is needed to feed and explain it."""

    name: str
    model: object  # keras.Model whose output is logits
    input_size: tuple[int, int]  # (height, width)
    preprocess: Callable  # float32 RGB 0..255 tensor -> model input tensor
    target_layer: tuple[str, ...]  # path to the feature map the CAMs are computed on
    labels: Labels
    _head: tuple = field(default=(), init=False, repr=False, compare=False)  # (model, target_layer, Head)

    @property
    def num_classes(self) -> int:
        return self.labels.num_classes

    @property
    def head(self) -> Head:
        """The head after the target layer, found once per model and target layer (models/layers.py)."""
        if not self._head or self._head[0] is not self.model or self._head[1] != self.target_layer:
            head = describe_head(self.model, self.target_layer, self.input_size, self.num_classes)
            self._head = (self.model, self.target_layer, head)
        return self._head[2]

    @property
    def pooling_head(self) -> bool:
        """True when the model pools the feature map globally before its dense layers (GAP or global
        max pooling): its trunk then takes any input size. False for a fixed-size head (Flatten + dense)."""
        return self.head.pool is not None

    @property
    def stride(self) -> int:
        """Input pixels per cell of the target feature map (32 for EfficientNet-Lite0, 16 for VGG16's block5_conv3)."""
        return self.head.stride


def builtin_labels(model: str) -> Labels | None:
    """The class names a model has before it loads: ImageNet's for a built-in model; None for a
    model file (known once it loads), so names on a command line can be checked first."""
    return Labels(1000) if model.lower() in ("efficientnet-lite0", "efficientnet_lite0", "default", "vgg16") else None


def load_classifier(
    model: str = DEFAULT_MODEL,
    weights: str | Path | None = None,
    layer: str | None = None,
    precision: str = "float32",
    device: str = "auto",
    preprocess: str | None = None,
) -> Classifier:
    """Load a built-in model by name, or a Keras model file (.keras, .h5).

    precision: 'float32', 'mixed' (float16 compute on a GPU, bfloat16 on a CPU; built-in models
    only: a model file keeps the precision it was saved with), or 'auto' (mixed when `device`
    resolves to a GPU).
    preprocess: override the input scaling, one of PREPROCESSING (model files default to 'raw').
    """
    key = model.lower()
    builtin = key in ("efficientnet-lite0", "efficientnet_lite0", "default", "vgg16")
    with _dtype_policy(_policy_name(precision, device) if builtin else "float32"):
        if key == "vgg16":
            classifier = _vgg16(weights)
        elif builtin:
            classifier = _efficientnet_lite0(weights)
        else:
            classifier = _keras_file(Path(model))
    if layer:
        classifier.target_layer = resolve_layer(classifier.model, layer)
    if preprocess is not None:
        if preprocess not in PREPROCESSING:
            raise UsageError(f"unknown preprocessing {preprocess!r}; choose one of {', '.join(PREPROCESSING)}")
        classifier.preprocess = PREPROCESSING[preprocess]
    return classifier


PRECISIONS = ("auto", "float32", "mixed")


def _policy_name(precision: str, device: str) -> str:
    from streamcam.backends import uses_gpu

    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    on_gpu = uses_gpu(device)
    if precision == "float32" or (precision == "auto" and not on_gpu):
        # Measured on a 2-core CPU with AVX512-BF16: mixed_bfloat16 77 fps vs float32 90 fps.
        return "float32"
    return "mixed_float16" if on_gpu else "mixed_bfloat16"


@contextlib.contextmanager
def _dtype_policy(name: str):
    """Build layers under a Keras dtype policy, restoring the global one afterwards."""
    from streamcam.backends import keras_module

    keras = keras_module()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


# float32 arrays, not tuples: JAX refuses a tuple operand, and TensorFlow a float64 array.
def _scale(mean, std) -> Callable:
    mean, std = np.float32(mean), np.float32(std)
    return lambda x: (x - mean) / std


_CAFFE_MEANS = np.float32((103.939, 116.779, 123.68))


def _caffe(x):  # RGB 0..255 -> BGR minus the ImageNet channel means (VGG16, ResNet50 in Keras)
    return x[..., ::-1] - _CAFFE_MEANS


# Input scalings of common classifiers, by the names keras.applications uses for them.
PREPROCESSING: dict[str, Callable] = {
    "raw": lambda x: x,  # RGB 0..255: models that include their own preprocessing
    "tf": _scale(127.5, 127.5),  # -1..1 (MobileNet, Inception, Xception)
    "torch": _scale((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),  # ImageNet mean/std
    "caffe": _caffe,
    "lite": _scale(127.0, 128.0),  # EfficientNet-Lite's TF reference
}


def _efficientnet_lite0(weights: str | Path | None) -> Classifier:
    from . import efficientnet_lite as effnet

    model = effnet.build(size=None)  # any input size: the head averages the feature map
    if weights is not None:
        load_keras_weights(model, Path(weights))
    else:
        source = effnet.packaged_weights_file()
        cached = cache_dir() / f"{source.stem}.weights.h5"
        if not _try_load_cache(model, cached):
            effnet.load_torch_weights(model, source)
            _write_cache(model, cached)
    # The TF reference trains Lite models on (x - 127) / 128, not ImageNet mean/std.
    return Classifier("efficientnet-lite0", model, (effnet.INPUT_SIZE,) * 2, PREPROCESSING["lite"], (effnet.TARGET_LAYER,), Labels(1000))


def _try_load_cache(model, cached: Path) -> bool:
    if not cached.is_file():
        return False
    try:
        model.load_weights(str(cached))
        return True
    except Exception as exc:  # a damaged cache file fails in h5py or keras with varied types
        warnings.warn(f"rebuilding damaged weights cache {cached} ({type(exc).__name__})", stacklevel=2)
        cached.unlink(missing_ok=True)
        return False


def _write_cache(model, cached: Path) -> None:
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(cached.name.replace(".weights.h5", ".partial.weights.h5"))
        model.save_weights(str(partial))
        partial.replace(cached)
    except OSError as exc:  # a read-only cache is not fatal: convert again next time
        warnings.warn(f"cannot write weights cache {cached}: {exc}", stacklevel=2)


def _vgg16(weights: str | Path | None) -> Classifier:
    from . import vgg16

    model = vgg16.build()
    vgg16.load_weights(model, Path(weights) if weights else None)
    return Classifier("vgg16", model, (vgg16.INPUT_SIZE,) * 2, PREPROCESSING["caffe"], find_target_layer(model), Labels(1000))


def _keras_file(path: Path) -> Classifier:
    if path.suffix not in (".keras", ".h5"):
        raise ModelError(f"unknown model {str(path)!r}: use {', '.join(BUILTIN_MODELS)} or a Keras .keras/.h5 file")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    from streamcam.backends import keras_module

    keras = keras_module()
    try:
        model = keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # keras/h5py raise many types for unreadable files
        raise ModelError(f"cannot load Keras model {path}: {exc}") from exc
    _softmax_to_logits(model)
    shape = model.inputs[0].shape
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        raise ModelError(f"model {path} must take fixed-size images (batch, height, width, 3); it takes {shape}")
    num_classes = int(model.outputs[0].shape[-1])
    # Model files are assumed to carry their own preprocessing (RGB 0..255) unless --preprocess says otherwise.
    classifier = Classifier(
        path.stem, model, (int(shape[1]), int(shape[2])), PREPROCESSING["raw"], find_target_layer(model), Labels(num_classes)
    )
    head = classifier.head
    if head.pool is not None:  # from now on the model takes any input size (a copy, same weights)
        classifier.model = head.model
        classifier._head = (head.model, classifier.target_layer, head)
    return classifier


def _softmax_to_logits(model) -> None:
    """Explain logits, not probabilities: switch a final softmax activation to linear."""
    import keras

    last = model.layers[-1]
    if getattr(last, "activation", None) is keras.activations.softmax:  # Dense(..., "softmax") or Activation
        last.activation = keras.activations.linear
    elif type(last).__name__ == "Softmax":
        raise ModelError("the model ends in a Softmax layer; save it without that layer to explain logits")
