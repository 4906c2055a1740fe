"""XGrad-CAM (Fu et al. 2020): channel weight = activation-weighted gradient sum / activation sum."""

from streamcam.backends import ops

from .base import CamMethod


class XGradCAM(CamMethod):
    name = "xgradcam"

    def channel_weights(self, activations, grads):
        total = ops.sum(activations, axis=(1, 2))
        return ops.sum(grads * activations, axis=(1, 2)) / (total + 1e-7)
