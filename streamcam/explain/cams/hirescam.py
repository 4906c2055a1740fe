"""HiResCAM (Draelos & Carin 2020): gradient times activation at each position, summed over channels.

Unlike Grad-CAM it does not average the gradient first, so the map is faithful to what the
head computes at each position.
"""

from streamcam.backends import ops

from .base import CamMethod


class HiResCAM(CamMethod):
    name = "hirescam"

    def cam(self, activations, grads):
        return ops.relu(ops.sum(grads * activations, axis=-1))
