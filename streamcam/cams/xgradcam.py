"""XGrad-CAM (Fu et al. 2020): channel weight = activation-weighted gradient sum / activation sum."""

from .._tf import tensorflow
from .base import CamMethod


class XGradCAM(CamMethod):
    name = "xgradcam"

    def channel_weights(self, activations, grads):
        tf = tensorflow()
        total = tf.reduce_sum(activations, axis=[1, 2])
        return tf.reduce_sum(grads * activations, axis=[1, 2]) / (total + 1e-7)
