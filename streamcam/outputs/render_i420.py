"""The overlay video's drawing done on the decoder's own YUV 4:2:0 planes (I420).

Blending is linear, and RGB -> YUV is affine, so blending the heatmap's colours into the Y, U and
V planes gives the picture that blending in RGB and converting would (PSNR > 40 dB against it,
tests/test_render_i420.py), without converting the full-size frame to RGB and back: at 720p that
round trip cost more than the drawing. Colours go through the BT.601 limited-range matrix the
video sink's RGB -> I420 conversion uses, so both paths agree.
"""

from __future__ import annotations

from functools import cache, lru_cache

import cv2
import numpy as np

from streamcam.core.frames import i420_planes

from .render import LabelStrip, _rgb_lut, upsample_u8

_BLACK_Y, _GREY_C, _WHITE_Y, _MAX_C = 16, 128, 235, 240  # limited range: black, neutral chroma, white, chroma top


@cache
def _i420_lut(colormap: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The colour map's 256 colours as Y, U and V lookup tables (each 256 x 1 uint8)."""
    blocks = np.repeat(np.repeat(_rgb_lut(colormap).reshape(1, 256, 3), 2, axis=0), 2, axis=1)  # 2x2 per colour
    y, u, v = i420_planes(cv2.cvtColor(blocks, cv2.COLOR_RGB2YUV_I420))
    return (
        np.ascontiguousarray(y[0, ::2]).reshape(256, 1),
        np.ascontiguousarray(u[0]).reshape(256, 1),
        np.ascontiguousarray(v[0]).reshape(256, 1),
    )


@lru_cache(maxsize=64)
def _blend_tables(colormap: str, alpha: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per plane, (frame table, heat table): the frame's share and the heat colour's share of a
    blended value, each rounded, so a blend is two lookups and an add (no float pass over the frame).
    The frame's values are clamped to video range first: values outside it (super-blacks, common in
    phone clips) are what RGB cannot show, and today's RGB blend clipped them too."""
    values = np.arange(256, dtype=np.float64)
    tables = []
    for n, colour in enumerate(_i420_lut(colormap)):
        legal = np.clip(values, _BLACK_Y, _WHITE_Y if n == 0 else _MAX_C)
        frame = np.round(legal * (1.0 - alpha))
        heat = np.round(colour[:, 0] * alpha)
        tables.append((frame.astype(np.uint8).reshape(256, 1), heat.astype(np.uint8).reshape(256, 1)))
    return tables


@lru_cache(maxsize=16)
def _strip_tables(keep: float) -> tuple[np.ndarray, np.ndarray]:
    """Darkening by `keep` as lookups: Y moves towards black, U and V towards neutral grey."""
    values = np.arange(256, dtype=np.float64)
    y = np.round(_BLACK_Y + (values - _BLACK_Y) * keep)
    c = np.round(_GREY_C + (values - _GREY_C) * keep)
    return np.clip(y, 0, 255).astype(np.uint8).reshape(256, 1), np.clip(c, 0, 255).astype(np.uint8).reshape(256, 1)


def overlay(picture, cam: np.ndarray, alpha: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """render.overlay on YUV 4:2:0: the coloured heatmap blended in (alpha = weight of the heatmap).

    picture: an I420 array, or its (Y, U, V) planes (Frame.yuv_planes: no copy of the frame first).
    Returns a new I420 array."""
    planes = i420_planes(picture) if isinstance(picture, np.ndarray) else picture
    height, width = planes[0].shape
    out = np.empty((height * 3 // 2, width), np.uint8)
    for plane, out_plane, (frame_share, heat_share) in zip(planes, i420_planes(out), _blend_tables(colormap, float(alpha))):
        heat = upsample_u8(cam, *plane.shape)  # chroma at its own (half) size: a quarter of the work
        # Written into the output and the heat levels in place: a temporary per step cost more
        # than the lookups (fresh pages for each full-size array).
        cv2.LUT(heat, heat_share, dst=heat)
        cv2.LUT(plane, frame_share, dst=out_plane)
        cv2.add(out_plane, heat, dst=out_plane)
    return out


def paste_rgb(i420: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Draw an RGB patch into an I420 picture at (x, y), both even (whole chroma samples); cut to fit."""
    planes = i420_planes(i420)
    height, width = planes[0].shape
    h = min(patch.shape[0], height - y) // 2 * 2
    w = min(patch.shape[1], width - x) // 2 * 2
    if h <= 0 or w <= 0 or x < 0 or y < 0 or x % 2 or y % 2:
        return
    converted = i420_planes(cv2.cvtColor(np.ascontiguousarray(patch[:h, :w]), cv2.COLOR_RGB2YUV_I420))
    planes[0][y : y + h, x : x + w] = converted[0]
    for plane, source in zip(planes[1:], converted[1:], strict=True):
        plane[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = source


def draw_outlines(i420: np.ndarray, outlines: list[tuple[int, list]], colours, thickness: int = 2) -> None:
    """render.class_outlines drawn on an I420 picture, each in its class's colour (Y at full size,
    U and V at half, from the same BT.601 conversion as everything else)."""
    y, u, v = i420_planes(i420)
    for k, contours in outlines:
        block = np.full((2, 2, 3), colours[k % len(colours)], np.uint8)
        cy, cu, cv = (int(p.flat[0]) for p in i420_planes(cv2.cvtColor(block, cv2.COLOR_RGB2YUV_I420)))
        cv2.drawContours(y, contours, -1, cy, thickness)
        half = [(c // 2).astype(np.int32) for c in contours]
        cv2.drawContours(u, half, -1, cu, max(1, thickness // 2))
        cv2.drawContours(v, half, -1, cv, max(1, thickness // 2))


def _ink(plane: np.ndarray, ink: np.ndarray, value: int) -> None:
    """Blend `value` into plane where the anti-aliased text mask `ink` (0..255) has ink:
    plane * (255 - ink) / 255 + value * ink / 255, each term rounded (OpenCV's saturating uint8
    arithmetic: a tenth of the time of a float pass over the band)."""
    kept = cv2.multiply(plane, cv2.bitwise_not(ink), scale=1 / 255)
    cv2.add(kept, cv2.convertScaleAbs(ink, alpha=value / 255), dst=plane)


def annotate(strip: LabelStrip, i420: np.ndarray, lines: list[str], in_place: bool = False) -> np.ndarray:
    """LabelStrip.annotate on I420: the band darkened, white anti-aliased text on it.
    in_place: draw on `i420` itself (a picture the caller has just made) instead of a copy."""
    if not lines:
        return i420
    h, w = i420_planes(i420)[0].shape
    scale, thickness, band_h, baselines = strip.layout(w, h, len(lines))
    band_h += band_h % 2  # whole chroma rows
    out = i420 if in_place else i420.copy()
    y, u, v = (p[: band_h // (1 if i == 0 else 2)] for i, p in enumerate(i420_planes(out)))
    dark_y, dark_c = _strip_tables(round(1 - strip.opacity, 6))
    for plane, table in ((y, dark_y), (u, dark_c), (v, dark_c)):
        cv2.LUT(plane, table, dst=plane)
    text = np.zeros((band_h, w), np.uint8)
    for line, baseline in zip(lines, baselines):
        cv2.putText(text, line, (8, baseline), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)
    _ink(y, text, _WHITE_Y)
    text_c = cv2.resize(text, (w // 2, band_h // 2), interpolation=cv2.INTER_AREA)
    _ink(u, text_c, _GREY_C)
    _ink(v, text_c, _GREY_C)
    return out
