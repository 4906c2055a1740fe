"""Is the head after the target layer global average pooling then linear layers? Then its weights.

For such a head, logits = mean_ij(A_ij) . W + b, so d logit_c / d A_ij = W[:, c] / (h * w), the
same at every cell: every gradient CAM is a function of A and (W, b) alone, and a forward-only
runtime (explain/runtime) can compute it exactly without a backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamcam.core.errors import ModelError

from .head import _flat_layers, cell_head
from .layers import get_layer, is_container

# Layers that are the identity at inference, or linear maps of the pooled vector.
_PASS_THROUGH = ("Dropout", "Flatten", "Reshape", "Identity", "InputLayer")


@dataclass(frozen=True)
class LinearHead:
    """logits = mean over cells of the target map (N, h, w, C) . weights (C, classes) + bias (classes)."""

    weights: np.ndarray
    bias: np.ndarray


def why_not_linear(classifier) -> str | None:
    """None when the head after the target layer is global average pooling then linear layers;
    else why not, in a few words (the CLI's one-line error)."""
    head = classifier.head
    if head.pool is None:
        return "its head is not global pooling (a fixed-size head such as Flatten + Dense)"
    layers = _flat_layers(head.model)
    paths = [path for path, _ in layers]
    pool_at, target_at = paths.index(head.pool), paths.index(classifier.target_layer)
    pool = layers[pool_at][1]
    if type(pool).__name__ != "GlobalAveragePooling2D":
        return f"its global pool {pool.name!r} is {type(pool).__name__}, not average pooling"
    between = [layer for _, layer in layers[target_at + 1 : pool_at] if not is_container(layer)]
    if between:
        return f"layer {between[0].name!r} lies between the target layer and the global pool"
    for _, layer in layers[pool_at + 1 :]:
        if not is_container(layer) and not _is_linear(layer):
            return f"layer {layer.name!r} ({type(layer).__name__}) after the global pool is not linear"
    if not head.local:
        return "its head cannot be run on one feature cell"
    return None


def linear_head(classifier) -> LinearHead:
    """The head's (weights, bias), read by running it on the zero vector and each unit vector
    (the same cell_head the Keras engine's local evidence uses). ModelError when not linear."""
    reason = why_not_linear(classifier)
    if reason is not None:
        raise ModelError(f"model {classifier.name!r}: {reason}")
    from streamcam.backends import ops

    head = classifier.head
    channels = int(_target_channels(classifier))
    cells = np.concatenate([np.zeros((1, channels), np.float32), np.eye(channels, dtype=np.float32)])
    out = ops.convert_to_numpy(ops.cast(cell_head(head.model, head.pool)(cells.reshape(1, 1, -1, channels)), "float32"))
    bias = np.asarray(out[0], np.float32)
    return LinearHead(np.asarray(out[1:] - bias, np.float32), bias)


def _target_channels(classifier) -> int:
    return get_layer(classifier.head.model, classifier.target_layer).output.shape[-1]


def _is_linear(layer) -> bool:
    kind = type(layer).__name__
    if kind in _PASS_THROUGH:
        return True
    if kind in ("Dense", "Activation"):
        return getattr(getattr(layer, "activation", None), "__name__", "") == "linear"
    return False
