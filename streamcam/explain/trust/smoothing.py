"""Steady labels and heatmaps across frames, with a time constant in seconds.

Raw per-frame results flicker: on third-party street clips the top-1 class changed on 23-36% of
frames while the scene barely moved. Three causal filters, fed frame by frame in order (so a live
session gets exactly what a file gets), each driven by the frames' timestamps so that variable
frame rates, --every and --fps behave alike:

- probabilities: an exponential moving average, weight 1 - exp(-dt / seconds) for a frame dt
  seconds after the last. One state per class and exact for any frame spacing; a filter that
  adapts its own speed (one-euro, Kalman) would need a motion model that class scores do not
  have, and the real changes it would follow faster are cuts, which reset the filters instead.
- the explained top classes: hysteresis. A class takes the place of a held one only once its
  smoothed probability has led by `margin` (a fraction of the held class's) for `hold_s` seconds,
  so two near-equal classes do not take turns in the heatmap. The margin is relative because
  models can be unsure: on the overhead road clip no class passes p = 0.03, and an absolute
  lead of 0.05 kept the first frame's class explained all clip long (on 73% of the scored frames
  it was not even the model's top-1).
- the CAMs: the previous smoothed map of the same class is carried to the current frame along
  the optical flow (motion.py), then blended with the new map at the same weight as the
  probabilities. A cut (the warped previous frame still differs wholly) resets all three.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from streamcam.core.errors import UsageError
from streamcam.core.ranking import best_first

from ..results import CamBatch
from .motion import FLOW_METHODS, Motion, MotionCompensator
from .stability import StabilityFigures, map_correlation

DEFAULT_SMOOTH_S = 0.3  # lag after a real change without a cut: about 0.4 s (tests/test_trust_smoothing.py)


@dataclass(frozen=True)
class SmoothingOptions:
    seconds: float = DEFAULT_SMOOTH_S  # the time constant; 0 turns smoothing off
    margin: float = 0.35  # a challenger's smoothed probability must pass the held class's times (1 + margin) ...
    hold_s: float | None = None  # ... for this long before it is explained instead (default: seconds / 2)
    flow: str = "dis"  # optical flow for the maps: 'dis' (OpenCV's DIS, ultrafast preset) or 'farneback'
    flow_width: int = 160  # pixels across of the grey frames the flow runs on
    cut_residual: float = 30.0  # grey levels: a warped previous frame this far off on average means a cut

    def check(self) -> SmoothingOptions:
        if not (self.seconds >= 0 and math.isfinite(self.seconds)):
            raise UsageError(f"--smooth must be 0 (off) or a time in seconds, not {self.seconds:g}")
        if not (self.margin >= 0 and math.isfinite(self.margin)):
            raise UsageError("the smoothing margin must be 0 or more (a fraction of the held class's probability)")
        if self.hold_s is not None and self.hold_s < 0:
            raise UsageError("the smoothing hold time must be 0 or more seconds")
        if self.flow not in FLOW_METHODS:
            raise UsageError(f"unknown flow method {self.flow!r}; choose one of {', '.join(FLOW_METHODS)}")
        if self.flow_width < 16:
            raise UsageError("the flow needs frames at least 16 pixels across")
        return self

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    @property
    def hold(self) -> float:
        return self.seconds / 2 if self.hold_s is None else self.hold_s


def blend_weight(dt: float, seconds: float) -> float:
    """The new value's weight in the moving average, dt seconds after the last frame."""
    if seconds <= 0:
        return 1.0
    return 1.0 - math.exp(-max(dt, 0.0) / seconds)


