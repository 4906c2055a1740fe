import numpy as np

from streamcam.engine import CamEngine
from streamcam.guided import guided_model
from tiny_models import nonlinear_head_classifier, random_images


def test_guided_model_has_same_outputs_and_positive_only_relu_gradients():
    import tensorflow as tf

    clf = nonlinear_head_classifier()
    clone = guided_model(clf.model)
    x = clf.preprocess(random_images(2, 12).astype(np.float32))
    np.testing.assert_allclose(clone(x).numpy(), clf.model(x).numpy(), atol=1e-6)
    # The gradient through a guided ReLU is dy * (x > 0) * (dy > 0).
    layer = clone.get_layer("head_conv")
    z = tf.constant([[-1.0, 0.5, 2.0]])
    with tf.GradientTape() as tape:
        tape.watch(z)
        y = layer.activation(z)
    g = tape.gradient(y, z, output_gradients=tf.constant([[1.0, -1.0, 3.0]]))
    np.testing.assert_array_equal(g.numpy(), [[0.0, 0.0, 3.0]])


def test_guided_backprop_shapes_and_class_dependence():
    clf = nonlinear_head_classifier()
    engine = CamEngine(clf)
    images = random_images(2, 12, seed=2)
    grads = engine.guided_backprop(images, np.array([[0, 1], [2, 0]]))
    assert grads.shape == (2, 2, 12, 12, 3)
    assert np.isfinite(grads).all() and np.abs(grads).max() > 0
    assert not np.allclose(grads[0, 0], grads[0, 1])
