"""explain/maps.py: the map code both runtimes share."""

import numpy as np
import pytest

from streamcam.explain.cams import get_method
from streamcam.explain.maps import (
    FLAT_FRAME_RANGE,
    class_maps,
    pooled_linear_columns,
    pooled_linear_gradients,
    pooled_linear_maps,
    structured_frames,
)


def test_structured_frames_flags_exactly_the_frames_whose_channels_vary_beyond_the_range():
    rng = np.random.default_rng(3)
    frames = np.zeros((5, 40, 30, 3), np.uint8)
    frames[0] = rng.integers(0, 256, (40, 30, 3))  # noise: structured
    frames[1] = (200, 10, 90)  # a solid colour: flat although its channels differ
    frames[2] = 128
    frames[2, 39, 29, 1] += FLAT_FRAME_RANGE  # a range of exactly FLAT_FRAME_RANGE: still flat
    frames[3] = 128
    frames[3, 0, 0, 2] += FLAT_FRAME_RANGE + 1  # one pixel of one channel past it: structured
    frames[4] = 255  # white, near the top of uint8 (no wrap-around in the subtraction)
    frames[4, 20, 15] = 0
    expected = [1, 0, 0, 1, 1]
    assert structured_frames(frames).tolist() == expected
    assert structured_frames(frames.astype(np.float32)).tolist() == expected
    assert structured_frames(frames).dtype == np.float32


@pytest.mark.parametrize("method", ["gradcam", "hirescam", "layercam", "xgradcam", "gradcam++", "eigencam"])
def test_pooled_linear_maps_equal_class_maps_on_the_broadcast_gradients(method):
    rng = np.random.default_rng(7)
    features = rng.random((3, 5, 6, 16)).astype(np.float32)
    weights = rng.normal(size=(16, 10)).astype(np.float32)
    targets = np.array([[1, 4], [0, 9], [3, 3]], np.int32)
    structured = np.array([1, 0, 1], np.float32)
    cam = get_method(method)
    grads = pooled_linear_gradients(weights, targets, features.shape)
    want = np.asarray(class_maps(cam, features, grads, targets, None, None, structured))
    got = np.asarray(pooled_linear_maps(cam, features, pooled_linear_columns(weights, targets, features.shape), targets, structured))
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert not got[1].any()  # the flat frame's maps are zeroed
    assert got[0].max() == pytest.approx(1.0)