class ProbabilityEma:
    """Exponential moving average of probability vectors over time (not over frames)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.value: np.ndarray | None = None
        self._time: float | None = None

    def reset(self) -> None:
        self.value, self._time = None, None

    def update(self, probabilities: np.ndarray, time_s: float) -> np.ndarray:
        probabilities = np.asarray(probabilities, np.float64)
        if self.value is None:
            self.value = probabilities.copy()
        else:
            self.value = self.value + blend_weight(time_s - self._time, self.seconds) * (probabilities - self.value)
        self._time = time_s
        return self.value  # a new array each frame: callers may keep it


class TopClassHold:
    """The k explained classes, changed by hysteresis on the smoothed probabilities."""

    def __init__(self, k: int, margin: float, hold_s: float):
        self.k, self.margin, self.hold_s = k, margin, hold_s
        self.held: list[int] = []
        self._leading_since: dict[int, float] = {}  # challenger -> when it began to lead by the margin

    def reset(self) -> None:
        self.held, self._leading_since = [], {}

    def update(self, smoothed: np.ndarray, time_s: float, available: set[int] | None = None, keep: set[int] = frozenset()) -> list[int]:
        """The held classes, best first. available: the classes whose map this frame has (a class
        starts being explained only where it can be drawn); None means all. keep: held classes
        without a new map that may stay held (their last map can be carried along the flow)."""
        if available is None:  # the best few of all classes are enough: k places and one challenger
            ranking = best_first(smoothed, len(self.held) + self.k + 1).tolist()
        else:
            ranking = sorted(available, key=lambda c: (-smoothed[c], c))
        held = [c for c in self.held if available is None or c in available or c in keep]
        for c in ranking:  # fill empty places (the first frame, a cut, a class without its map)
            if len(held) >= self.k:
                break
            if c not in held:
                held.append(c)
        weakest = min(held, key=lambda c: smoothed[c]) if held else None
        challenger = next((c for c in ranking if c not in held), None)
        leading = {}
        if weakest is not None and challenger is not None and smoothed[challenger] > smoothed[weakest] * (1 + self.margin):
            since = self._leading_since.get(challenger, time_s)
            if time_s - since >= self.hold_s:
                held[held.index(weakest)] = challenger
            else:
                leading[challenger] = since
        self._leading_since = leading
        self.held = sorted(held, key=lambda c: -smoothed[c])
        return list(self.held)


class CamSmoother:
    """Per class, the previous smoothed map carried along the flow and blended with the new one.
    A class's state lives only while the class is explained on consecutive frames."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._maps: dict[int, tuple[np.ndarray, float]] = {}
        self.carried: dict[int, np.ndarray] = {}  # the last update's previous maps, moved to its frame

    def previous(self, class_id: int, motion: Motion | None) -> np.ndarray | None:
        """The class's last smoothed map, moved to the current frame (None: no state, or a cut)."""
        state = self._maps.get(class_id)
        if state is None or motion is None:
            return None
        return motion.warp(state[0])

    def can_carry(self, class_id: int, motion: Motion | None) -> bool:
        return motion is not None and class_id in self._maps

    def update(self, maps: dict[int, np.ndarray | None], motion: Motion | None, time_s: float) -> dict[int, np.ndarray]:
        """maps: each shown class's new map, or None for a held class the engine did not explain on
        this frame (its last map is carried along the flow, unblended; see can_carry)."""
        out, states, self.carried = {}, {}, {}
        for class_id, raw in maps.items():
            carried = self.previous(class_id, motion)
            if carried is not None:
                self.carried[class_id] = carried
            if raw is None:
                out[class_id] = carried
                states[class_id] = (carried, self._maps[class_id][1])  # the time of its last real map
            elif carried is None or carried.shape != raw.shape:
                out[class_id] = raw.astype(np.float32)
                states[class_id] = (out[class_id], time_s)
            else:
                weight = blend_weight(time_s - self._maps[class_id][1], self.seconds)
                out[class_id] = np.clip(carried + weight * (raw - carried), 0.0, 1.0).astype(np.float32)
                states[class_id] = (out[class_id], time_s)
        self._maps = states
        return out


