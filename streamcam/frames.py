"""The unit that flows through the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One decoded, upright video frame.

    index: the frame's number in the source, counted from the file's first frame (0-based), also
        after a seek and with sampling; after a seek in a variable-rate file it is estimated from
        the timestamp (VideoSource.frame_index_estimated says so).
    pts: the presentation timestamp in the source stream's time base (None if unknown).
    time_s: presentation time in seconds.
    rgb: H x W x 3 uint8 array, upright (rotation metadata applied).
    """

    index: int
    pts: int | None
    time_s: float
    rgb: np.ndarray
