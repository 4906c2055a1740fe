"""resize_rgb (preprocess.py): fast filters that give the area filter's picture."""

from __future__ import annotations

import numpy as np
import pytest

from streamcam.core.preprocess import resize_batch, resize_rgb

from test_frames import REAL_CLIPS, area_resize, psnr, real_frames, today_rgb

# Every branch from a 960x540 .. 1280x720 frame: more than halving (the linear step to twice the
# size, then exact 2:1), exact halving, shrinking by less than half, enlarging, one side only.
SIZES = [(224, 224), (180, 320), (270, 480), (352, 640), (480, 848), (720, 1280), (900, 1600), (224, 1000)]


@pytest.mark.parametrize("name", REAL_CLIPS[:2])
@pytest.mark.parametrize("size", SIZES)
def test_resize_matches_the_area_filter_on_real_frames(name, size):
    for frame in real_frames(name, n=3):
        rgb = today_rgb(frame)
        out = resize_rgb(rgb, size)
        assert out.shape == (*size, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
        assert psnr(out, area_resize(rgb, size)) >= 40.0, (rgb.shape, size)


def test_resize_keeps_grey_pictures_and_same_size_frames():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (300, 500), dtype=np.uint8)
    assert resize_rgb(grey, (200, 300)).shape == (200, 300)
    rgb = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    assert np.array_equal(resize_rgb(rgb[:, ::-1], (64, 96)), rgb[:, ::-1])  # a view in, a contiguous copy out
    assert resize_batch([rgb, rgb], 32).shape == (2, 32, 32, 3)