class TemporalSmoother:
    """The three filters on a stream of engine results, batch by batch, in frame order.

    Ask the engine for `engine_top_k` classes and `class_ids_to_explain()` (the held classes, so
    their maps are at hand even when they are not the frame's raw top-k, then the tracked ones);
    update() returns the batch with its columns as the pipeline expects them: the held top_k,
    then the tracked classes, their maps smoothed, plus smoothed probabilities and the stability
    figures per frame. `figures` accumulates the clip's figures, with and without smoothing.
    """

    def __init__(self, options: SmoothingOptions, top_k: int, tracked: Sequence[int] = (), classes: int | None = None):
        """classes: the model's own (Labels.num_classes); a named group's column after them is
        never held as a top class (None: every column may be)."""
        self.options = options.check()
        self.top_k, self.tracked = top_k, [int(c) for c in tracked]
        self.classes = classes
        self._probabilities = ProbabilityEma(options.seconds)
        self._hold = TopClassHold(top_k, options.margin, options.hold)
        self._maps = CamSmoother(options.seconds)
        self._motion = MotionCompensator(options.flow, options.cut_residual)
        self._raw_maps = CamSmoother(0.0)  # no blending: only carries the raw map for its figures
        self._last_top: int | None = None
        self._last_raw_top: int | None = None
        self.figures = StabilityFigures()
        self.cuts = 0

    @property
    def engine_top_k(self) -> int:
        """One class more than shown, so a challenger's map is usually there when it takes over."""
        return self.top_k + 1 if self.top_k else 0

    def class_ids_to_explain(self) -> list[int]:
        """The held classes (class 0 until there are any, keeping the engine's call shape), then the tracked."""
        held = self._hold.held + [0] * (self.top_k - len(self._hold.held))
        return held[: self.top_k] + self.tracked

    def update(self, frames: Sequence, batch: CamBatch) -> CamBatch:
        """frames: the batch's frames (each with time_s and small_grey(width)), in order."""
        rows = [self._frame(frame, batch, n) for n, frame in enumerate(frames)]
        ids, cams, local, smoothed, changed, r_prev, raw = (list(column) for column in zip(*rows, strict=True))
        return replace(
            batch,
            class_ids=np.array(ids, np.int64),
            cams=np.stack(cams),
            local_probabilities=None if batch.local_probabilities is None else np.array(local, np.float32),
            probabilities_smoothed=np.stack(smoothed).astype(np.float32),
            top1_changed=np.array(changed, np.int8),
            cam_r_prev=np.array(r_prev, np.float32),
            cams_raw=np.stack(raw),
        )

    def _frame(self, frame, batch: CamBatch, n: int):
        time_s = frame.time_s
        motion = self._motion.update(frame.small_grey(self.options.flow_width))
        if motion is None and self._last_top is not None:  # a cut (or a new size): start afresh
            self.cuts += 1
            self._probabilities.reset()
            self._hold.reset()
        raw_ids = [int(c) for c in batch.class_ids[n]]
        column_of = {}
        for k, c in enumerate(raw_ids):
            column_of.setdefault(c, k)
        smoothed = self._probabilities.update(batch.probabilities[n], time_s)
        carry = {c for c in self._hold.held if c not in column_of and self._maps.can_carry(c, motion)}
        available = {c for c in column_of if self.classes is None or c < self.classes}
        held = self._hold.update(smoothed, time_s, available, keep=carry) if self.top_k else []
        shown = held + self.tracked
        top = held[0] if held else None
        raw_top = raw_ids[0] if self.top_k else None
        maps = self._maps.update({c: batch.cams[n, column_of[c]] if c in column_of else None for c in dict.fromkeys(shown)}, motion, time_s)
        raw_map = {raw_top: batch.cams[n, 0]} if raw_top is not None else {}
        self._raw_maps.update(raw_map, motion, time_s)
        # The explained top class's map before this frame, carried along the flow (each map is
        # warped once, in update): for cam_r_prev.
        previous = self._maps.carried.get(top) if top is not None and top == self._last_top else None
        raw_previous = self._raw_maps.carried.get(raw_top) if raw_top is not None and raw_top == self._last_raw_top else None
        cams = np.stack([maps[c] for c in shown])
        local = (
            None
            if batch.local_probabilities is None
            else [batch.local_probabilities[n, column_of[c]] if c in column_of else np.nan for c in shown]
        )

        changed = int(self._last_top is not None and top != self._last_top)
        raw_changed = int(self._last_raw_top is not None and raw_top != self._last_raw_top)
        r_prev = float("nan") if previous is None else map_correlation(maps[top], previous)
        raw_r_prev = float("nan") if raw_previous is None else map_correlation(raw_map[raw_top], raw_previous)
        self.figures.add(changed, r_prev, raw_changed, raw_r_prev)
        self._last_top, self._last_raw_top = top, raw_top
        raw = np.stack([batch.cams[n, column_of[c]] if c in column_of else np.full(cams.shape[1:], np.nan, np.float32) for c in shown])
        return shown, cams, local, smoothed, changed, r_prev, raw
