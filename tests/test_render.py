import numpy as np
import pytest

from streamcam.core.errors import UsageError
from streamcam.outputs import render


@pytest.fixture
def frame():
    rgb = np.zeros((90, 160, 3), np.uint8)
    rgb[:, :, 1] = 200
    return rgb


@pytest.fixture
def cam():
    c = np.zeros((7, 7), np.float32)
    c[1, 5] = 1.0  # hot spot: upper right
    return c


def test_overlay_is_at_frame_resolution_and_hot_where_the_cam_is(frame, cam):
    out = render.overlay(frame, cam, alpha=0.6, colormap="jet")
    assert out.shape == frame.shape and out.dtype == np.uint8
    # JET is red at 1 and blue at 0: the hot spot is redder than a cold corner.
    assert out[20, 125, 0] > out[80, 10, 0] + 50
    assert out[80, 10, 2] > out[20, 125, 2]


def test_heatmap_and_segmented(frame, cam):
    grey = render.heatmap_grey(frame, cam)
    assert grey.shape == frame.shape and grey[20, 125, 0] > 200 and grey[80, 10, 0] == 0
    seg = render.segmented(frame, cam)
    assert seg[80, 10].tolist() == [0, 0, 0] and seg[20, 125, 1] > 150


def test_all_zero_cam_gives_black_heatmap_and_pure_blue_overlay(frame):
    zero = np.zeros((7, 7), np.float32)
    assert render.heatmap_grey(frame, zero).max() == 0
    assert render.segmented(frame, zero).max() == 0


def test_guided_images_keep_colour_order_and_size():
    g = np.zeros((8, 8, 3), np.float32)
    g[..., 0] = 1.0  # gradient only in the red channel
    out = render.guided_image(g, 16, 24)
    assert out.shape == (16, 24, 3)
    assert out[..., 0].mean() > out[..., 2].mean()  # red stays red (the ancestor swapped it with blue)
    out = render.guided_image(np.zeros((4, 4, 3)), 4, 4)
    assert out.min() == out.max() == 128  # zero gradient is mid grey


def test_label_strip_draws_text_in_a_band(frame):
    out = render.LabelStrip().annotate(frame, ["0: traffic_light 0.105", "t=00:01.000 frame 25"])
    assert out.shape == frame.shape
    assert not np.array_equal(out[:10], frame[:10])
    np.testing.assert_array_equal(out[-5:], frame[-5:])


def test_validation():
    with pytest.raises(UsageError):
        render.check_colormap("rainbow-unicorn")
    with pytest.raises(UsageError):
        render.check_alpha(1.5)
