"""VGG16, the ancestor tool's model: Keras architecture, weights from a file or Keras's download.

The ancestor read tensorflow-vgg's `vgg16.npy`: a pickled dict {'conv1_1': [W, b], ...,
'fc8': [W, b]} with HWIO kernels and an fc6 that flattens pool5 in HWC order, as Keras does.
That file is read with an unpickler that can only rebuild numpy arrays.
"""

from __future__ import annotations

import contextlib
import io
import pickle
from pathlib import Path

import numpy as np

from .._tf import tensorflow
from ..errors import ModelError
from .keras_weights import load_keras_weights

INPUT_SIZE = 224
_NPY_TO_KERAS = {
    **{f"conv{b}_{c}": f"block{b}_conv{c}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for c in range(1, n + 1)},
    "fc6": "fc1",
    "fc7": "fc2",
    "fc8": "predictions",
}


def build():
    """keras.applications VGG16 without weights, with logits output."""
    tensorflow()
    import keras

    return keras.applications.VGG16(weights=None, classifier_activation=None)


def load_weights(model, weights: Path | None) -> None:
    """Weights from --weights (Keras .h5 / .weights.h5, or tensorflow-vgg .npy), else Keras's ImageNet download."""
    if weights is not None:
        weights = Path(weights)
        if weights.suffix == ".npy" and weights.is_file():
            load_npy_weights(model, weights)
        else:
            load_keras_weights(model, weights)
        return
    try:
        import keras

        with contextlib.redirect_stdout(io.StringIO()):  # Keras prints its download URL to stdout
            reference = keras.applications.VGG16(weights="imagenet", classifier_activation=None)
    except Exception as exc:  # offline: urllib/HTTP errors surface as several types
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ModelError(
            "VGG16 needs weights: pass --weights FILE (a Keras .weights.h5/.h5 file), or --weights vgg16.npy "
            f"(tensorflow-vgg format), or go online once so Keras can download its ImageNet weights (download failed: {reason})"
        ) from exc
    model.set_weights(reference.get_weights())


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays, dicts and lists; refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise ModelError(f"refusing to load {module}.{name} from a weights file")


def read_npy_dict(path: Path) -> dict[str, list[np.ndarray]]:
    """Read a pickled-dict .npy file (the tensorflow-vgg format) without allow_pickle."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            _shape, _fortran, dtype = read_header(f)
            if dtype.hasobject:
                obj = _ArrayOnlyUnpickler(f, encoding="latin1").load()
            else:
                raise ModelError(f"{path} holds a plain array, not a dict of layer weights")
    except (OSError, ValueError, pickle.UnpicklingError, EOFError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    if not isinstance(obj, dict):
        raise ModelError(f"{path} does not hold a dict of layer weights")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def load_npy_weights(model, path: Path) -> None:
    weights = read_npy_dict(path)
    for npy_name, keras_name in _NPY_TO_KERAS.items():
        if npy_name not in weights:
            raise ModelError(f"{path} has no weights for layer {npy_name}")
        kernel, bias = (np.asarray(a, dtype=np.float32) for a in weights[npy_name][:2])
        try:
            model.get_layer(keras_name).set_weights([kernel, bias])
        except ValueError as exc:
            raise ModelError(f"{path}: layer {npy_name} does not fit VGG16 ({exc})") from exc
