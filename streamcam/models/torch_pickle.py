"""Read a legacy (pre-zip) PyTorch state-dict file without torch, and without running its pickle.

The legacy format is a run of pickles: magic number, protocol version, system info, the
state dict (whose tensors point at storages by persistent id), the list of storage keys,
then each storage's raw bytes (an int64 element count followed by the data).

The unpickler below only knows how to build an OrderedDict and tensors: any other global the
file names is refused, so a hostile file cannot run code while it is read.
"""

from __future__ import annotations

import collections
import pickle
import struct
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class TorchFileError(ValueError):
    """The file is not a legacy torch state dict this reader can load safely."""


@dataclass(frozen=True)
class _StorageType:
    dtype: type


@dataclass(frozen=True)
class _TensorRef:
    """A tensor whose storage bytes come later in the file."""

    storage_key: str
    dtype: type
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored) -> _TensorRef:
    key, dtype = storage
    return _TensorRef(key, dtype, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *_ignored):
    return data


class _TensorOnlyUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise TorchFileError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise TorchFileError(f"unexpected persistent id in weights file: {pid!r:.60}")
        return (str(pid[2]), pid[1].dtype)


class _DataOnlyUnpickler(pickle.Unpickler):
    """For the header pickles, which hold only plain numbers, strings, lists and dicts."""

    def find_class(self, module: str, name: str):
        raise TorchFileError(f"refusing to load {module}.{name} from a weights file")


def load_legacy_state_dict(f: BinaryIO) -> dict[str, np.ndarray]:
    """Return {name: numpy array} from an open legacy torch file."""
    try:
        magic = _DataOnlyUnpickler(f).load()
        if magic != LEGACY_MAGIC:
            raise TorchFileError("not a legacy PyTorch weights file (bad magic number)")
        _DataOnlyUnpickler(f).load()  # protocol version
        _DataOnlyUnpickler(f).load()  # system info
        state = _TensorOnlyUnpickler(f).load()
        storage_keys = _DataOnlyUnpickler(f).load()
        storages: dict[str, np.ndarray] = {}
        dtypes = {ref.storage_key: ref.dtype for ref in state.values() if isinstance(ref, _TensorRef)}
        for key in storage_keys:
            (numel,) = struct.unpack("<q", f.read(8))
            dtype = np.dtype(dtypes.get(key, np.uint8))
            raw = f.read(numel * dtype.itemsize)
            if len(raw) != numel * dtype.itemsize:
                raise TorchFileError("weights file is truncated")
            storages[key] = np.frombuffer(raw, dtype=dtype)
    except (pickle.UnpicklingError, EOFError, struct.error, AttributeError, TypeError) as exc:
        raise TorchFileError(f"cannot read weights file: {exc}") from exc
    return {name: _materialise(ref, storages) for name, ref in state.items() if isinstance(ref, _TensorRef)}


def _materialise(ref: _TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
    data = storages[ref.storage_key]
    itemsize = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset :], shape=ref.shape, strides=tuple(s * itemsize for s in ref.stride), writeable=False
    )
    return np.array(view)  # own, contiguous copy
