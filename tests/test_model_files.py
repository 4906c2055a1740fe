"""Any Keras classifier file: target layer search (nested models too), --layer, and errors."""

import numpy as np
import pytest

from streamcam.core.errors import ModelError
from streamcam.explain.engine import CamEngine
from streamcam.models import load_classifier
from streamcam.models.layers import find_target_layer, resolve_layer, tapped_forward


def _keras():
    from streamcam.backends import keras_module

    keras = keras_module()

    return keras


def _backbone(keras, name="backbone"):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(6, 3, name="c2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.Activation("relu", name="a2")(x)
    return keras.Model(inputs, x, name=name)


def test_vgg_and_effnet_targets():
    from streamcam.models import efficientnet_lite, vgg16

    assert find_target_layer(vgg16.build()) == ("block5_conv3",)
    assert find_target_layer(efficientnet_lite.build()) == ("top_activation",)


def test_nested_functional_and_sequential_models():
    keras = _keras()
    inputs = keras.Input((32, 32, 3))
    y = _backbone(keras)(inputs)
    y = keras.layers.GlobalAveragePooling2D()(y)
    outer = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(y))
    assert find_target_layer(outer) == ("backbone", "a2")
    seq = keras.Sequential([keras.Input((32, 32, 3)), _backbone(keras, "bb2"), keras.layers.Flatten(), keras.layers.Dense(2)])
    assert find_target_layer(seq) == ("bb2", "a2")
    x = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    for model, path in ((outer, ("backbone", "a2")), (seq, ("bb2", "c1"))):
        features, out = tapped_forward(model, path)(x)
        np.testing.assert_allclose(out.numpy(), model(x).numpy(), atol=1e-6)
        inner = model.get_layer(path[0])
        expected = keras.Model(inner.inputs, inner.get_layer(path[1]).output)(x)
        np.testing.assert_allclose(features.numpy(), expected.numpy(), atol=1e-6)


def test_layer_override_and_errors():
    keras = _keras()
    model = keras.Sequential([keras.Input((32, 32, 3)), _backbone(keras), keras.layers.Flatten(), keras.layers.Dense(2)])
    assert resolve_layer(model, "c1") == ("backbone", "c1")
    assert resolve_layer(model, "backbone/c2") == ("backbone", "c2")
    with pytest.raises(ModelError, match="not in model"):
        resolve_layer(model, "nope")
    with pytest.raises(ModelError, match="4-D"):
        resolve_layer(model, model.layers[-1].name)
    dense_only = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    with pytest.raises(ModelError, match="no convolutional layer"):
        find_target_layer(dense_only)


def test_load_keras_file_switches_softmax_to_logits_and_explains(tmp_path):
    keras = _keras()
    inputs = keras.Input((32, 32, 3))
    y = keras.layers.GlobalAveragePooling2D()(_backbone(keras)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(y))
    path = tmp_path / "tiny.keras"
    model.save(path)
    classifier = load_classifier(str(path), layer="c2")
    assert classifier.target_layer == ("backbone", "c2")
    assert classifier.num_classes == 3 and classifier.labels.name(1) == "class_1"
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)
    logits = classifier.model(x).numpy()
    exp = np.exp(logits - logits.max())
    np.testing.assert_allclose(exp / exp.sum(), model(x).numpy(), atol=1e-5)
    result = CamEngine(classifier).explain(x.astype(np.uint8), top_k=2)
    assert result.cams.shape == (1, 2, 28, 28)


def test_bad_model_arguments(tmp_path):
    with pytest.raises(ModelError, match="unknown model"):
        load_classifier("resnet9000")
    with pytest.raises(ModelError, match="not found"):
        load_classifier(str(tmp_path / "missing.keras"))
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ModelError, match="cannot load"):
        load_classifier(str(bad))
    keras = _keras()
    dense = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    path = tmp_path / "dense.keras"
    dense.save(path)
    with pytest.raises(ModelError, match="no convolutional layer"):
        load_classifier(str(path))


def test_preprocess_override(tmp_path):
    from streamcam.core.errors import UsageError
    from streamcam.models import PREPROCESSING

    keras = _keras()
    inputs = keras.Input((32, 32, 3))
    y = keras.layers.GlobalAveragePooling2D()(_backbone(keras)(inputs))
    path = tmp_path / "tiny.keras"
    keras.Model(inputs, keras.layers.Dense(3)(y)).save(path)
    x = np.full((1, 2, 2, 3), 255.0, np.float32)
    assert load_classifier(str(path)).preprocess(x).max() == 255.0  # raw by default
    tf_scaled = load_classifier(str(path), preprocess="tf").preprocess(x)
    np.testing.assert_allclose(np.asarray(tf_scaled), 1.0)
    caffe = np.asarray(PREPROCESSING["caffe"](np.array([[10.0, 20.0, 30.0]])))
    np.testing.assert_allclose(caffe, [[30 - 103.939, 20 - 116.779, 10 - 123.68]])
    with pytest.raises(UsageError, match="preprocessing"):
        load_classifier(str(path), preprocess="nope")
