"""Loading a Keras weights file into a built model, with one clear error when it does not fit."""

from __future__ import annotations

from pathlib import Path

from streamcam.core.errors import ModelError


def load_keras_weights(model, path: Path) -> None:
    """Keras .weights.h5 / .h5 weights into `model`, or ModelError in one line."""
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        model.load_weights(str(path))
    except Exception as exc:  # h5py/keras raise many types for a file that does not fit
        raise ModelError(f"cannot load weights from {path} into {model.name}: {exc}") from exc
