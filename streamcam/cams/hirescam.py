"""HiResCAM (Draelos & Carin 2020): gradient times activation at each position, summed over channels.

Unlike Grad-CAM it does not average the gradient first, so the map is faithful to what the
head computes at each position.
"""

from .._tf import tensorflow
from .base import CamMethod


class HiResCAM(CamMethod):
    name = "hirescam"

    def cam(self, activations, grads):
        tf = tensorflow()
        return tf.nn.relu(tf.reduce_sum(grads * activations, axis=-1))
