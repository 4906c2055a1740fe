"""Grad-CAM++ (Chattopadhay et al. 2018), with the closed form the paper derives.

With Y = exp(S) and a head that is piecewise linear in A, dY/dA = Y g, d2Y/dA2 = Y g^2 and
d3Y/dA3 = Y g^3 (g = dS/dA), so the exp(S) factors cancel in
    alpha = g^2 / (2 g^2 + sum_ab A_ab g^3),   alpha = 0 where g = 0,
    w_c = sum_ij alpha_ij * ReLU(g_ij)        (up to the common factor exp(S)).
"""

from streamcam.backends import ops

from .base import CamMethod


class GradCAMPlusPlus(CamMethod):
    name = "gradcam++"

    def channel_weights(self, activations, grads):
        g2 = ops.square(grads)
        g3 = g2 * grads
        sum_a = ops.sum(activations, axis=(1, 2), keepdims=True)
        denominator = 2.0 * g2 + sum_a * g3
        safe = ops.where(denominator == 0.0, ops.ones_like(denominator), denominator)
        alpha = ops.where(grads == 0.0, ops.zeros_like(grads), g2 / safe)
        return ops.sum(alpha * ops.relu(grads), axis=(1, 2))
