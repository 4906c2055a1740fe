"""streamcam: see what an image classifier looks at, frame by frame.

Importing streamcam is cheap: Keras and its backend (TensorFlow by default, or JAX: see
use_backend) load only when a model or engine is first used.
"""

from __future__ import annotations

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "load_classifier": "streamcam.models",
    "Classifier": "streamcam.models",
    "CamEngine": "streamcam.engine",
    "build_engine": "streamcam.engine",
    "use_backend": "streamcam.backends",
    "CamBatch": "streamcam.engine",
    "ImageExplainer": "streamcam.images",
    "Frame": "streamcam.frames",
    "Labels": "streamcam.labels",
    "StreamcamError": "streamcam.errors",
    "InputError": "streamcam.errors",
    "ModelError": "streamcam.errors",
    "UsageError": "streamcam.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'streamcam' has no attribute {name!r}")
