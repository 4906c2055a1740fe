"""Peaks of a probability series that stand out from their surroundings (numpy only, no scipy).

A peak is a local maximum (a flat top counts once, at its middle) whose prominence is at least
`prominence`: its height minus the higher of the two lowest points between it and the nearest
higher sample on each side (or the series' end). Adjacent high frames thus give one peak.
"""

from __future__ import annotations

import numpy as np

DEFAULT_PROMINENCE = 0.1
# The review page's peaks: on each curve it draws, a peak must stand out by PEAK_SHARE of that
# curve's range (so a named class whose p never passes 0.07 while its plocal spikes to 0.79 still
# has peaks, on plocal), and by at least PEAK_FLOOR of probability (a low curve's frame-to-frame jitter
# has none).
PEAK_SHARE = 0.25
PEAK_FLOOR = 0.05


def curve_prominence(series) -> float:
    """The prominence a peak of this curve needs: PEAK_SHARE of its range, at least PEAK_FLOOR."""
    x = np.asarray(series, dtype=np.float64)
    x = x[np.isfinite(x)]
    return max(PEAK_FLOOR, PEAK_SHARE * float(x.max() - x.min())) if x.size else PEAK_FLOOR


def _local_maxima(x: np.ndarray) -> list[int]:
    """Middles of the flat runs that are higher than both neighbours (the ends count as lower)."""
    maxima, j, n = [], 0, len(x)
    while j < n:
        i = j
        while i + 1 < n and x[i + 1] == x[j]:
            i += 1  # j..i is one flat run
        if (j == 0 or x[j - 1] < x[j]) and (i == n - 1 or x[i + 1] < x[j]):
            maxima.append((j + i) // 2)
        j = i + 1
    return maxima


def prominences(x: np.ndarray, peaks: list[int]) -> np.ndarray:
    out = np.empty(len(peaks))
    for k, p in enumerate(peaks):
        higher_left = np.nonzero(x[:p] > x[p])[0]
        lo = higher_left[-1] + 1 if len(higher_left) else 0
        higher_right = np.nonzero(x[p + 1 :] > x[p])[0]
        hi = p + 1 + higher_right[0] if len(higher_right) else len(x)
        out[k] = x[p] - max(x[lo : p + 1].min(), x[p:hi].min())
    return out


def find_peaks(series, prominence: float = DEFAULT_PROMINENCE) -> list[int]:
    """Indices of the peaks of `series` with at least this prominence, in order."""
    x = np.asarray(series, dtype=np.float64)
    if x.size == 0:
        return []
    peaks = _local_maxima(x)
    if not peaks:
        return []
    prom = prominences(x, peaks)
    return [p for p, q in zip(peaks, prom) if q >= prominence - 1e-12]
