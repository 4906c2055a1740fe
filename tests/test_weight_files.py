"""Crafted weight files: each must fail with one readable error, never crash, hang or allocate much.

Every crafted file is read in a child process, so a reader that segfaults or runs out of memory
fails its test instead of killing pytest. The child also reports how long the read took and
the peak memory tracemalloc saw (numpy and the pickle machinery report their buffers to it).
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest

from streamcam.models.torch_pickle import LEGACY_MAGIC, load_legacy_state_dict

from conftest import REPO

MiB = 1 << 20

_PROBE = r"""
import json, sys, time, tracemalloc
from pathlib import Path

reader, path = sys.argv[1], Path(sys.argv[2])
if reader == "torch":
    from streamcam.models.torch_pickle import load_legacy_state_dict

    def load():
        with open(path, "rb") as f:
            return load_legacy_state_dict(f)
else:
    from streamcam.models.vgg16 import read_npy_dict

    def load():
        return read_npy_dict(path)

tracemalloc.start()
start = time.perf_counter()
try:
    load()
    error, message = None, ""
except Exception as exc:
    error, message = type(exc).__name__, str(exc)
seconds = time.perf_counter() - start
print(json.dumps({"error": error, "message": message, "seconds": seconds, "peak": tracemalloc.get_traced_memory()[1]}))
"""


def _probe(reader: str, path, timeout: float = 120) -> dict:
    run = subprocess.run([sys.executable, "-c", _PROBE, reader, str(path)], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert run.returncode == 0, f"the reader crashed (exit {run.returncode}): {run.stderr[-1500:]}"
    return json.loads(run.stdout.splitlines()[-1])


def _assert_refused(result: dict, error: str, *words: str) -> None:
    assert result["error"] == error, f"expected {error}, got {result['error']}: {result['message'][:300]}"
    assert result["peak"] < 16 * MiB, f"peak memory {result['peak'] / MiB:.0f} MiB"
    assert result["seconds"] < 5
    assert "\n" not in result["message"] and result["message"]
    for word in words:
        assert word in result["message"], result["message"]


# --- legacy torch files ---------------------------------------------------------------------
# Stand-ins pickled by reference, then renamed to the torch globals a real legacy file names
# (protocol 2 writes a global as the text "c<module>\n<name>\n", so renaming is a plain replace).


def _rebuild_tensor_v2(*args):
    raise AssertionError("stand-in, never called")


class FloatStorage:
    pass


class ComplexFloatStorage:
    pass


class _Storage:
    def __init__(self, kind, key: str, numel: int):
        self.kind, self.key, self.numel = kind, key, numel


class _Tensor:
    def __init__(self, storage: _Storage, offset, shape, stride, build=None):
        self.storage, self.offset, self.shape, self.stride, self.build = storage, offset, shape, stride, build

    def __reduce__(self):
        # A third item makes pickle add a BUILD opcode that applies it to the rebuilt tensor.
        args = (self.storage, self.offset, self.shape, self.stride, False, collections.OrderedDict())
        return (_rebuild_tensor_v2, args) if self.build is None else (_rebuild_tensor_v2, args, self.build)


class _LegacyPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", obj.kind, obj.key, "cpu", obj.numel, None)
        return None


def _legacy_bytes(tensors: dict, storages: list, *, keys=None, header=None) -> bytes:
    """tensors: {name: _Tensor}; storages: [(key, numel written before the data, raw bytes)]."""
    out = io.BytesIO()
    out.write(header if header is not None else pickle.dumps(LEGACY_MAGIC, protocol=2))
    for part in (1001, {"protocol_version": 1001}):
        pickle.dump(part, out, protocol=2)
    body = io.BytesIO()
    _LegacyPickler(body, protocol=2).dump(collections.OrderedDict(tensors))
    module = __name__.encode()
    state = body.getvalue().replace(b"c" + module + b"\n_rebuild_tensor_v2\n", b"ctorch._utils\n_rebuild_tensor_v2\n")
    state = state.replace(b"c" + module + b"\n", b"ctorch\n")
    assert module not in state
    out.write(state)
    pickle.dump(keys if keys is not None else [key for key, _, _ in storages], out, protocol=2)
    for _, numel, raw in storages:
        out.write(struct.pack("<q", numel) + raw)
    return out.getvalue()


def _one_tensor(offset=0, shape=(4,), stride=(1,), *, numel=10, kind=FloatStorage, key="s0", keys=None, raw=None, build=None) -> bytes:
    raw = np.arange(10, dtype=np.float32).tobytes() if raw is None else raw
    tensor = _Tensor(_Storage(kind, key, numel), offset, shape, stride, build)
    return _legacy_bytes({"w": tensor}, [("s0", numel, raw)], keys=keys)


def test_stand_in_builder_writes_files_the_reader_loads(tmp_path):
    # The crafted files below differ from this one only in the field they break.
    state = load_legacy_state_dict(io.BytesIO(_one_tensor(offset=2, shape=(2, 3), stride=(3, 1))))
    np.testing.assert_array_equal(state["w"], np.arange(2, 8, dtype=np.float32).reshape(2, 3))
    state = load_legacy_state_dict(io.BytesIO(_one_tensor(offset=1, shape=(3, 2), stride=(1, 3))))  # a transposed view
    np.testing.assert_array_equal(state["w"], np.arange(1, 7, dtype=np.float32).reshape(2, 3).T)


TORCH_CASES = {
    "offset past the storage": lambda: _one_tensor(offset=1000),
    "offset leaves too few elements": lambda: _one_tensor(offset=8, shape=(4,)),
    "stride past the storage": lambda: _one_tensor(shape=(2, 4), stride=(1000, 1)),
    "huge stride": lambda: _one_tensor(shape=(2,), stride=(1 << 62,)),
    "negative offset": lambda: _one_tensor(offset=-8),
    "negative stride": lambda: _one_tensor(shape=(4,), stride=(-1000000,)),
    "negative shape": lambda: _one_tensor(shape=(-4,)),
    "huge shape": lambda: _one_tensor(shape=(1 << 40,), stride=(1,)),
    "shape and stride lengths differ": lambda: _one_tensor(shape=(2, 3), stride=(1,)),
    "float in shape": lambda: _one_tensor(shape=(2.5,)),
    "missing storage key": lambda: _one_tensor(key="absent"),
    "negative numel": lambda: _one_tensor(numel=-1),
    "complex storage type": lambda: _one_tensor(kind=ComplexFloatStorage),
    "offset rewritten after the checks": lambda: _one_tensor(build={"offset": 1000}),
}


@pytest.mark.parametrize("case", TORCH_CASES)
def test_crafted_torch_file_is_refused(tmp_path, case):
    path = tmp_path / "crafted.pth"
    path.write_bytes(TORCH_CASES[case]())
    _assert_refused(_probe("torch", path), "TorchFileError")


@pytest.mark.parametrize("numel", [1 << 34, 1 << 30])  # 64 GiB and 4 GiB of float32
def test_tiny_torch_file_asking_for_gigabytes_fails_fast(tmp_path, numel):
    data = _one_tensor(numel=numel, raw=b"\0" * 4)
    assert len(data) <= 256
    path = tmp_path / "huge.pth"
    path.write_bytes(data)
    _assert_refused(_probe("torch", path), "TorchFileError", "bytes")


def test_torch_reader_refuses_other_globals(tmp_path):
    data = _one_tensor().replace(b"ctorch._utils\n_rebuild_tensor_v2\n", b"cbuiltins\neval\n")
    path = tmp_path / "eval.pth"
    path.write_bytes(data)
    _assert_refused(_probe("torch", path), "TorchFileError", "builtins.eval")


# --- pickle-level bombs, for both readers ----------------------------------------------------
# A memo index is a 4-byte field: the C unpickler grows its memo table to twice the index at
# once (zeroed), so 8 bytes of pickle ask for GiBs. A BINBYTES8 or BYTEARRAY8 length makes it
# allocate the claimed length before reading.
BOMBS = {
    "memo-index": b"\x80\x02N" + b"r" + struct.pack("<I", 1 << 26) + b".",
    "bytes-length": b"\x80\x04\x8e" + struct.pack("<Q", 1 << 33) + b"x" * 16 + b".",
    "bytearray-length": b"\x80\x05\x96" + struct.pack("<Q", 1 << 33) + b"x" * 16 + b".",
}


def _npy_with_pickle(path, pickled: bytes):
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        f.write(pickled)


@pytest.mark.parametrize("bomb", BOMBS)
@pytest.mark.parametrize("reader", ["torch", "npy"])
def test_pickle_bombs_are_refused_before_allocating(tmp_path, reader, bomb):
    path = tmp_path / "bomb"
    if reader == "torch":
        path.write_bytes(_legacy_bytes({}, [], header=BOMBS[bomb]))
    else:
        _npy_with_pickle(path, BOMBS[bomb])
    _assert_refused(_probe(reader, path), "TorchFileError" if reader == "torch" else "ModelError")


# --- tensorflow-vgg .npy files ---------------------------------------------------------------
_reconstruct = np._core.multiarray._reconstruct


class _Dtype:
    """Pickles as numpy.dtype(name) with any state: how a crafted file describes a dtype."""

    def __init__(self, name, state):
        self.name, self.state = name, state

    def __reduce__(self):
        return (np.dtype, (self.name, False, True), self.state)


class _Array:
    """Pickles as numpy's own ndarray pickle, with any shape, dtype and payload."""

    def __init__(self, shape, dtype, payload):
        self.shape, self.dtype, self.payload = shape, dtype, payload

    def __reduce__(self):
        return (_reconstruct, (np.ndarray, (0,), b"b"), (1, self.shape, self.dtype, False, self.payload))


