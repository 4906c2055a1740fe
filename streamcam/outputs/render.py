"""Pictures from CAMs: colour overlays, grey heatmaps, segmented images, guided gradients, label strips.

Every function takes and returns RGB uint8 arrays at the frame's own resolution; CAMs (small
float maps in [0, 1]) are upsampled here, never in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from streamcam.core.errors import UsageError

COLORMAPS = {
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "inferno": cv2.COLORMAP_INFERNO,
    "magma": cv2.COLORMAP_MAGMA,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "hot": cv2.COLORMAP_HOT,
    "plasma": cv2.COLORMAP_PLASMA,
}


def check_colormap(name: str) -> str:
    if name not in COLORMAPS:
        raise UsageError(f"unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}")
    return name


def check_alpha(alpha: float) -> float:
    if not 0.0 <= alpha <= 1.0:
        raise UsageError(f"alpha must be between 0 and 1, got {alpha}")
    return alpha


# Per-frame drawing runs at the video's full resolution, so it stays in OpenCV's uint8 SIMD paths:
# full-size float arrays cost 5-10 ms per 720p frame, these functions under 1 ms each.


def upsample(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    """A CAM (h, w) in [0, 1] resized to (height, width), float32, still in [0, 1]."""
    resized = cv2.resize(cam.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(resized, 0.0, 1.0)


def upsample_u8(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    """A CAM (h, w) in [0, 1] as 0..255 levels at (height, width)."""
    levels = np.round(np.clip(cam, 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.resize(levels, (width, height), interpolation=cv2.INTER_LINEAR)


@cache
def _rgb_lut(colormap: str) -> np.ndarray:
    """OpenCV's colour map as a 256-entry lookup table in RGB order."""
    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], COLORMAPS[check_colormap(colormap)])
    return np.ascontiguousarray(bgr[:, :, ::-1])


