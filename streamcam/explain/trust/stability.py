"""How steady a clip's explanations were: the top-1 flip rate and how alike each frame's map is to
the previous one's (after motion compensation), with smoothing and without, so the gain shows."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def map_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r of two maps of one grid; 1.0 for two flat maps that are equal, NaN for one flat map."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a @ a) * (b @ b)))
    if norm < 1e-12:
        return 1.0 if np.allclose(a, b, atol=1e-6) else float("nan")
    return float(a @ b) / norm


def _percentile(values: list[float], q: float) -> float | None:
    known = [v for v in values if not math.isnan(v)]
    return round(float(np.percentile(known, q)), 4) if known else None


@dataclass
class StabilityFigures:
    """Per-frame figures gathered over a clip (a few numbers a frame: memory stays flat enough
    for hours of video), summarised for the run's summary JSON."""

    changed: list[int] = field(default_factory=list)
    r_prev: list[float] = field(default_factory=list)
    raw_changed: list[int] = field(default_factory=list)
    raw_r_prev: list[float] = field(default_factory=list)

    def add(self, changed: int, r_prev: float, raw_changed: int, raw_r_prev: float) -> None:
        self.changed.append(changed)
        self.r_prev.append(r_prev)
        self.raw_changed.append(raw_changed)
        self.raw_r_prev.append(raw_r_prev)

    @staticmethod
    def _summary(changed: list[int], r_prev: list[float]) -> dict:
        pairs = max(len(changed) - 1, 0)  # the first frame has nothing to change from
        return {
            "top1_flip_rate": round(sum(changed) / pairs, 4) if pairs else None,
            "cam_r_prev_median": _percentile(r_prev, 50),
            "cam_r_prev_p10": _percentile(r_prev, 10),
        }

    def summary(self) -> dict:
        """{'smoothed': {...}, 'raw': {...}}: top1_flip_rate, cam_r_prev_median, cam_r_prev_p10."""
        return {"smoothed": self._summary(self.changed, self.r_prev), "raw": self._summary(self.raw_changed, self.raw_r_prev)}
