"""What the model saw over a run, for the summary: the most frequent top-1 classes with their frame
counts and time ranges, and each named class's peaks.

Memory stays small however long the video: per class that was ever top-1, six numbers; per frame,
only the named classes' p and plocal (float32) with the frame's number and time, in arrays that
grow by doubling.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .files import FrameTrust, frame_ranking
from .peaks import curve_prominence, find_peaks

TOP_CLASSES = 5  # top-1 classes the summary lists, the most frequent first
MAX_PEAKS = 10  # peaks listed per named class, the highest (all are counted)


class _Series:
    """Rows of equal width appended one at a time, in a numpy array that doubles when full."""

    def __init__(self, width: int, dtype):
        self._data = np.empty((256, width), dtype)
        self.n = 0

    def append(self, row) -> None:
        if self.n == len(self._data):
            self._data = np.concatenate([self._data, np.empty_like(self._data)])
        self._data[self.n] = row
        self.n += 1

    def array(self) -> np.ndarray:
        return self._data[: self.n]


class _Top1:
    """One class's record as a frame's top-1: frames, first and last time, stretches of consecutive
    frames (runs), and its longest run."""

    __slots__ = ("first_s", "frames", "last_s", "longest", "run_frames", "run_start", "runs")

    def __init__(self, time_s: float):
        self.frames, self.runs, self.first_s, self.last_s = 0, 0, time_s, time_s
        self.run_start, self.run_frames = time_s, 0
        self.longest = (time_s, time_s, 0)  # start, end, frames

    def add(self, time_s: float, continues: bool) -> None:
        if not continues:
            self.runs += 1
            self.run_start, self.run_frames = time_s, 0
        self.frames += 1
        self.run_frames += 1
        self.last_s = time_s
        if self.run_frames > self.longest[2]:
            self.longest = (self.run_start, time_s, self.run_frames)


class SeenClasses:
    """Fed every written frame (FrameWriter); summary() is the summary JSON's `seen`.

    The top-1 of a frame is rank 0 of the predictions CSV: with temporal smoothing the explained
    (held) class, else the most probable. A named class's peaks are found as the review page finds
    them (peaks.find_peaks with curve_prominence) on its p curve and on its plocal curve.
    """

    def __init__(self, labels, tracked: Sequence[int] = ()):
        self.labels = labels
        self.tracked = [int(c) for c in tracked]
        self.frames = 0
        self.smoothed = False
        self._top1: dict[int, _Top1] = {}
        self._previous: int | None = None
        n = len(self.tracked)
        self._when = _Series(2, np.float64)  # frame_index, time_s
        self._p = _Series(n, np.float32)
        self._plocal = _Series(n, np.float32)  # NaN: the model gives no local probabilities

    def add(self, frame_index: int, time_s: float, probabilities: np.ndarray, local: np.ndarray | None, trust: FrameTrust | None) -> None:
        """local: the tracked classes' local probabilities, in order (None: none)."""
        top = frame_ranking(probabilities, trust, 1, self.labels)[0]
        self.smoothed = self.smoothed or (trust is not None and trust.smoothed is not None)
        record = self._top1.get(top)
        if record is None:
            record = self._top1[top] = _Top1(time_s)
        record.add(time_s, continues=self._previous == top)
        self._previous = top
        self.frames += 1
        if self.tracked:
            self._when.append((frame_index, time_s))
            self._p.append(probabilities[self.tracked])
            self._plocal.append(np.nan if local is None else local)

    def summary(self) -> dict:
        """{"top1": {...}, "named": [...]}, JSON-ready (see README, What analyze writes)."""
        ranked = sorted(self._top1.items(), key=lambda item: (-item[1].frames, item[1].first_s))
        top1 = {
            "of": "smoothed" if self.smoothed else "raw",
            "distinct_classes": len(ranked),
            "classes": [self._top1_entry(c, r) for c, r in ranked[:TOP_CLASSES]],
        }
        return {"top1": top1, "named": [self._named_entry(j, c) for j, c in enumerate(self.tracked)]}

    def _top1_entry(self, class_id: int, r: _Top1) -> dict:
        return {
            "class_id": class_id,
            "class_name": self.labels.name(class_id),
            "frames": r.frames,
            "share": round(r.frames / self.frames, 4),
            "first_s": round(r.first_s, 3),
            "last_s": round(r.last_s, 3),
            "runs": r.runs,
            "longest_run": {"start_s": round(r.longest[0], 3), "end_s": round(r.longest[1], 3), "frames": r.longest[2]},
        }

    def _named_entry(self, j: int, class_id: int) -> dict:
        when, p, plocal = self._when.array(), self._p.array()[:, j], self._plocal.array()[:, j]
        has_local = bool(np.isfinite(plocal).any())
        on: dict[int, list[str]] = {}
        for name, curve in (("p", p), ("plocal", plocal)) if has_local else (("p", p),):
            for i in find_peaks(curve, curve_prominence(curve)):
                on.setdefault(i, []).append(name)
        height = np.fmax(p, plocal) if has_local else p
        kept = sorted(sorted(on, key=lambda i: -height[i])[:MAX_PEAKS])
        return {
            "class_id": class_id,
            "class_name": self.labels.name(class_id),
            "p_max": round(float(p.max()), 4) if len(p) else None,
            "plocal_max": round(float(np.nanmax(plocal)), 4) if has_local else None,
            "peaks_found": len(on),
            "peaks": [
                {
                    "frame_index": int(when[i, 0]),
                    "time_s": round(float(when[i, 1]), 3),
                    "p": round(float(p[i]), 4),
                    "plocal": round(float(plocal[i]), 4) if has_local and np.isfinite(plocal[i]) else None,
                    "on": on[i],
                }
                for i in kept
            ],
        }
