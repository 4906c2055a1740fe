"""Grad-CAM (Selvaraju et al. 2017): channel weight = spatial mean of the gradient."""

from streamcam.backends import ops

from .base import CamMethod


class GradCAM(CamMethod):
    name = "gradcam"

    def channel_weights(self, activations, grads):
        return ops.mean(grads, axis=(1, 2))
