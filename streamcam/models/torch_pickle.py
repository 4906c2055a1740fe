"""Read a legacy (pre-zip) PyTorch state-dict file without torch, and without running its pickle.

The legacy format is a run of pickles: magic number, protocol version, system info, the
state dict (whose tensors point at storages by persistent id), the list of storage keys,
then each storage's raw bytes (an int64 element count followed by the data).

The unpickler below only knows how to build an OrderedDict and tensors: any other global the
file names is refused, so a hostile file cannot run code while it is read. Every size the file
states (pickle length fields, storage element counts, tensor offsets, shapes and strides) is
checked against the bytes the file really holds before anything is allocated or read, so a
crafted file gets a TorchFileError instead of a huge allocation or a read outside a buffer.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import struct
from dataclasses import dataclass
from typing import BinaryIO, ClassVar

import numpy as np

from .pickle_guard import MALFORMED_PICKLE_ERRORS, AllowListUnpickler, UnsafePickleError, check_pickle_sizes, error_reason

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.dtype(np.float32),
    "DoubleStorage": np.dtype(np.float64),
    "HalfStorage": np.dtype(np.float16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
}
_MAX_NDIM = 32  # numpy allows 64; state-dict tensors have a handful of dimensions
_MAX_DIM = 1 << 40  # larger than any real tensor dimension, small enough that products stay exact


class TorchFileError(ValueError):
    """The file is not a legacy torch state dict this reader can load safely."""


class _Frozen:
    """Refuses pickle's BUILD opcode, which would otherwise overwrite checked fields afterwards."""

    def __setstate__(self, state):
        raise TorchFileError("weights file tries to modify a tensor after building it")


@dataclass(frozen=True)
class _StorageType(_Frozen):
    dtype: np.dtype


@dataclass(frozen=True)
class _StorageRef(_Frozen):
    key: str
    dtype: np.dtype


@dataclass(frozen=True)
class _TensorRef(_Frozen):
    """A tensor whose storage bytes come later in the file; sizes already checked for sign and type."""

    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _ints(value, what: str) -> tuple[int, ...]:
    # type() is int, not isinstance: a pickled bool is an int subclass with no business here.
    if not (isinstance(value, tuple) and len(value) <= _MAX_NDIM and all(type(n) is int and 0 <= n <= _MAX_DIM for n in value)):
        raise TorchFileError(f"tensor {what} {value!r:.80} is not a tuple of at most {_MAX_NDIM} sizes in 0..2**40")
    return value


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored) -> _TensorRef:
    if not isinstance(storage, _StorageRef):
        raise TorchFileError("tensor does not point at a storage")
    if not (type(storage_offset) is int and 0 <= storage_offset <= _MAX_DIM):
        raise TorchFileError(f"tensor storage offset {storage_offset!r:.40} is not a size in 0..2**40")
    shape, strides = _ints(size, "shape"), _ints(stride, "stride")
    if len(shape) != len(strides):
        raise TorchFileError(f"tensor shape {shape} and stride {strides} have different lengths")
    return _TensorRef(storage, storage_offset, shape, strides)


def _rebuild_parameter(data, *_ignored):
    if not isinstance(data, _TensorRef):
        raise TorchFileError("parameter does not wrap a tensor")
    return data


class _TensorOnlyUnpickler(AllowListUnpickler):
    ALLOWED: ClassVar[dict] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    REFUSED = TorchFileError

    def other_global(self, module: str, name: str):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        return super().other_global(module, name)

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel, view_metadata); torch >= 0.4 never writes views.
        if not (
            isinstance(pid, tuple)
            and len(pid) in (5, 6)
            and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)
            and isinstance(pid[2], str)
        ):
            raise TorchFileError(f"unexpected persistent id in weights file: {pid!r:.60}")
        if len(pid) == 6 and pid[5] is not None:
            raise TorchFileError("weights file uses storage views (torch < 0.4), which this reader does not support")
        return _StorageRef(pid[2], pid[1].dtype)


class _DataOnlyUnpickler(AllowListUnpickler):
    """For the header pickles, which hold only plain numbers, strings, lists and dicts."""

    REFUSED = TorchFileError


def _file_end(f: BinaryIO) -> int:
    try:
        here = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(here)
    except (AttributeError, OSError, ValueError) as exc:  # io.UnsupportedOperation is both
        raise TorchFileError(f"weights file must be seekable ({exc})") from exc
    return end


