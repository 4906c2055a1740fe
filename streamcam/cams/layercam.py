"""Layer-CAM (Jiang et al. 2021): positive gradients weigh each activation where it is."""

from .._tf import tensorflow
from .base import CamMethod


class LayerCAM(CamMethod):
    name = "layercam"

    def cam(self, activations, grads):
        tf = tensorflow()
        return tf.nn.relu(tf.reduce_sum(tf.nn.relu(grads) * activations, axis=-1))
