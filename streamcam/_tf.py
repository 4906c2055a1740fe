"""Load TensorFlow on demand, quietly, and pick the device.

TensorFlow's C++ runtime prints start-up chatter (oneDNN notes, CUDA probes on machines
without a GPU) straight to file descriptor 2 before Python logging is set up, so the only
way to keep it off the user's terminal is to point fd 2 elsewhere while it loads. What it
printed is replayed if the import itself fails.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from functools import lru_cache

from .errors import UsageError

DEVICES = ("auto", "cpu", "gpu")


@contextlib.contextmanager
def _stderr_fd_silenced():
    fd = 2  # the C++ runtime writes to the process's fd 2, whatever sys.stderr is
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        except BaseException:
            os.dup2(saved, fd)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, fd)
            os.close(saved)


@lru_cache(maxsize=1)
def tensorflow():
    """Import TensorFlow once (quietly) and return the module."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_fd_silenced():
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        tf.config.list_physical_devices("GPU")  # the CUDA probe happens here
    return tf


def gpus() -> list:
    return tensorflow().config.list_physical_devices("GPU")


def device_scope(device: str):
    """A tf.device context for 'cpu' / 'gpu', or a no-op for 'auto' (TF's own placement)."""
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    tf = tensorflow()
    if device == "cpu":
        return tf.device("/CPU:0")
    if device == "gpu":
        if not gpus():
            raise UsageError("--device gpu was asked for, but TensorFlow sees no GPU on this machine")
        return tf.device("/GPU:0")
    return contextlib.nullcontext()


def uses_gpu(device: str) -> bool:
    return device == "gpu" or (device == "auto" and bool(gpus()))