def colorize(levels: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """Heat levels (H, W) uint8 -> RGB uint8 through an OpenCV colour map."""
    return cv2.applyColorMap(levels, _rgb_lut(colormap))


HEAT_MODES = ("evidence", "local", "minmax")
# Heat that means something (mode 'evidence', the default): each explained class's map is scaled by
# its evidence, the class's probability for the frame (smoothed, with smoothing). Below
# EVIDENCE_FADE the map fades out entirely; at EVIDENCE_FULL and above it spans the whole colour map
# at full weight. 'local' takes its local probability instead (plocal: its best feature cell, so a
# cyclist filling two of 220 cells counts), which finds small objects but also flags absent ones:
# on the shared dashcam clip traffic_light's plocal passed 0.1 on 189 of 221 frames and the
# bicycle's on 129, while their probabilities stayed below 0.17 and 0.04. 'minmax' is the old
# look: every map stretched to 0..1 on every frame, whatever the evidence.
EVIDENCE_FADE = 0.1
EVIDENCE_FULL = 0.5
_ALPHA_STEP = 0.05  # the heat weight is rounded to this, so the I420 blend tables stay few


def check_heat(mode: str) -> str:
    if mode not in HEAT_MODES:
        raise UsageError(f"unknown heat mode {mode!r}; choose one of {', '.join(HEAT_MODES)}")
    return mode


def evidence_strength(evidence) -> np.ndarray:
    """0 below EVIDENCE_FADE, 1 from EVIDENCE_FULL, linear between: how strongly a map is drawn."""
    return np.clip((np.asarray(evidence, np.float64) - EVIDENCE_FADE) / (EVIDENCE_FULL - EVIDENCE_FADE), 0.0, 1.0)


def heat_to_draw(cams: np.ndarray, evidence=None, alpha: float = 0.5, mode: str = "evidence") -> tuple[np.ndarray, float]:
    """(the map to draw, its weight) for the explained classes' maps cams (K, h, w) in [0, 1].

    evidence (K,): each class's plocal or probability (see EVIDENCE_FADE). With mode 'evidence' each
    map is scaled by its strength, the drawn map is their maximum, and the weight is alpha times the
    strongest one (rounded): absent classes leave the frame as it is. 'minmax' (or no evidence):
    the maximum of the maps as they are, at weight alpha."""
    if mode == "minmax" or evidence is None:
        return cams.max(axis=0), alpha
    strength = evidence_strength(evidence)
    drawn = (cams * strength[:, None, None].astype(np.float32)).max(axis=0)
    return drawn, round(alpha * float(strength.max()) / _ALPHA_STEP) * _ALPHA_STEP


def scales_by_evidence(mode: str) -> bool:
    return mode in ("evidence", "local")


def evidence_of(ids, probabilities, local=None, mode: str = "evidence") -> np.ndarray:
    """(K,) each explained class's evidence: in 'local' heat its local probability where known,
    else (and in every other mode) its probability."""
    values = np.array([probabilities[int(c)] for c in ids], np.float64)
    if mode == "local" and local is not None:
        local = np.asarray(local, np.float64)
        values = np.where(np.isfinite(local), local, values)
    return values


def paste(picture: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Copy patch into picture at (x, y), cut to fit."""
    h = max(0, min(patch.shape[0], picture.shape[0] - y))
    w = max(0, min(patch.shape[1], picture.shape[1] - x))
    if h and w and x >= 0 and y >= 0:
        picture[y : y + h, x : x + w] = patch[:h, :w]


# One colour per explained class when several share an overlay (fill, outlines and legend), in
# order: hues far apart, none of them white or black (the label strip's text and shade).
CLASS_COLOURS = ((255, 60, 60), (255, 0, 255), (0, 235, 235), (255, 200, 0), (90, 255, 0), (60, 110, 255))


def class_colour(k: int, colours=CLASS_COLOURS) -> tuple[int, int, int]:
    return colours[k % len(colours)]


def class_hues(rgb: np.ndarray, cams: np.ndarray, strengths, alpha: float = 0.5, colours=CLASS_COLOURS) -> np.ndarray:
    """Several explained classes in one picture without merging them into one map: each pixel takes
    the colour of the class whose evidence-scaled map is strongest there, blended in as strongly as
    that map reaches (alpha where a class at full evidence peaks); pixels that no drawn class
    reaches, and every faded class, leave the frame as it is. cams (K, h, w) in [0, 1],
    strengths (K,) from evidence_strength."""
    height, width = rgb.shape[:2]
    strengths = np.asarray(strengths, np.float32)
    if not (strengths > 0).any():
        return rgb.copy()
    scaled = np.stack([upsample(cam, height, width) * s for cam, s in zip(cams, strengths, strict=True)])
    winner = scaled.argmax(axis=0)
    weight = (scaled.max(axis=0) * np.float32(alpha))[..., None]
    palette = np.array([class_colour(k, colours) for k in range(len(cams))], np.float32)
    blended = rgb.astype(np.float32) * (1.0 - weight) + palette[winner] * weight
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def class_outlines(cams: np.ndarray, strengths, height: int, width: int, level: float = 0.5) -> list[tuple[int, list]]:
    """[(k, contours)] for each class k drawn (strength > 0): where its evidence-scaled map reaches
    `level` of its own peak, at (height, width): where each class looked, also where another
    class's colour wins the fill (class_hues)."""
    out = []
    for k, (cam, strength) in enumerate(zip(cams, strengths, strict=True)):
        if strength <= 0 or cam.max() <= 0:
            continue
        levels = upsample_u8(cam / cam.max(), height, width)
        _, mask = cv2.threshold(levels, int(255 * level), 255, cv2.THRESH_BINARY)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        out.append((k, contours))
    return out


def legend(names: list[str], evidence, colours=CLASS_COLOURS, scale: float = 0.4) -> np.ndarray:
    """An RGB panel: per class a ramp in its colour (from the fade threshold, dark, to full evidence,
    with the levels its evidence does not reach darkened, as on the colour bar), its name and its
    evidence ('faded' below the threshold). The key to class_hues."""
    row, ramp = 16, 30
    texts = [f"{name} {e:.2f}" + (" faded" if e < EVIDENCE_FADE else "") for name, e in zip(names, evidence, strict=True)]
    width = ramp + 10 + max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for t in texts) + 6
    header = f"colour: evidence {EVIDENCE_FADE:g} to {EVIDENCE_FULL:g}+"
    width = max(width, cv2.getTextSize(header, cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1)[0][0] + 10)
    panel = np.full((row * (len(texts) + 1) + 6, width, 3), 24, np.uint8)
    cv2.putText(panel, header, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (235, 235, 235), 1, cv2.LINE_AA)
    shares = np.linspace(0.15, 1.0, ramp, dtype=np.float32)
    for n, (text, strength) in enumerate(zip(texts, evidence_strength(evidence), strict=True)):
        y = 4 + (n + 1) * row
        colours_across = shares[:, None] * np.float32(class_colour(n, colours))
        colours_across[shares > max(float(strength), 0.15) + 1e-6] *= 0.25  # out of this class's reach
        panel[y + 2 : y + 12, 4 : 4 + ramp] = colours_across.astype(np.uint8)[None]
        cv2.putText(panel, text, (ramp + 10, y + 11), cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), 1, cv2.LINE_AA)
    return panel