class _Call:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _bias():
    return np.zeros(64, np.float32)


STRUCT_FIELD_FAR_AWAY = _Dtype("V8", (3, "|", None, ("a",), {"a": (np.dtype("f8"), 1 << 30)}, 8, 1, 16))
NPY_CASES = {  # case: (the dict the file holds, a word the error must contain)
    # numpy accepts the field offset; converting such an array to float32 reads 1 GiB past it.
    "structured dtype with a far field offset": ({"conv1_1": [_Array((2,), STRUCT_FIELD_FAR_AWAY, b"\0" * 16), _bias()]}, "conv1_1"),
    "structured dtype": ({"conv1_1": [np.zeros(3, dtype=[("a", "f4"), ("b", "f4")]), _bias()]}, "conv1_1"),
    "subarray dtype": ({"conv1_1": [_Array((1,), np.dtype(("f4", (2,))), b"\0" * 8), _bias()]}, "conv1_1"),
    "string dtype": ({"conv1_1": [np.array(["abc"]), _bias()]}, "conv1_1"),
    "void dtype": ({"conv1_1": [np.zeros(2, dtype="V16"), _bias()]}, "conv1_1"),
    "object array inside": ({"conv1_1": [np.array([[1.0, 2.0], [3.0, 4.0]], dtype=object), _bias()]}, "conv1_1"),
    "object array with a huge shape": ({"conv1_1": [_Array((1 << 40,), np.dtype(object), []), _bias()]}, "conv1_1"),
    "payload shorter than the shape": ({"conv1_1": [_Array((1 << 20, 1 << 20), np.dtype("f4"), b"\0" * 16), _bias()]}, "conv1_1"),
    "ndarray called with a huge shape": ({"conv1_1": [_Call(np.ndarray, (1 << 31,), "f4"), _bias()]}, "ndarray"),
    "numpy scalar": ({"conv1_1": [np.float32(1.0), _bias()]}, "scalar"),
    "nested lists instead of arrays": ({"conv1_1": [[[0.0] * 3] * 3, [0.0] * 64]}, "conv1_1"),
    "wrong kernel shape": ({"conv1_1": [np.zeros((3, 3, 3, 32), np.float32), _bias()]}, "conv1_1"),
    "kernel and bias swapped": ({"conv1_1": [_bias(), np.zeros((3, 3, 3, 64), np.float32)]}, "conv1_1"),
    "three arrays": ({"conv1_1": [np.zeros((3, 3, 3, 64), np.float32), _bias(), _bias()]}, "conv1_1"),
}


