"""The unit that flows through the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One decoded, upright video frame.

    index: position among the frames the source yielded (0-based, after sampling).
    pts: the presentation timestamp in the source stream's time base (None if unknown).
    time_s: presentation time in seconds.
    rgb: H x W x 3 uint8 array, upright (rotation metadata applied).
    """

    index: int
    pts: int | None
    time_s: float
    rgb: np.ndarray
