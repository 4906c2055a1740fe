"""streamcam: see what an image classifier looks at, frame by frame.

The public API, re-exported from where each name lives (see README "How it fits together"):
cli -> apps -> outputs -> explain / video -> models -> backends -> core.
Importing streamcam is cheap: Keras and its backend (TensorFlow by default, or JAX: see
use_backend) load only when a model or engine is first used.
"""

from __future__ import annotations

from importlib import import_module

from streamcam.core.version import __version__ as __version__

_EXPORTS = {
    "load_classifier": "streamcam.models",
    "Classifier": "streamcam.models",
    "use_backend": "streamcam.backends",
    "CamEngine": "streamcam.explain.engine",
    "build_engine": "streamcam.explain.runtime",
    "CamBatch": "streamcam.explain.results",
    "NullEngine": "streamcam.explain.null_engine",
    "SmoothingOptions": "streamcam.explain.trust",
    "TemporalSmoother": "streamcam.explain.trust",
    "analyze": "streamcam.apps.analyze",
    "AnalyzeOptions": "streamcam.apps.analyze",
    "AnalyzeSummary": "streamcam.apps.analyze",
    "ImageExplainer": "streamcam.apps.image",
    "explain_video": "streamcam.apps.frames",
    "FrameResult": "streamcam.apps.frames",
    "overlay": "streamcam.outputs.render",
    "resize_batch": "streamcam.core.preprocess",
    "VideoSource": "streamcam.video.source",
    "Frame": "streamcam.core.frames",
    "Labels": "streamcam.core.labels",
    "StreamcamError": "streamcam.core.errors",
    "InputError": "streamcam.core.errors",
    "ModelError": "streamcam.core.errors",
    "UsageError": "streamcam.core.errors",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'streamcam' has no attribute {name!r}")
