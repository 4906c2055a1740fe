"""CAM methods against closed forms and direct computations on tiny models."""

import numpy as np
import pytest

from streamcam.core.errors import UsageError
from streamcam.explain.cams import METHODS, get_method
from streamcam.explain.cams.scorecam import ScoreCAM
from streamcam.explain.engine import CamEngine

from tiny_models import gap_dense_classifier, nonlinear_head_classifier, random_images, steady_and_varied_classifier


def _minmax(maps):
    maps = np.maximum(maps, 0)
    low = maps.min(axis=(-2, -1), keepdims=True)
    high = maps.max(axis=(-2, -1), keepdims=True)
    return (maps - low) / (high - low)


def test_gradcam_equals_closed_form_cam_for_gap_dense_head():
    clf = gap_dense_classifier()
    images = random_images(3, 16)
    result = CamEngine(clf, "gradcam").explain(images, top_k=2, class_ids=[3])
    features = clf.model.get_layer("features")
    import keras

    a = keras.Model(clf.model.inputs, features.output)(clf.preprocess(images.astype(np.float32))).numpy()
    kernel = clf.model.get_layer("logits").get_weights()[0]  # (C, classes)
    h, w = a.shape[1:3]
    for n in range(3):
        for k, cid in enumerate(result.class_ids[n]):
            cam = np.einsum("hwc,c->hw", a[n], kernel[:, cid] / (h * w))  # CAM with w_kc / (H W)
            np.testing.assert_allclose(result.cams[n, k], _minmax(cam), atol=1e-5)
    assert result.class_ids[:, 2].tolist() == [3, 3, 3]


def test_gradients_match_finite_differences():
    clf = nonlinear_head_classifier()
    images = random_images(1, 12, seed=3)
    engine = CamEngine(clf)
    features, grads = engine.feature_gradients(images, [1])
    import keras

    head_in = keras.Input(features.shape[1:])
    x = head_in
    for layer in clf.model.layers[2:]:
        x = layer(x)
    head = keras.Model(head_in, x)
    rng = np.random.default_rng(0)
    eps = 1e-2
    for _ in range(12):
        idx = tuple(rng.integers(0, s) for s in features.shape[1:])
        plus, minus = features.copy(), features.copy()
        plus[(0, *idx)] += eps
        minus[(0, *idx)] -= eps
        numeric = (head(plus).numpy()[0, 1] - head(minus).numpy()[0, 1]) / (2 * eps)
        assert grads[(0, 0, *idx)] == pytest.approx(numeric, abs=2e-3)


def test_gradcam_plus_plus_matches_direct_higher_order_derivatives():
    """alpha from real 2nd/3rd derivatives of Y = exp(S), computed with nested tapes."""
    import tensorflow as tf

    clf = gap_dense_classifier(num_classes=3, size=6, channels=4)
    images = random_images(1, 6, seed=5)
    kernel = clf.model.get_layer("logits").get_weights()[0]
    cid = int(np.argmax((kernel > 0).sum(axis=0)))  # a class with positive evidence somewhere
    import keras

    a = keras.Model(clf.model.inputs, clf.model.get_layer("features").output)(clf.preprocess(images.astype(np.float32)))
    head = lambda feats: clf.model.get_layer("logits")(clf.model.get_layer("gap")(feats))
    a = tf.Variable(a)
    flat_n = int(np.prod(a.shape))
    with tf.GradientTape(persistent=True) as t3:
        with tf.GradientTape(persistent=True) as t2:
            with tf.GradientTape() as t1:
                y = tf.exp(head(a)[0, cid])
            d1 = t1.gradient(y, a)  # dY/dA
            d1_flat = tf.reshape(d1, [-1])
            d2_diag = tf.linalg.diag_part(tf.reshape(t2.jacobian(d1_flat, a), [flat_n, flat_n]))
        d3_diag = tf.linalg.diag_part(tf.reshape(t3.jacobian(d2_diag, a), [flat_n, flat_n]))
    shape = a.shape
    d1, d2, d3 = d1.numpy(), tf.reshape(d2_diag, shape).numpy(), tf.reshape(d3_diag, shape).numpy()
    av = a.numpy()
    denominator = 2 * d2 + av.sum(axis=(1, 2), keepdims=True) * d3
    alpha = np.where(denominator != 0, d2 / np.where(denominator != 0, denominator, 1), 0)
    weights = (alpha * np.maximum(d1, 0)).sum(axis=(1, 2))  # (1, C)
    assert (weights > 0).sum() >= 2
    expected = _minmax(np.einsum("nhwc,nc->nhw", av, weights))[0]
    result = CamEngine(clf, "gradcam++").explain(images, top_k=0, class_ids=[cid])
    np.testing.assert_allclose(result.cams[0, 0], expected, atol=1e-4)
    # The formula's alpha is not a constant 1/(h w): Grad-CAM++ differs from Grad-CAM here.
    assert not np.allclose(alpha, 1 / 36)


