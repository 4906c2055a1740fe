import numpy as np
import pytest

from streamcam.explain.engine import CamEngine
from streamcam.explain.guided import guided_model

from tiny_models import nonlinear_head_classifier, random_images, relu_variants_classifier


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
    # Each (image, class) slot holds d logit[class] / d pixels of that image through the guided clone.
    import tensorflow as tf

    clone = guided_model(clf.model)
    for n, k, cid in [(0, 0, 0), (0, 1, 1), (1, 0, 2), (1, 1, 0)]:
        x = tf.constant(images[n : n + 1].astype(np.float32))
        with tf.GradientTape() as tape:
            tape.watch(x)
            logit = clone(clf.preprocess(x))[0, cid]
        np.testing.assert_allclose(grads[n, k], tape.gradient(logit, x).numpy()[0], rtol=1e-5, atol=1e-7)


def _layer_outputs(model, name, x):
    import keras

    return keras.Model(model.inputs, model.get_layer(name).output)(x).numpy()


def test_guided_clone_keeps_the_exact_forward_pass_of_every_relu_flavour():
    clf = relu_variants_classifier()
    x = clf.preprocess(random_images(3, 10, seed=4).astype(np.float32))
    # The input really reaches every region of ReLU(negative_slope=0.1, threshold=0.5, max_value=4).
    pre = _layer_outputs(clf.model, "conv1", x)
    assert (pre < 0.5).any() and ((pre > 0.5) & (pre < 4)).any() and (pre > 4).any()
    assert (_layer_outputs(clf.model, "leaky_layer", x) < 0).any()
    assert (_layer_outputs(clf.model, "features", x) == 6).any()
    clone = guided_model(clf.model)
    for name in ("relu_options", "leaky_layer", "features", "leaky_activation", "logits"):
        np.testing.assert_allclose(_layer_outputs(clone, name, x), _layer_outputs(clf.model, name, x), rtol=1e-6, atol=1e-6, err_msg=name)


# (layer, pre-activations z, active region (low, high)): the guided gradient is dy where dy > 0 and
# low < z < high, else 0. The leaky (negative-slope) side counts as inactive.
CASES = [
    ("relu_options", [-2.0, 0.3, 0.5, 0.6, 2.0, 3.9, 4.5], (0.5, 4.0)),
    ("leaky_layer", [-3.0, -0.1, 0.0, 0.2, 5.0], (0.0, np.inf)),
    ("features", [-1.0, 0.5, 5.9, 6.5], (0.0, 6.0)),
    ("leaky_activation", [-3.0, -0.1, 0.2, 5.0], (0.0, np.inf)),
]


@pytest.mark.parametrize(("name", "z", "region"), CASES, ids=[c[0] for c in CASES])
def test_guided_relu_flavours_pass_back_positive_gradients_from_active_units_only(name, z, region):
    import tensorflow as tf

    clf = relu_variants_classifier()
    clone = guided_model(clf.model)
    original, guided = clf.model.get_layer(name), clone.get_layer(name)
    # Conv layers apply their activation inside; use the activation alone.
    op = getattr(guided, "activation", guided) if name == "features" else guided
    reference = original.activation if name == "features" else original
    z = tf.constant([z + z])  # each pre-activation twice: once with dy > 0, once with dy < 0
    dy = np.array([[2.0] * (z.shape[1] // 2) + [-2.0] * (z.shape[1] // 2)])
    with tf.GradientTape() as tape:
        tape.watch(z)
        y = op(z)
    grad = tape.gradient(y, z, output_gradients=tf.constant(dy, tf.float32)).numpy()
    np.testing.assert_allclose(y.numpy(), reference(z).numpy(), rtol=0, atol=0)
    zs = z.numpy()
    expected = np.where((dy > 0) & (zs > region[0]) & (zs < region[1]), dy, 0.0)
    np.testing.assert_array_equal(grad, expected)
