"""VGG16, the ancestor tool's model: Keras architecture, weights from a file or Keras's download.

The ancestor read tensorflow-vgg's `vgg16.npy`: a pickled dict {'conv1_1': [W, b], ...,
'fc8': [W, b]} with HWIO kernels and an fc6 that flattens pool5 in HWC order, as Keras does.
That file is read with an unpickler that can only rebuild plain numeric numpy arrays, and
every size in it is checked against VGG16's own shapes before anything is allocated.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from pathlib import Path
from typing import ClassVar

import numpy as np

from streamcam.backends import keras_module
from streamcam.core.errors import ModelError

from .keras_weights import load_keras_weights
from .pickle_guard import MALFORMED_PICKLE_ERRORS, AllowListUnpickler, check_pickle_sizes, error_reason

INPUT_SIZE = 224
_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))  # (channels, convolutions) of each block
_NPY_TO_KERAS = {
    **{f"conv{b}_{c}": f"block{b}_conv{c}" for b, (_, n) in enumerate(_BLOCKS, 1) for c in range(1, n + 1)},
    "fc6": "fc1",
    "fc7": "fc2",
    "fc8": "predictions",
}


def _npy_shapes() -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """(kernel, bias) shapes of each layer in Keras's layout (HWIO kernels), known without building the model."""
    shapes, channels = {}, 3
    for b, (width, convs) in enumerate(_BLOCKS, 1):
        for c in range(1, convs + 1):
            shapes[f"conv{b}_{c}"] = ((3, 3, channels, width), (width,))
            channels = width
    for name, n_in, n_out in (("fc6", 7 * 7 * channels, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000)):
        shapes[name] = ((n_in, n_out), (n_out,))
    return shapes


_NPY_SHAPES = _npy_shapes()
# No genuine array is larger than fc6's kernel in the widest accepted type (8 bytes): 822 MB.
_MAX_ARRAY_BYTES = max(math.prod(shape) for pair in _NPY_SHAPES.values() for shape in pair) * 8
_PLAIN_DTYPES = {f"{kind}{size}" for kind, sizes in (("f", "248"), ("i", "1248"), ("u", "1248")) for size in sizes}


def build():
    """keras.applications VGG16 without weights, with logits output."""
    keras = keras_module()

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


class _NotWeights(Exception):
    """Why a pickled array cannot be a weight; reported later, naming the layer that uses it."""


class _Dtype:
    """Stands in for numpy.dtype while unpickling: only plain numbers, and object for np.save's wrapper.

    numpy pickles a dtype as dtype(name, align, copy) plus a state that carries the byte order and,
    for structured or subarray dtypes, fields with offsets that numpy does not check. So the
    name must be a plain type and the state must carry no fields; else the dtype is marked unusable.
    """

    def __init__(self, name, *_flags):
        name = name.decode("latin-1") if isinstance(name, bytes) else name
        self.dtype, self.problem = None, f"dtype {name!r:.40} is not a plain number type"
        if name in _PLAIN_DTYPES:
            self.dtype, self.problem = np.dtype(name), None
        elif name in ("O4", "O8"):  # pointer-sized object: only the outer wrapper array
            self.dtype, self.problem = np.dtype(object), None

    def __setstate__(self, state):
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
        plain = (
            isinstance(state, tuple)
            and len(state) in (8, 9)
            and state[0] in (3, 4)
            and state[1] in ("<", ">", "|", "=")
            and state[2:5] == (None, None, None)
            and state[5:7] == (-1, -1)
            and state[8:] in ((), (None,))
        )
        if not plain:
            self.dtype, self.problem = None, "structured, subarray and other non-numeric dtypes are not weights"
        elif self.dtype is not None and state[1] in "<>":
            self.dtype = self.dtype.newbyteorder(state[1])


class _Array:
    """Stands in for an ndarray while unpickling: __setstate__ gets numpy's array state
    (version, shape, dtype, is_fortran, data) and checks it before anything is allocated."""

    def __init__(self):
        self.array, self.item, self.problem = None, None, "an array without data"

    def __setstate__(self, state):
        self.array = self.item = None
        if _is_wrapper(state):  # np.save puts the dict in a 0-d object array whose data is [dict]
            self.item, self.problem = state[4][0], "object arrays are not weights"
            return
        try:
            self.array, self.problem = _array_from_state(state), None
        except _NotWeights as exc:
            self.problem = str(exc)


def _is_wrapper(state) -> bool:
    return (
        isinstance(state, tuple)
        and len(state) == 5
        and state[1] == ()
        and isinstance(state[2], _Dtype)
        and state[2].dtype == object
        and isinstance(state[4], list)
        and len(state[4]) == 1
    )