@pytest.mark.parametrize("case", NPY_CASES)
def test_crafted_npy_file_is_refused(tmp_path, case):
    content, word = NPY_CASES[case]
    path = tmp_path / "crafted.npy"
    np.save(path, content, allow_pickle=True)
    _assert_refused(_probe("npy", path), "ModelError", word)


def test_memo_shared_list_bomb_is_refused_without_converting(tmp_path):
    # pickle stores a list once and refers to it by memo index, so 100 references to a list of
    # 1,000 references to one 1,000-float row pickle to a few KB; np.asarray makes that 400 MB.
    row = [0.0] * 1000
    block = [row] * 1000
    path = tmp_path / "bomb.npy"
    np.save(path, {"conv1_1": [[block] * 100, row]}, allow_pickle=True)
    assert path.stat().st_size < 16 * 1024
    _assert_refused(_probe("npy", path), "ModelError", "conv1_1")


# --- the command line -------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_reports_a_crafted_npy_as_one_error_line(tmp_path):
    path = tmp_path / "crafted.npy"
    np.save(path, NPY_CASES["structured dtype with a far field offset"][0], allow_pickle=True)
    image = REPO / "sample_videos" / "sample.jpg"
    run = subprocess.run(
        [sys.executable, "-m", "streamcam", "image", str(image), "--model", "vgg16", "--weights", str(path), "-o", str(tmp_path), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert run.returncode == 2, f"exit {run.returncode}: {run.stderr[-1500:]}"
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "conv1_1" in errors[0], run.stderr
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob("*.jpg"))