def test_hirescam_and_layercam_on_direct_formulas():
    clf = nonlinear_head_classifier()
    images = random_images(2, 12, seed=7)
    features, grads = CamEngine(clf).feature_gradients(images, [0])
    hires = CamEngine(clf, "hirescam").explain(images, top_k=0, class_ids=[0]).cams[:, 0]
    layer = CamEngine(clf, "layercam").explain(images, top_k=0, class_ids=[0]).cams[:, 0]
    np.testing.assert_allclose(hires, _minmax((grads[:, 0] * features).sum(-1)), atol=1e-5)
    np.testing.assert_allclose(layer, _minmax((np.maximum(grads[:, 0], 0) * features).sum(-1)), atol=1e-5)


def test_xgradcam_weights():
    clf = nonlinear_head_classifier()
    images = random_images(1, 12, seed=8)
    features, grads = CamEngine(clf).feature_gradients(images, [2])
    w = (grads[:, 0] * features).sum(axis=(1, 2)) / (features.sum(axis=(1, 2)) + 1e-7)
    expected = _minmax(np.einsum("nhwc,nc->nhw", features, w))
    got = CamEngine(clf, "xgradcam").explain(images, top_k=0, class_ids=[2]).cams[:, 0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def _eigencam_oracle(features):
    """The first principal component of one image's activations (h, w, C), its sign chosen (as
    documented) so that it correlates positively with the mean activation over channels."""
    flat = features.reshape(-1, features.shape[-1])
    centred = flat - flat.mean(0)
    v = np.linalg.svd(centred, full_matrices=False)[2][0]
    projection = centred @ v
    mean_activation = flat.mean(1)
    sign = 1.0 if projection @ (mean_activation - mean_activation.mean()) >= 0 else -1.0
    return (sign * projection).reshape(features.shape[:2])


def test_eigencam_is_class_agnostic_first_component_with_the_documented_sign():
    clf = nonlinear_head_classifier()
    images = random_images(2, 12, seed=9)
    result = CamEngine(clf, "eigencam").explain(images, top_k=3)
    features, _ = CamEngine(clf).feature_gradients(images, [0])
    for n in range(2):
        np.testing.assert_allclose(result.cams[n, 0], result.cams[n, 1])
        projection = _eigencam_oracle(features[n])
        assert np.abs(_minmax(projection) - _minmax(-projection)).max() > 0.5  # a flipped sign would fail
        np.testing.assert_allclose(result.cams[n, 0], _minmax(projection), atol=1e-4)


# A 2x2 patch offset from a flat background channel by channel; its mean activation is higher
# (the map must show the patch) or lower (the map must show everything else). The mixed pair has
# one principal axis but opposite right signs, so the sign SVD happens to return fails one of them.
PATCH_OFFSETS = {
    "bright-patch": [3.0] * 5,
    "dark-hole": [-2.0] * 5,
    "mixed-brighter": [3.0, 1.0, -3.0, 1.0, 3.0],
    "mixed-darker": [-3.0, -1.0, 3.0, -1.0, -3.0],
}


@pytest.mark.parametrize("offsets", PATCH_OFFSETS.values(), ids=PATCH_OFFSETS.keys())
def test_eigencam_sign_follows_the_mean_activation(offsets):
    import tensorflow as tf

    from streamcam.explain.cams import normalize_maps
    from streamcam.explain.cams.eigencam import EigenCAM

    rng = np.random.default_rng(0)
    a = np.full((1, 6, 6, 5), 3.0) + rng.uniform(0, 0.2, (1, 6, 6, 5))
    a[0, 1:3, 3:5] += offsets
    a = a.astype(np.float32)
    got = normalize_maps(EigenCAM().cam(tf.constant(a), None)).numpy()[0]
    np.testing.assert_allclose(got, _minmax(_eigencam_oracle(a[0])), atol=1e-4)
    patch = np.zeros((6, 6), bool)
    patch[1:3, 3:5] = True
    shown = patch if np.mean(offsets) > 0 else ~patch
    assert got[shown].min() > 0.5 and got[~shown].max() < 0.5


def _features(clf, images):
    import keras

    x = clf.preprocess(images.astype(np.float32))
    return x, keras.Model(clf.model.inputs, clf.model.get_layer("features").output)(x).numpy()


def _scorecam_oracle(clf, x, a, class_id, channels):
    """Score-CAM on one image over the given channels (target grid = input grid, so no upsampling)."""
    import tensorflow as tf

    weights = np.zeros(a.shape[-1])
    for c in channels:
        m = a[..., c]
        m = (m - m.min()) / (m.max() - m.min()) if m.max() > m.min() else np.zeros_like(m)
        weights[c] = tf.nn.softmax(clf.model(x * m[None, ..., None])).numpy()[0, class_id]
    return _minmax(np.einsum("hwc,c->hw", a, weights))


def test_scorecam_weights_are_masked_input_probabilities():
    clf = gap_dense_classifier(size=8, channels=3)
    images = random_images(1, 8, seed=4)
    x, a = _features(clf, images)
    expected = _scorecam_oracle(clf, x, a[0], 1, range(3))
    got = CamEngine(clf, "scorecam").explain(images, top_k=0, class_ids=[1]).cams[0, 0]
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_scorecam_scores_the_highest_variance_channels_as_faster_scorecam_does():
    clf = steady_and_varied_classifier(channels=16)
    images = random_images(2, 8, seed=6)
    x, a = _features(clf, images)
    got = CamEngine(clf, ScoreCAM(max_channels=4)).explain(images, top_k=0, class_ids=[2]).cams[:, 0]
    for n in range(2):
        by_variance = np.argsort(-a[n].var(axis=(0, 1)), kind="stable")[:4]
        by_mean = np.argsort(-a[n].mean(axis=(0, 1)), kind="stable")[:4]
        assert not set(by_variance) & set(by_mean)  # the fixture makes the two choices disagree
        expected = _scorecam_oracle(clf, x[n : n + 1], a[n], 2, by_variance)
        if_by_mean = _scorecam_oracle(clf, x[n : n + 1], a[n], 2, by_mean)
        assert np.abs(expected - if_by_mean).max() > 0.3  # so picking by mean would fail below
        np.testing.assert_allclose(got[n], expected, atol=1e-4)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_batch_equals_one_by_one_and_maps_are_in_unit_range(method):
    clf = nonlinear_head_classifier()
    images = random_images(4, 12, seed=11)
    engine = CamEngine(clf, method)
    batch = engine.explain(images, top_k=2, class_ids=[1])
    for n in range(4):
        single = engine.explain(images[n : n + 1], top_k=2, class_ids=[1])
        np.testing.assert_array_equal(single.class_ids[0], batch.class_ids[n])
        np.testing.assert_allclose(single.cams[0], batch.cams[n], atol=1e-5)
        np.testing.assert_allclose(single.probabilities[0], batch.probabilities[n], atol=1e-6)
    assert np.isfinite(batch.cams).all() and batch.cams.min() >= 0 and batch.cams.max() <= 1


@pytest.mark.parametrize("method", sorted(METHODS))
def test_flat_and_black_frames_give_all_zero_maps(method):
    clf = nonlinear_head_classifier()
    images = np.stack([np.zeros((12, 12, 3), np.uint8), np.full((12, 12, 3), 90, np.uint8)])
    result = CamEngine(clf, method).explain(images, top_k=2)
    assert np.isfinite(result.cams).all()
    assert (result.cams == 0).all()
    assert np.isfinite(result.probabilities).all()


def test_top_n_per_image():
    result = CamEngine(gap_dense_classifier()).explain(random_images(3, 16), top_k=2)
    ids, probs = result.top(3)
    assert ids.shape == probs.shape == (3, 3)
    assert (ids[:, :2] == result.class_ids).all()  # the explained top-2 are the top of the ranking
    assert (np.diff(probs, axis=1) <= 0).all()
    np.testing.assert_allclose(probs, np.take_along_axis(result.probabilities, ids, 1))


def test_method_names():
    assert get_method("gradcam++").name == "gradcam++"
    assert get_method("GradCAMPlusPlus").name == "gradcam++"
    with pytest.raises(UsageError, match="unknown CAM method"):
        get_method("nope")


def test_engine_rejects_bad_shapes_and_classes():
    engine = CamEngine(gap_dense_classifier())
    with pytest.raises(UsageError, match="shape"):
        engine.explain(np.zeros((1, 16, 16), np.uint8))  # no colour axis (any H, W fits a GAP head)
    with pytest.raises(UsageError, match="class id 99 is out of range"):
        engine.explain(random_images(1, 16), class_ids=[99])


def test_engine_traces_once_per_batch_shape():
    engine = CamEngine(gap_dense_classifier())
    images = random_images(2, 16)
    for seed in range(3):
        engine.explain(random_images(2, 16, seed), top_k=1)
    engine.explain(images[:1], top_k=1)
    assert engine._explain.experimental_get_tracing_count() == 2
    padded = engine.explain(images[:1], top_k=1, pad_to=2)  # reuses the batch-2 graph
    assert engine._explain.experimental_get_tracing_count() == 2
    assert padded.cams.shape[0] == 1
    np.testing.assert_allclose(padded.cams[0], engine.explain(images[:1], top_k=1).cams[0], atol=1e-6)
