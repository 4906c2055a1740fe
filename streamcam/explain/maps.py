"""From the target layer's activations (and gradients) to the maps an engine returns: one place,
shared by the Keras engine (inside its compiled call) and the OpenVINO runtime (on its outputs),
so the two cannot drift. Written in keras.ops.
"""

from __future__ import annotations

import numpy as np

from streamcam.backends import ops

from .cams import CamMethod, normalize_maps

FLAT_FRAME_RANGE = 2  # grey levels; a frame is flat when every channel's values lie within this range


def class_maps(method: CamMethod, features, grads, targets, model_input, probabilities_fn, pixels):
    """Normalised maps (N, K, h, w) of `method` for the (N, K) target classes.

    features (N, h, w, C); grads: K arrays d S_k / d features (N, h, w, C), used by gradient
    methods only; model_input: the preprocessed images, and probabilities_fn(model_input batch)
    -> softmax probabilities, for Score-CAM; pixels (N, H, W, 3) float 0..255.
    """
    if method.uses_model:
        maps = method.cam_from_model(features, model_input, probabilities_fn, targets)
    elif not method.class_specific:
        maps = ops.repeat(method.cam(features, None)[:, None], targets.shape[1], axis=1)
    else:
        maps = ops.stack([method.cam(features, g) for g in grads], axis=1)
    # A frame with no spatial structure (black, flat grey, any solid colour) has nothing to
    # point at: the maps would only show the network's zero padding at the borders, so they
    # are zeroed. Ranges are per channel: a solid red frame differs across channels, not space.
    channel_range = ops.max(pixels, axis=(1, 2)) - ops.min(pixels, axis=(1, 2))  # (N, 3)
    structured = ops.any(channel_range > FLAT_FRAME_RANGE, axis=1)
    structured = ops.cast(structured, "float32")[:, None, None, None]
    return normalize_maps(maps) * structured


def cell_probabilities(cell_head, pooled):
    """(N, h*w, classes): the head's softmax on each cell of the pooled map (N, h, w, C) alone, as
    if the whole image looked like that cell (models.head.cell_head): local evidence."""
    logits = ops.cast(cell_head(pooled), "float32")  # (N*h*w, classes)
    return ops.reshape(ops.softmax(logits, axis=-1), (ops.shape(pooled)[0], -1, logits.shape[-1]))  # sizes may be dynamic


def pooled_linear_gradients(weights: np.ndarray, targets: np.ndarray, feature_shape) -> list[np.ndarray]:
    """d logit / d A for a head of global average pooling then linear layers (models.linear_head):
    W[:, c] / (h * w) at every cell. weights (C, classes), targets (N, K) -> K arrays (N, h, w, C)."""
    n, h, w, c = feature_shape
    per_class = weights.T[targets] / np.float32(h * w)  # (N, K, C)
    return [np.broadcast_to(per_class[:, k, None, None, :], (n, h, w, c)) for k in range(targets.shape[1])]
