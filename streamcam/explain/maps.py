"""From the target layer's activations (and gradients) to the maps an engine returns: one place,
shared by the Keras engine (inside its compiled call) and the OpenVINO runtime (on its outputs),
so the two cannot drift. Written in keras.ops.
"""

from __future__ import annotations

import numpy as np

from streamcam.backends import ops

from .cams import CamMethod, normalize_maps

FLAT_FRAME_RANGE = 2  # grey levels; a frame is flat when every channel's values lie within this range


def structured_frames(images: np.ndarray) -> np.ndarray:
    """(N,) float32: 1 for a frame with spatial structure, 0 for a flat one (black, flat grey, any
    solid colour), whose maps class_maps zeroes. images (N, H, W, 3) pixels 0..255.

    In NumPy before the compiled call: reducing the two leading axes in turn runs over contiguous
    rows (0.2 ms for 8 frames at 224x224), where a graph's reduction over axes (1, 2) with 3
    channels innermost measured 2-5 ms."""
    images = np.asarray(images)
    high = images.max(axis=1).max(axis=1).astype(np.float32)  # (N, 3)
    low = images.min(axis=1).min(axis=1).astype(np.float32)
    return np.any(high - low > FLAT_FRAME_RANGE, axis=1).astype(np.float32)


def class_maps(method: CamMethod, features, grads, targets, model_input, probabilities_fn, structured):
    """Normalised maps (N, K, h, w) of `method` for the (N, K) target classes.

    features (N, h, w, C); grads: K arrays d S_k / d features (N, h, w, C), used by gradient
    methods only; model_input: the preprocessed images, and probabilities_fn(model_input batch)
    -> softmax probabilities, for Score-CAM; structured (N,): structured_frames of the pixels.
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
    return normalize_maps(maps) * ops.cast(structured, "float32")[:, None, None, None]


def pooled_linear_maps(method: CamMethod, features, per_class, targets, structured):
    """class_maps of a gradient or gradient-free method for a pooling-linear head, from the
    per-class gradient columns per_class (N, K, C) (W[:, c] / (h * w), pooled_linear_gradients)
    broadcast over the cells here, inside a compiled call. Not for Score-CAM (it runs the model)."""
    shape = ops.shape(features)
    grads = [ops.broadcast_to(per_class[:, k, None, None, :], shape) for k in range(per_class.shape[1])]
    return class_maps(method, features, grads, targets, None, None, structured)


def cell_probabilities(cell_head, pooled):
    """(N, h*w, classes): the head's softmax on each cell of the pooled map (N, h, w, C) alone, as
    if the whole image looked like that cell (models.head.cell_head): local evidence."""
    logits = ops.cast(cell_head(pooled), "float32")  # (N*h*w, classes)
    return ops.reshape(ops.softmax(logits, axis=-1), (ops.shape(pooled)[0], -1, logits.shape[-1]))  # sizes may be dynamic


def pooled_linear_columns(weights: np.ndarray, targets: np.ndarray, feature_shape) -> np.ndarray:
    """(N, K, C): d logit / d A at any one cell for a head of global average pooling then linear
    layers (models.linear_head), W[:, c] / (h * w) (the same at every cell). weights (C, classes),
    or per image (N, C, classes) (with group columns: group_weights); targets (N, K)."""
    h, w = feature_shape[1:3]
    if weights.ndim == 2:
        return weights.T[targets] / np.float32(h * w)
    return np.take_along_axis(np.swapaxes(weights, 1, 2), targets[:, :, None].astype(np.int64), axis=1) / np.float32(h * w)


def pooled_linear_gradients(weights: np.ndarray, targets: np.ndarray, feature_shape) -> list[np.ndarray]:
    """pooled_linear_columns broadcast over the cells: K arrays d S_k / d A (N, h, w, C)."""
    per_class = pooled_linear_columns(weights, targets, feature_shape)
    return [np.broadcast_to(per_class[:, k, None, None, :], feature_shape) for k in range(targets.shape[1])]


# -- named groups of classes (core.labels.Labels.group) -------------------------------------------
# A group is one more class after the model's: its probability is the sum of its members', so
# its score is logsumexp of their logits (softmax of it over the model's classes is that sum).
# d score / d A is then the members' gradients mixed by their softmax within the group.
_EXCLUDED = -1e30  # a logit that exp() turns to 0 without making NaN gradients, as -inf could


def group_logits(logits, groups):
    """logits (N, classes), groups (G, classes) 0/1 -> (N, classes + G): each group's logsumexp of
    its members' logits appended (nothing appended when G is 0)."""
    if groups.shape[0] == 0:
        return logits
    member = ops.cast(groups, "bool")[None]  # (1, G, classes)
    masked = ops.where(member, logits[:, None, :], ops.full_like(logits[:, None, :], _EXCLUDED))
    return ops.concatenate([logits, ops.logsumexp(masked, axis=-1)], axis=1)


def group_probabilities(probabilities, groups):
    """(..., classes) -> (..., classes + G): each group's summed probability appended."""
    if groups.shape[0] == 0:
        return probabilities
    return ops.concatenate([probabilities, ops.einsum("...c,gc->...g", probabilities, ops.cast(groups, probabilities.dtype))], axis=-1)


def group_weights(weights: np.ndarray, logits: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """A pooling-linear head's weights (C, classes) with each group's column appended, per image:
    (N, C, classes + G). Group g's column is sum_c softmax_g(logits)_c W[:, c], so W / (h * w) stays
    the gradient of every column's score (the group's logsumexp) at every cell."""
    n = len(logits)
    columns = np.broadcast_to(weights[None], (n, *weights.shape))
    if not len(groups):
        return columns
    masked = np.where(groups[None] > 0, logits[:, None, :], -np.inf)  # (N, G, classes)
    mix = np.exp(masked - masked.max(axis=-1, keepdims=True))
    mix /= mix.sum(axis=-1, keepdims=True)
    return np.concatenate([columns, np.einsum("cj,ngj->ncg", weights, mix.astype(np.float32))], axis=2)
