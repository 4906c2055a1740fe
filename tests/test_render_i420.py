"""Drawing the overlay on YUV planes gives the colours the RGB blend gives (render_i420.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamcam.core.frames import i420_planes
from streamcam.outputs import render, render_i420

from test_frames import REAL_CLIPS, psnr, real_frames

LINES = ["tabby 0.61  tiger_cat 0.22  Egyptian_cat 0.05", "frame 12  00:00.480  CAM: tabby, traffic_light"]


def blob(h: int = 7, w: int = 7, cx: float = 0.6, cy: float = 0.4) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.exp(-(((x - cx * w) / (0.3 * w)) ** 2 + ((y - cy * h) / (0.3 * h)) ** 2)).astype(np.float32)


def test_the_colour_tables_are_the_colour_maps_in_yuv():
    for name in render.COLORMAPS:
        y, u, v = render_i420._i420_lut(name)
        rgb = render._rgb_lut(name).reshape(1, 256, 3)
        # A 2 x 512 I420 picture, each colour a 2 x 2 block: Y rows, then U and V (256 each).
        i420 = np.concatenate([np.repeat(y.T, 2, axis=1).repeat(2, axis=0), np.concatenate([u.T, v.T], axis=1)])
        back = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)[0, ::2]
        assert psnr(back.reshape(1, 256, 3), rgb) > 38, name  # the RGB -> limited-range YUV round trip


@pytest.mark.parametrize("name", REAL_CLIPS)
@pytest.mark.parametrize(("alpha", "colormap"), [(0.5, "jet"), (0.3, "turbo"), (0.8, "inferno")])
def test_the_i420_overlay_matches_the_rgb_blend(name, alpha, colormap):
    strip = render.LabelStrip()
    for n, frame in enumerate(real_frames(name, 3)):
        cam = blob(cx=0.2 + 0.3 * n)
        # Today's path: RGB blend, label strip, then the sink's RGB -> I420 conversion.
        rgb_path = cv2.cvtColor(strip.annotate(render.overlay(frame.rgb, cam, alpha, colormap), LINES), cv2.COLOR_RGB2YUV_I420)
        i420_path = render_i420.annotate(strip, render_i420.overlay(frame.i420, cam, alpha, colormap), LINES)
        assert i420_path.shape == rgb_path.shape and i420_path.dtype == np.uint8
        assert psnr(i420_path, rgb_path) >= 40.0
        as_rgb = cv2.cvtColor(i420_path, cv2.COLOR_YUV2RGB_I420)
        assert psnr(as_rgb, cv2.cvtColor(rgb_path, cv2.COLOR_YUV2RGB_I420)) >= 40.0


def test_the_strip_darkens_and_writes_white_text():
    grey = np.full((120 * 3 // 2, 320), 128, np.uint8)
    grey[:120] = 180
    out = render_i420.annotate(render.LabelStrip(), grey, ["WWWW"])
    y, u, v = i420_planes(out)
    band = render.LabelStrip().layout(320, 120, 1)[2]
    assert y[:band].min() < 100 and y[:band].max() >= 200  # dark band, white (anti-aliased) ink
    assert np.array_equal(y[band + 2 :], grey[band + 2 : 120])  # below the band: untouched
    assert np.abs(u.astype(int) - 128).max() <= 1 and np.abs(v.astype(int) - 128).max() <= 1  # no colour added
    assert render_i420.annotate(render.LabelStrip(), grey, []) is grey
