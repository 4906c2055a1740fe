"""Layer-CAM (Jiang et al. 2021): positive gradients weigh each activation where it is."""

from streamcam.backends import ops

from .base import CamMethod


class LayerCAM(CamMethod):
    name = "layercam"

    def cam(self, activations, grads):
        return ops.relu(ops.sum(ops.relu(grads) * activations, axis=-1))
