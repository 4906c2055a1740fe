"""Eigen-CAM (Muhammad & Yeasin 2020): the first principal component of the activations.

No gradients and no class: every requested class gets the same map. The sign of a principal
component is arbitrary, so it is chosen to agree with the mean activation.
"""

from streamcam.backends import ops

from .base import CamMethod


class EigenCAM(CamMethod):
    name = "eigencam"
    uses_gradients = False
    class_specific = False

    def cam(self, activations, grads=None):
        n, h, w, c = ops.shape(activations)
        flat = ops.reshape(activations, (n, h * w, c))
        centred = flat - ops.mean(flat, axis=1, keepdims=True)
        _, _, vh = ops.svd(centred, full_matrices=False)  # NumPy's convention: right singular vectors are rows
        projection = ops.einsum("npc,nc->np", centred, vh[:, 0, :])
        mean_activation = ops.mean(flat, axis=2)
        sign = ops.sign(ops.sum(projection * (mean_activation - ops.mean(mean_activation, axis=1, keepdims=True)), axis=1))
        sign = ops.where(sign == 0.0, ops.ones_like(sign), sign)
        return ops.relu(ops.reshape(projection * sign[:, None], (n, h, w)))
