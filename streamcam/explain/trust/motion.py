"""Where each part of the previous frame went: dense optical flow on small grey frames, used to
carry a map from one frame to the next, and to tell a cut (a new shot) from motion.

The flow runs from the current frame to the previous one, so a map is carried by backward
warping: warped(x) = previous(x + flow(x)), which leaves no holes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

FLOW_METHODS = ("dis", "farneback")


@lru_cache(maxsize=8)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    grid_x.flags.writeable = grid_y.flags.writeable = False  # shared between calls
    return grid_x, grid_y


@dataclass(frozen=True)
class Motion:
    """The flow from the current grey frame to the previous one, (h, w, 2) in its pixels."""

    flow: np.ndarray
    _maps: dict = field(default_factory=dict, repr=False, compare=False)  # remap tables per grid, made once

    def warp(self, previous: np.ndarray) -> np.ndarray:
        """previous (H, W) float map, any grid over the same frame, moved to where its content is now."""
        map_x, map_y = self._remap_tables(*previous.shape)
        return cv2.remap(previous.astype(np.float32, copy=False), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def _remap_tables(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        tables = self._maps.get((height, width))
        if tables is None:
            fh, fw = self.flow.shape[:2]
            flow = self.flow
            if (fh, fw) != (height, width):  # the flow on the map's grid: averaged per cell, vectors in its cells
                flow = cv2.resize(self.flow, (width, height), interpolation=cv2.INTER_AREA) * np.float32([width / fw, height / fh])
            grid_x, grid_y = _grid(height, width)
            tables = self._maps[(height, width)] = (grid_x + flow[..., 0], grid_y + flow[..., 1])
        return tables


class MotionCompensator:
    """Feed it each frame's small grey picture in order; it says how the last one moved, or that
    the new frame starts a new shot (its warped predecessor still differs by more than
    cut_residual grey levels on average, or the size changed)."""

    def __init__(self, method: str = "dis", cut_residual: float = 30.0):
        if method not in FLOW_METHODS:
            raise ValueError(f"unknown flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}")
        self.method = method
        self.cut_residual = cut_residual
        self._previous: np.ndarray | None = None
        self._dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST) if method == "dis" else None
        self.last_residual: float | None = None

    def update(self, grey: np.ndarray) -> Motion | None:
        """The motion since the previous frame, or None for the first frame and after a cut."""
        grey = np.ascontiguousarray(grey)  # DIS needs contiguous rows (a luma plane may be a padded view)
        previous, self._previous = self._previous, grey
        self.last_residual = None
        if previous is None or previous.shape != grey.shape:
            return None
        flow = self._flow(grey, previous)
        motion = Motion(flow)
        self.last_residual = float(np.abs(motion.warp(previous.astype(np.float32)) - grey).mean())
        return None if self.last_residual > self.cut_residual else motion

    def _flow(self, current: np.ndarray, previous: np.ndarray) -> np.ndarray:
        if self._dis is not None:
            return self._dis.calc(current, previous, None)
        return cv2.calcOpticalFlowFarneback(current, previous, None, 0.5, 3, 9, 3, 5, 1.1, 0)
