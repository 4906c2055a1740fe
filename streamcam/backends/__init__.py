"""Which Keras backend runs the models: TensorFlow (the default) or JAX. May import only streamcam.core.

A layer of its own below streamcam.models: loading a model already needs the choice made.

Keras 3 fixes its backend when it is first imported, from KERAS_BACKEND, so the choice is made
before that: use_backend() sets the variable, and everything in streamcam that needs Keras gets
it from keras_module(). The models, CAM methods and pipeline are written in keras.ops and are
shared; only the head's gradient, the compiled call and the device are backend-specific, one
small module each (tensorflow.py, jax.py) with the same functions.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import tempfile
from types import ModuleType

from streamcam.core.errors import UsageError

BACKENDS = ("tensorflow", "jax")
CHOICES = ("auto", *BACKENDS)
DEFAULT = "tensorflow"  # the design's GPU worker; KERAS_BACKEND overrides it


def loaded_backend() -> str | None:
    """The backend Keras already runs on in this process, or None before Keras is imported."""
    keras = sys.modules.get("keras")
    backend = getattr(getattr(keras, "backend", None), "backend", None)
    return backend() if callable(backend) else None


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


# scripts/backend_bench.py, one run on a 2-core CPU: JAX gave 1.42x TensorFlow's images/s at
# batch 1 (TensorFlow's per-call overhead) and 0.94x at batch 8, so 'auto' takes JAX for
# one-frame calls (live) where both are installed, and TensorFlow for batches.
AUTO_JAX_MAX_BATCH = 1


def resolve(name: str | None = None, batch_size: int | None = None) -> str:
    """The backend `name` means: None is Keras's current one, else KERAS_BACKEND, else tensorflow.

    'auto' is the running one; else, for calls of at most AUTO_JAX_MAX_BATCH frames, JAX where
    installed; else TensorFlow where installed, else JAX.
    """
    if name is None:
        name = loaded_backend() or os.environ.get("KERAS_BACKEND") or DEFAULT
    name = name.strip().lower()
    if name == "auto":
        if loaded_backend():
            return loaded_backend()
        if batch_size is not None and batch_size <= AUTO_JAX_MAX_BATCH and installed("jax"):
            return "jax"
        return next((b for b in BACKENDS if installed(b)), DEFAULT)
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(CHOICES)}")
    return name


def use_backend(name: str | None = None, batch_size: int | None = None) -> str:
    """Choose the backend for this process (before Keras is imported) and return its name.

    batch_size: the frames per engine call this process will make, for 'auto' (see resolve)."""
    wanted = resolve(name, batch_size)
    loaded = loaded_backend()
    if loaded is not None and loaded != wanted:
        raise UsageError(
            f"Keras already runs on {loaded} in this process; the {wanted} backend needs a new "
            f"process (set KERAS_BACKEND={wanted} before importing keras)"
        )
    if loaded is None:
        if not installed(wanted):
            hint = "pip install 'streamcam[jax]'" if wanted == "jax" else "pip install tensorflow"
            raise UsageError(f"the {wanted} backend is not installed ({hint})")
        os.environ["KERAS_BACKEND"] = wanted
    return wanted


def active() -> ModuleType:
    """The backend-specific module (backends.tensorflow or backends.jax) for the chosen backend."""
    return importlib.import_module(f"{__name__}.{use_backend()}")


def keras_module() -> ModuleType:
    """Keras on the chosen backend, its framework imported first (quietly)."""
    active().load()
    import keras

    return keras


class _LazyOps:
    """keras.ops, imported on first use, so importing a streamcam module never fixes the backend."""

    _ops = None

    def __getattr__(self, name: str):
        if _LazyOps._ops is None:
            _LazyOps._ops = keras_module().ops
        return getattr(_LazyOps._ops, name)


ops = _LazyOps()


@contextlib.contextmanager
def stderr_fd_silenced():
    """Keep C++ start-up chatter (oneDNN notes, CUDA probes on machines without a GPU) off the terminal.

    The runtimes write to the process's fd 2 before Python logging is set up, so fd 2 points
    elsewhere while they load; what they printed is replayed if the import itself fails.
    """
    fd = 2
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


DEVICES = ("auto", "cpu", "gpu")


def check_device(device: str) -> None:
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")


def uses_gpu(device: str) -> bool:
    check_device(device)
    return device == "gpu" or (device == "auto" and bool(active().gpus()))
