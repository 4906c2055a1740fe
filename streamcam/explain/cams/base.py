"""The shared part of every CAM method.

A method sees the target layer's activations A (N, h, w, C) and, when it uses them, the
gradients g = dS/dA of the class logit S (N, h, w, C), and returns an un-normalised map
(N, h, w). Most methods only choose per-channel weights; the map is then ReLU(sum_c w_c A_c).
The engine does the rest (forward pass, gradients, normalisation) once for all methods.
Methods are written in keras.ops, so they run on every Keras backend.
"""

from __future__ import annotations

from streamcam.backends import ops


class CamMethod:
    name: str = ""
    uses_gradients: bool = True
    uses_model: bool = False  # Score-CAM: needs forward passes on masked inputs
    class_specific: bool = True  # False for Eigen-CAM: one map, whatever the class

    def channel_weights(self, activations, grads):
        """Per-channel weights (N, C). Methods that weigh single positions override cam() instead."""
        raise NotImplementedError

    def cam(self, activations, grads):
        weights = self.channel_weights(activations, grads)
        return ops.relu(ops.einsum("nhwc,nc->nhw", activations, weights))


def normalize_maps(maps, rel_tol: float = 1e-6):
    """Scale each map (..., h, w) to [0, 1] by min-max; a flat or non-finite map becomes all zeros."""
    maps = ops.relu(ops.where(ops.isfinite(maps), maps, ops.zeros_like(maps)))
    low = ops.min(maps, axis=(-2, -1), keepdims=True)
    high = ops.max(maps, axis=(-2, -1), keepdims=True)
    spread = high - low
    flat = spread <= rel_tol * ops.maximum(high, 1e-30)
    scaled = (maps - low) / ops.where(flat, ops.ones_like(spread), spread)
    return ops.clip(ops.where(flat, ops.zeros_like(maps), scaled), 0.0, 1.0)
