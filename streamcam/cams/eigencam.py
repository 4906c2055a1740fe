"""Eigen-CAM (Muhammad & Yeasin 2020): the first principal component of the activations.

No gradients and no class: every requested class gets the same map. The sign of a principal
component is arbitrary, so it is chosen to agree with the mean activation.
"""

from .._tf import tensorflow
from .base import CamMethod


class EigenCAM(CamMethod):
    name = "eigencam"
    uses_gradients = False
    class_specific = False

    def cam(self, activations, grads=None):
        tf = tensorflow()
        n, h, w, c = (tf.shape(activations)[i] for i in range(4))
        flat = tf.reshape(activations, [n, h * w, c])
        centred = flat - tf.reduce_mean(flat, axis=1, keepdims=True)
        _, _, v = tf.linalg.svd(centred, full_matrices=False)
        projection = tf.einsum("npc,nc->np", centred, v[:, :, 0])
        mean_activation = tf.reduce_mean(flat, axis=2)
        sign = tf.sign(tf.reduce_sum(projection * (mean_activation - tf.reduce_mean(mean_activation, 1, keepdims=True)), 1))
        sign = tf.where(tf.equal(sign, 0.0), tf.ones_like(sign), sign)
        return tf.nn.relu(tf.reshape(projection * sign[:, None], [n, h, w]))
