"""explain/runtime/pixel_input.py: the classifier's preprocessing found as an affine map of the
pixels, and run inside the OpenVINO model on uint8 frames."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from streamcam.backends import ops
from streamcam.explain.runtime.pixel_input import affine_pixels
from streamcam.models import PREPROCESSING

from tiny_models import gap_dense_classifier, random_images


@pytest.mark.parametrize("name", list(PREPROCESSING))
def test_each_built_in_scaling_is_found_as_an_affine_map(name):
    preprocess = PREPROCESSING[name]
    matrix, offset = affine_pixels(preprocess)
    pixels = np.random.default_rng(1).integers(0, 256, (2, 5, 7, 3)).astype(np.float32)
    expected = np.asarray(ops.convert_to_numpy(preprocess(pixels)))
    np.testing.assert_allclose(pixels @ matrix + offset, expected, rtol=1e-6, atol=1e-4)


def test_the_caffe_scaling_swaps_red_and_blue():
    matrix, offset = affine_pixels(PREPROCESSING["caffe"])
    np.testing.assert_array_equal(matrix, np.eye(3, dtype=np.float32)[::-1])
    np.testing.assert_allclose(offset, [-103.939, -116.779, -123.68], rtol=1e-6)


def _raises(x):
    raise ValueError("needs a 224x224 image")


@pytest.mark.parametrize(
    "preprocess",
    [
        lambda x: np.sqrt(x),  # not linear
        lambda x: np.clip(x, 0, 200) / 200,  # linear below 200 only
        lambda x: x - x.mean(),  # depends on the other pixels
        lambda x: x[:, :, ::-1],  # moves pixels
        lambda x: x[:, :1],  # crops
        _raises,
    ],
    ids=["sqrt", "clip", "image-mean", "mirror", "crop", "raises"],
)
def test_a_preprocess_that_is_not_a_per_pixel_affine_map_is_refused(preprocess):
    assert affine_pixels(preprocess) is None


openvino = pytest.importorskip("openvino", reason="OpenVINO not installed (pip install 'streamcam[openvino]')")


def test_uint8_frames_take_the_pixel_model_and_give_what_float_pixels_give():
    from streamcam.explain.engine import CamEngine
    from streamcam.explain.runtime.openvino_engine import OpenVinoEngine

    classifier = gap_dense_classifier()
    engine = OpenVinoEngine(classifier, "gradcam", "float32")
    images = random_images(5, 48)
    assert images.dtype == np.uint8 and set(engine._compiled) == {("pixels", "f32")}  # frames' model compiled at load
    from_pixels = engine.explain(images, top_k=2)
    from_floats = engine.explain(images.astype(np.float32), top_k=2)  # preprocessed in NumPy, the float model
    assert set(engine._compiled) == {("pixels", "f32"), ("preprocessed", "f32")}
    np.testing.assert_array_equal(from_pixels.class_ids, from_floats.class_ids)
    np.testing.assert_allclose(from_pixels.probabilities, from_floats.probabilities, atol=1e-6)
    np.testing.assert_allclose(from_pixels.cams, from_floats.cams, atol=1e-5)
    keras = CamEngine(classifier, "gradcam", "cpu").explain(images, top_k=2)
    np.testing.assert_allclose(from_pixels.probabilities, keras.probabilities, atol=1e-5)
    np.testing.assert_allclose(from_pixels.cams, keras.cams, atol=1e-4)


def test_a_preprocess_that_is_not_affine_runs_in_numpy_before_the_float_model():
    from streamcam.explain.engine import CamEngine
    from streamcam.explain.runtime.openvino_engine import OpenVinoEngine

    classifier = dataclasses.replace(gap_dense_classifier(), preprocess=lambda t: ops.sqrt(t) / 8.0 - 1.0)
    engine = OpenVinoEngine(classifier, "gradcam", "float32")
    assert "pixels" not in engine._models
    images = random_images(4, 32)
    got, expected = engine.explain(images, top_k=1), CamEngine(classifier, "gradcam", "cpu").explain(images, top_k=1)
    assert set(engine._compiled) == {("preprocessed", "f32")}
    np.testing.assert_array_equal(got.class_ids, expected.class_ids)
    np.testing.assert_allclose(got.probabilities, expected.probabilities, atol=1e-5)
    np.testing.assert_allclose(got.cams, expected.cams, atol=1e-4)