def _array_from_state(state) -> np.ndarray:
    if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
        raise _NotWeights("an array pickled in an unknown layout")
    _version, shape, dtype, fortran, data = state
    if not isinstance(dtype, _Dtype):
        raise _NotWeights("an array without a dtype")
    if dtype.dtype is None:
        raise _NotWeights(dtype.problem)
    if dtype.dtype == object:
        raise _NotWeights("object arrays are not weights")
    if not (isinstance(shape, tuple) and len(shape) <= 4 and all(type(n) is int and n >= 0 for n in shape)):
        raise _NotWeights(f"array shape {shape!r:.60} is not a weight's")
    size = math.prod(shape) * dtype.dtype.itemsize
    if size > _MAX_ARRAY_BYTES:
        raise _NotWeights(f"an array of shape {shape} is larger than any VGG16 weight")
    if not (isinstance(data, (bytes, str)) and len(data) == size):
        raise _NotWeights(f"array data is not the {size} bytes its shape {shape} needs")
    if isinstance(data, str):  # Python 2 wrote the data as str; encoding="latin1" keeps one char per byte
        data = data.encode("latin-1")
    # A read-only view of the bytes the pickle already holds: no copy, nothing sized by the file's word.
    return np.frombuffer(data, dtype.dtype).reshape(shape, order="F" if fortran else "C")


def _reconstruct(cls, *_args) -> _Array:
    # numpy's pickle calls _reconstruct(ndarray, (0,), b'b') for an empty array, then BUILDs its state.
    if cls is not _ndarray:
        raise ModelError("weights file rebuilds something other than a numpy array")
    return _Array()


def _ndarray(*_args):
    raise ModelError("refusing to call numpy.ndarray from a weights file")


class _ArrayOnlyUnpickler(AllowListUnpickler):
    """Rebuilds plain numeric arrays (as _Array), dicts and lists; refuses every other global."""

    REFUSED = ModelError
    ALLOWED: ClassVar[dict] = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): _ndarray,
        ("numpy", "dtype"): _Dtype,
    }


def read_npy_dict(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read tensorflow-vgg's pickled-dict .npy without allow_pickle: {npy layer name: (kernel, bias)}.

    Every layer of VGG16 must be there, as exactly [kernel, bias] with exactly Keras's shapes.
    """
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            _shape, _fortran, dtype = read_header(f)
            if not dtype.hasobject:
                raise ModelError(f"{path} holds a plain array, not a dict of layer weights")
            check_pickle_sizes(f, os.fstat(f.fileno()).st_size)  # its UnsafePickleError is a ValueError
            obj = _ArrayOnlyUnpickler(f, encoding="latin1").load()
    except (OSError, *MALFORMED_PICKLE_ERRORS) as exc:
        raise ModelError(f"cannot read {path}: {error_reason(exc)}") from exc
    if isinstance(obj, _Array) and isinstance(obj.item, dict):
        obj = obj.item
    if not isinstance(obj, dict):
        raise ModelError(f"{path} does not hold a dict of layer weights")
    found = {(k.decode("latin-1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    return {name: _layer(path, name, found) for name in _NPY_SHAPES}


def _layer(path: Path, name: str, found: dict) -> tuple[np.ndarray, np.ndarray]:
    if name not in found:
        raise ModelError(f"{path} has no weights for layer {name}")
    value = found[name]
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        what = f"{len(value)} items" if isinstance(value, (list, tuple)) else f"a {type(value).__name__}"
        raise ModelError(f"{path}: layer {name} must hold [kernel, bias], not {what}")
    arrays = []
    for part, item, shape in zip(("kernel", "bias"), value, _NPY_SHAPES[name]):
        if not isinstance(item, _Array):
            raise ModelError(f"{path}: layer {name} {part} is a {type(item).__name__}, not a numpy array")
        if item.array is None:
            raise ModelError(f"{path}: layer {name} {part}: {item.problem}")
        if item.array.shape != shape:
            raise ModelError(f"{path}: layer {name} {part} has shape {item.array.shape}; VGG16 needs {shape}")
        arrays.append(item.array)
    return arrays[0], arrays[1]


def load_npy_weights(model, path: Path) -> None:
    for npy_name, (kernel, bias) in read_npy_dict(path).items():
        try:
            model.get_layer(_NPY_TO_KERAS[npy_name]).set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
        except ValueError as exc:
            raise ModelError(f"{path}: layer {npy_name} does not fit VGG16 ({exc})") from exc
