"""The engine at input sizes other than the model's own: pooling heads take any size, fixed heads do not."""

import numpy as np
import pytest

from streamcam.core.errors import UsageError
from streamcam.core.labels import Labels
from streamcam.explain.cams import METHODS
from streamcam.explain.engine import CamEngine
from streamcam.models import Classifier, load_classifier

from tiny_models import gap_dense_classifier, nonlinear_head_classifier, patch_features, patch_pool_classifier


def _keras():
    from streamcam.backends import keras_module

    keras = keras_module()

    return keras


def _images(n, height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def _minmax(maps):
    maps = np.maximum(maps, 0)
    low = maps.min(axis=(-2, -1), keepdims=True)
    return (maps - low) / (maps.max(axis=(-2, -1), keepdims=True) - low)


def _same_conv_relu(x, kernel, bias):
    """A stride-1 'same' convolution with an odd kernel, then ReLU, in numpy."""
    k = kernel.shape[0]
    padded = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    h, w = x.shape[1:3]
    out = sum(padded[:, i : i + h, j : j + w] @ kernel[i, j] for i in range(k) for j in range(k))
    return np.maximum(out + bias, 0.0)


def test_gradcam_at_three_times_the_size_and_another_aspect_is_the_closed_form_cam():
    clf = gap_dense_classifier()  # native 16x16, stride 1
    images = _images(2, 48, 80)
    result = CamEngine(clf, "gradcam").explain(images, top_k=2, class_ids=[1])
    assert result.cams.shape == (2, 3, 48, 80)
    conv = clf.model.get_layer("conv").get_weights()
    a = _same_conv_relu(images / 127.5 - 1.0, *conv)  # (N, 48, 80, C), independent of the engine
    kernel = clf.model.get_layer("logits").get_weights()[0]
    for n in range(2):
        for k, cid in enumerate(result.class_ids[n]):
            cam = np.einsum("hwc,c->hw", a[n], kernel[:, cid] / (48 * 80))  # CAM with w_kc / (H W)
            np.testing.assert_allclose(result.cams[n, k], _minmax(cam), atol=1e-4)  # float32 means over 3840 cells


def _reference_map(method, a, w):
    """A method's map for a GAP -> Dense head, where dS/dA = w / (h w) at every cell, in numpy.

    a: one image's features (h, w, C); w: the class's dense weights (C,).
    """
    cells = a.shape[0] * a.shape[1]
    g = w / cells
    if method == "eigencam":  # first principal component, signed to agree with the mean activation
        flat = a.reshape(cells, -1)
        centred = flat - flat.mean(axis=0)
        projection = centred @ np.linalg.svd(centred, full_matrices=False)[2][0]
        mean = flat.mean(axis=1)
        return _minmax((projection * np.sign(np.sum(projection * (mean - mean.mean())))).reshape(a.shape[:2]))
    if method == "layercam":
        weights = np.maximum(g, 0)
    elif method == "gradcam++":
        alpha = g**2 / (2 * g**2 + a.sum(axis=(0, 1)) * g**3)
        weights = cells * alpha * np.maximum(g, 0)
    else:  # gradcam; hirescam and xgradcam reduce to it when the gradient is the same at every cell
        weights = g
    return _minmax(a @ weights)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_gives_non_square_maps(method):
    clf = patch_pool_classifier(size=16)
    images = _images(2, 24, 56)
    result = CamEngine(clf, method).explain(images, top_k=2, class_ids=[4])
    assert result.cams.shape == (2, 3, 3, 7)
    assert np.isfinite(result.cams).all() and result.cams.min() >= 0 and result.cams.max() <= 1
    assert result.cams.reshape(6, -1).max(axis=1).min() == pytest.approx(1.0)  # structured: not zeroed
    assert result.local_probabilities.shape == (2, 3)
    if method == "scorecam":  # its weights come from masked forward passes: no closed form
        return
    a = patch_features(clf, images)
    kernel = clf.model.get_layer("logits").get_weights()[0]
    for n in range(2):
        for k, cid in enumerate(result.class_ids[n]):
            np.testing.assert_allclose(result.cams[n, k], _reference_map(method, a[n], kernel[:, cid]), atol=1e-4)


def test_traced_once_per_input_size_and_pad_to_reuses_it():
    engine = CamEngine(patch_pool_classifier(size=16))
    for seed in range(3):
        for size in ((16, 16), (24, 40)):
            engine.explain(_images(2, *size, seed), top_k=1)
    assert engine._explain.experimental_get_tracing_count() == 2
    images = _images(1, 24, 40)
    padded = engine.explain(images, top_k=1, pad_to=2)
    assert engine._explain.experimental_get_tracing_count() == 2
    alone = engine.explain(images, top_k=1)
    np.testing.assert_allclose(padded.cams, alone.cams, atol=1e-6)
    np.testing.assert_allclose(padded.local_probabilities, alone.local_probabilities, atol=1e-6)


def test_fixed_head_takes_only_its_size_and_pooling_head_at_least_one_stride():
    fixed = CamEngine(nonlinear_head_classifier(size=12))
    assert fixed.explain(_images(1, 12, 12), top_k=1).local_probabilities is None
    with pytest.raises(UsageError, match="fixed-size head"):
        fixed.explain(_images(1, 12, 8))  # smaller than its input: refused (larger ones are tiled)
    assert fixed.explain(_images(1, 24, 24), top_k=1).local_probabilities.shape == (1, 1)  # tiles
    pooling = CamEngine(patch_pool_classifier(size=16))  # stride 8
    assert pooling.explain(_images(1, 8, 64), top_k=1).cams.shape == (1, 1, 1, 8)
    with pytest.raises(UsageError, match=">= 8"):
        pooling.explain(_images(1, 7, 64))
    with pytest.raises(UsageError, match="shape"):
        pooling.explain(np.zeros((2, 16, 16), np.uint8))


def test_pooling_head_and_stride_of_the_built_in_models(default_classifier):
    assert default_classifier.pooling_head and default_classifier.stride == 32
    assert default_classifier.input_size == (224, 224)  # the native size is still the model's own
    from streamcam.models import vgg16

    model = vgg16.build()  # random weights: the head's kind needs no download
    clf = Classifier("vgg16", model, (224, 224), lambda x: x, ("block5_conv3",), Labels(1000))
    assert not clf.pooling_head and clf.stride == 16  # block5_conv3 comes before block5_pool
    clf.target_layer = ("block5_pool",)
    assert clf.stride == 32  # recomputed for a new target layer


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_pooling_head_and_stride_of_tiny_models(pooling):
    clf = patch_pool_classifier(size=16, patch=8, pooling=pooling)
    assert clf.pooling_head and clf.stride == 8
    assert gap_dense_classifier().stride == 1
    fixed = nonlinear_head_classifier()
    assert not fixed.pooling_head and fixed.stride == 1
    assert fixed.head.model is fixed.model  # a fixed head is never copied


def _squeeze_excite_model(keras, head):
    """conv -> squeeze-excite gate (a global pool inside the trunk) -> strided conv (target) -> head."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inputs)
    gate = keras.layers.GlobalAveragePooling2D(keepdims=True, name="se_pool")(x)
    x = keras.layers.Multiply(name="se")([x, keras.layers.Dense(6, activation="sigmoid", name="se_gate")(gate)])
    x = keras.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x) if head == "gap" else keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))


def test_squeeze_excite_pools_are_not_the_head():
    keras = _keras()
    pooled = Classifier("se-gap", _squeeze_excite_model(keras, "gap"), (16, 16), lambda x: x, ("features",), Labels(3))
    assert pooled.pooling_head and pooled.head.pool == ("head_pool",) and pooled.stride == 2
    result = CamEngine(pooled).explain(_images(1, 16, 40), top_k=1)
    assert result.cams.shape == (1, 1, 8, 20) and result.local_probabilities is not None
    flat = Classifier("se-flatten", _squeeze_excite_model(keras, "flatten"), (16, 16), lambda x: x, ("features",), Labels(3))
    assert not flat.pooling_head and flat.stride == 2
    flat.target_layer = ("c1",)  # before the gate's pool: a candidate, but the Flatten head fixes the size
    assert not flat.pooling_head and flat.stride == 1


def test_guided_backprop_at_a_non_native_size():
    clf = patch_pool_classifier(size=16)
    grads = CamEngine(clf).guided_backprop(_images(1, 24, 40), np.array([[0, 2]]))
    assert grads.shape == (1, 2, 24, 40, 3) and np.abs(grads).max() > 0


# -- Keras model files, nested ones included -------------------------------------------------
def _backbone(keras, pool=None, name="backbone"):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="c2")(x)
    x = keras.layers.Activation("relu", name="a2")(x)
    if pool:
        x = keras.layers.GlobalAveragePooling2D(name="inner_gap")(x)
    return keras.Model(inputs, x, name=name)


def _model_files(keras):
    """name -> (model, whether it has a pooling head); the backbone is a nested model in each."""
    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(_backbone(keras)(inputs))
    gap_after = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(pooled))
    inputs = keras.Input((32, 32, 3))
    inner = _backbone(keras, pool="avg")(inputs)  # keras.applications(..., pooling="avg") style
    gap_inside = keras.Model(inputs, keras.layers.Dense(3, name="logits")(keras.layers.Dropout(0.3)(inner)))
    image = keras.Input((32, 32, 3))
    sequential = keras.Sequential([image, _backbone(keras), keras.layers.GlobalMaxPooling2D(), keras.layers.Dense(3)])
    flatten = keras.Sequential([image, _backbone(keras), keras.layers.Flatten(), keras.layers.Dense(3)])
    return {
        "gap_after": (gap_after, True),
        "gap_inside": (gap_inside, True),
        "sequential_max": (sequential, True),
        "flatten": (flatten, False),
    }


def test_nested_model_files_take_any_size_when_they_pool(tmp_path):
    keras = _keras()
    x32 = _images(2, 32, 32, seed=5)
    for name, (model, pools) in _model_files(keras).items():
        path = tmp_path / f"{name}.keras"
        model.save(path)
        clf = load_classifier(str(path))
        assert clf.target_layer == ("backbone", "a2"), name
        assert (clf.pooling_head, clf.stride, clf.input_size) == (pools, 4, (32, 32)), name
        # The size-free copy computes what the file's model computes (softmax switched to logits).
        logits = clf.model(x32.astype(np.float32)).numpy()
        expected = model(x32.astype(np.float32)).numpy()
        got = np.exp(logits) / np.exp(logits).sum(1, keepdims=True) if name == "gap_after" else logits
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=name)
        engine = CamEngine(clf)
        if pools:
            result = engine.explain(_images(2, 48, 72), top_k=2)
            assert result.cams.shape == (2, 2, 12, 18) and result.local_probabilities.shape == (2, 2), name
        else:
            assert engine.explain(x32, top_k=1).cams.shape == (2, 1, 8, 8)
            with pytest.raises(UsageError, match="fixed-size head"):
                engine.explain(_images(2, 16, 72))  # smaller than its input (larger ones are tiled)


def test_local_probabilities_of_a_nested_pool_match_numpy(tmp_path):
    keras = _keras()
    model, _ = _model_files(keras)["gap_inside"]
    path = tmp_path / "nested.keras"
    model.save(path)
    clf = load_classifier(str(path))
    images = _images(2, 40, 56, seed=6)
    result = CamEngine(clf).explain(images, top_k=2, class_ids=[0])
    backbone = clf.model.get_layer("backbone")  # the size-free copy: its features at 40x56
    features = keras.Model(backbone.inputs, backbone.get_layer("a2").output)(images.astype(np.float32)).numpy()
    kernel, bias = clf.model.get_layer("logits").get_weights()
    logits = features @ kernel + bias  # (N, 10, 14, classes): dropout is off at inference
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    expected = np.take_along_axis(probs.reshape(2, -1, 3).max(axis=1), result.class_ids, axis=1)
    np.testing.assert_allclose(result.local_probabilities, expected, atol=1e-5)


def test_default_model_at_640x352(default_classifier):
    engine = CamEngine(default_classifier)  # a fresh engine, to count its traces
    frames = _images(2, 352, 640, seed=7)
    for _ in range(2):
        result = engine.explain(frames, top_k=3, pad_to=2)
    assert result.cams.shape == (2, 3, 11, 20)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.isfinite(result.cams).all() and result.cams.max() == pytest.approx(1.0)
    local = result.local_probabilities
    assert local.shape == (2, 3) and np.all((local >= 0) & (local <= 1))
    one_cell = engine.explain(_images(2, 32, 32, seed=8), top_k=2)  # a 1x1 grid: the cell is the frame
    assert one_cell.cams.shape == (2, 2, 1, 1)
    np.testing.assert_allclose(one_cell.local_probabilities, np.take_along_axis(one_cell.probabilities, one_cell.class_ids, 1), atol=1e-5)
    engine.explain(frames[:1], top_k=3, pad_to=2)
    assert engine._explain.experimental_get_tracing_count() == 2  # one per size, not per call