def _load(unpickler: type[pickle.Unpickler], f: BinaryIO, end: int):
    try:
        check_pickle_sizes(f, end)
    except UnsafePickleError as exc:
        raise TorchFileError(str(exc)) from exc
    return unpickler(f).load()


def load_legacy_state_dict(f: BinaryIO) -> dict[str, np.ndarray]:
    """Return {name: numpy array} from an open, seekable legacy torch file.

    The arrays are read-only views into the storages read from the file: tensors that share a
    storage share memory, as in torch, and nothing is allocated beyond the file's own bytes.
    """
    end = _file_end(f)
    try:
        if _load(_DataOnlyUnpickler, f, end) != LEGACY_MAGIC:
            raise TorchFileError("not a legacy PyTorch weights file (bad magic number)")
        _load(_DataOnlyUnpickler, f, end)  # protocol version
        _load(_DataOnlyUnpickler, f, end)  # system info
        state = _load(_TensorOnlyUnpickler, f, end)
        storage_keys = _load(_DataOnlyUnpickler, f, end)
        if not isinstance(state, dict) or not all(isinstance(name, str) for name in state):
            raise TorchFileError("weights file does not hold a state dict")
        if not (isinstance(storage_keys, list) and all(isinstance(key, str) for key in storage_keys)):
            raise TorchFileError("weights file has a malformed storage list")
        tensors = {name: ref for name, ref in state.items() if isinstance(ref, _TensorRef)}
        dtypes = _storage_dtypes(tensors, set(storage_keys))
        storages = {key: _read_storage(f, end, key, dtypes.get(key, np.dtype(np.uint8))) for key in storage_keys}
        return {name: _view(name, ref, storages[ref.storage.key]) for name, ref in tensors.items()}
    except TorchFileError:
        raise
    except MALFORMED_PICKLE_ERRORS as exc:
        raise TorchFileError(f"cannot read weights file: {error_reason(exc)}") from exc


def _storage_dtypes(tensors: dict[str, _TensorRef], keys: set[str]) -> dict[str, np.dtype]:
    dtypes: dict[str, np.dtype] = {}
    for name, ref in tensors.items():
        key = ref.storage.key
        if key not in keys:
            raise TorchFileError(f"tensor {name!r} refers to storage {key!r:.40}, which the file does not hold")
        if dtypes.setdefault(key, ref.storage.dtype) != ref.storage.dtype:
            raise TorchFileError(f"storage {key!r:.40} is used with two element types")
    return dtypes


def _read_storage(f: BinaryIO, end: int, key: str, dtype: np.dtype) -> bytes:
    raw = f.read(8)
    if len(raw) != 8:
        raise TorchFileError("weights file is truncated")
    (numel,) = struct.unpack("<q", raw)
    left = end - f.tell()
    # Compare before multiplying out or reading: the count is the file's word, the size is not.
    if not 0 <= numel <= left // dtype.itemsize:
        raise TorchFileError(f"storage {key!r:.40} claims {numel} elements of {dtype.itemsize} bytes; the file has {left} bytes left")
    data = f.read(numel * dtype.itemsize)
    if len(data) != numel * dtype.itemsize:
        raise TorchFileError("weights file is truncated")
    return data


def _view(name: str, ref: _TensorRef, data: bytes) -> np.ndarray:
    """The tensor as a read-only view of its storage, after checking that it lies inside it."""
    dtype = ref.storage.dtype
    numel = len(data) // dtype.itemsize
    count = math.prod(ref.shape)
    if ref.offset > numel:
        raise TorchFileError(f"tensor {name!r} starts at element {ref.offset} of a {numel}-element storage")
    if count == 0:
        return np.empty(ref.shape, dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride))
    if last >= numel:
        raise TorchFileError(f"tensor {name!r} reaches element {last} of a {numel}-element storage")
    if count > numel:  # only a broadcast (stride 0) view could; a state dict has none
        raise TorchFileError(f"tensor {name!r} has {count} elements, more than its {numel}-element storage")
    # numpy checks the same extent again against the buffer; strides of length-1 axes do not matter.
    strides = tuple(s * dtype.itemsize if n > 1 else 0 for n, s in zip(ref.shape, ref.stride))
    return np.ndarray(ref.shape, dtype, buffer=data, offset=ref.offset * dtype.itemsize, strides=strides)
