"""Grad-CAM (Selvaraju et al. 2017): channel weight = spatial mean of the gradient."""

from .._tf import tensorflow
from .base import CamMethod


class GradCAM(CamMethod):
    name = "gradcam"

    def channel_weights(self, activations, grads):
        return tensorflow().reduce_mean(grads, axis=[1, 2])