def colour_bar(height: int, colormap: str, strength: float, width: int = 14) -> np.ndarray:
    """A labelled vertical colour bar on a dark panel, RGB (height, width + 40, 3): the colour map
    from evidence EVIDENCE_FADE (bottom, '0') to EVIDENCE_FULL and above (top, '1'), with the
    levels the strongest class cannot reach (its strength) darkened, so the bar shows how much
    evidence there is as well as what the colours mean."""
    panel = np.full((height, width + 40, 3), 24, np.uint8)
    levels = np.linspace(255, 0, height)[:, None].repeat(width, axis=1).astype(np.uint8)
    bar = colorize(levels, colormap)
    unreachable = np.linspace(1, 0, height) > strength + 1e-9
    bar[unreachable] = (bar[unreachable] * 0.25).astype(np.uint8)
    panel[:, 36 : 36 + width] = bar
    scale = 0.35
    for text, y in ((f"{EVIDENCE_FULL:g}+", 10), (f"{EVIDENCE_FADE:g}", height - 4)):
        cv2.putText(panel, text, (2, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), 1, cv2.LINE_AA)
    return panel


def overlay(rgb: np.ndarray, cam: np.ndarray, alpha: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """The frame with the coloured heatmap blended in: streamcam.overlay.

    rgb: the picture, (H, W, 3) RGB, uint8 or float in [0, 1] (as pytorch-grad-cam's
    show_cam_on_image takes it); cam: one map (h, w) in [0, 1] at any size, such as a CamBatch's
    cams[n, k], stretched over the picture; alpha: the heatmap's weight. Returns (H, W, 3) uint8 RGB.
    """
    rgb, cam = _picture_u8(rgb), np.asarray(cam)
    if cam.ndim != 2 or 0 in cam.shape:
        raise UsageError(f"expected one map of shape (h, w), got {cam.shape} (pick one: cams[n, k])")
    check_alpha(alpha)
    heat = colorize(upsample_u8(cam, *rgb.shape[:2]), check_colormap(colormap))
    return cv2.addWeighted(heat, alpha, rgb, 1.0 - alpha, 0.0)


def _picture_u8(rgb) -> np.ndarray:
    """An (H, W, 3) picture as uint8: as it is when it already is one, float [0, 1] scaled."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise UsageError(f"expected an RGB picture of shape (H, W, 3), got {rgb.shape}")
    if rgb.dtype == np.uint8:
        return rgb
    if np.issubdtype(rgb.dtype, np.floating) and rgb.size and float(rgb.min()) >= 0.0 and float(rgb.max()) <= 1.0:
        return np.round(rgb * 255).astype(np.uint8)
    raise UsageError(f"expected a uint8 picture or floats in [0, 1], got {rgb.dtype}")


def heatmap_grey(rgb: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """The heatmap alone, grey, at the frame's size (as RGB so every output has three channels)."""
    return cv2.cvtColor(upsample_u8(cam, *rgb.shape[:2]), cv2.COLOR_GRAY2RGB)


def segmented(rgb: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """The frame multiplied by the heatmap: what the class evidence lets through."""
    heat = cv2.cvtColor(upsample_u8(cam, *rgb.shape[:2]), cv2.COLOR_GRAY2RGB)
    return cv2.multiply(rgb, heat, scale=1.0 / 255)


def guided_image(gradient: np.ndarray, height: int, width: int) -> np.ndarray:
    """Guided-backprop gradients (h, w, 3) as a viewable RGB picture (mid grey = zero)."""
    g = gradient.astype(np.float32)
    g = g - g.mean()
    std = g.std()
    g = g / std * 0.15 + 0.5 if std > 0 else np.full_like(g, 0.5)
    picture = np.round(np.clip(g, 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.resize(picture, (width, height), interpolation=cv2.INTER_LINEAR)


def guided_gradcam(gradient: np.ndarray, cam: np.ndarray, height: int, width: int) -> np.ndarray:
    """Guided Grad-CAM: guided gradients masked by the CAM, at the frame's size."""
    heat = upsample(cam, *gradient.shape[:2])
    return guided_image(gradient * heat[..., None], height, width)


@dataclass(frozen=True)
class LabelStrip:
    """A dark band with text lines across the top of a frame, sized to the frame."""

    opacity: float = 0.6

    def layout(self, width: int, height: int, n_lines: int) -> tuple[float, int, int, list[int]]:
        """(font scale, thickness, band height, baseline y of each line that fits)."""
        scale = max(0.35, min(1.2, width / 1400))
        line_h = round(28 * scale) + 4
        band_h = min(height, line_h * n_lines + 8)
        baselines = [4 + line_h * (i + 1) - int(6 * scale) for i in range(n_lines)]
        return scale, 1 if scale < 0.7 else 2, band_h, [y for y in baselines if y <= band_h]

    def annotate(self, rgb: np.ndarray, lines: list[str]) -> np.ndarray:
        if not lines:
            return rgb
        h, w = rgb.shape[:2]
        scale, thickness, band_h, baselines = self.layout(w, h, len(lines))
        out = rgb.copy()
        band = out[:band_h]
        band[:] = (band.astype(np.float32) * (1 - self.opacity)).astype(np.uint8)
        for text, y in zip(lines, baselines):
            cv2.putText(out, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
        return out
