"""What the review page needs from each analysed frame, kept small: a JPEG and uint8 CAM grids.

The collector is an extra consumer of analyze's consume stage (see analyze.analyze's `collectors`),
so review pages come from the same pipeline and sinks as the other outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

MAX_WIDTH = 960  # the page shows frames at most this wide; bigger would only grow the file
JPEG_QUALITY = 85


def encode_jpeg(rgb: np.ndarray, max_width: int = MAX_WIDTH, quality: int = JPEG_QUALITY) -> bytes:
    h, w = rgb.shape[:2]
    if w > max_width:
        rgb = cv2.resize(rgb, (max_width, max(1, round(h * max_width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


@dataclass
class ReviewFrame:
    index: int
    pts: int | None
    time_s: float
    jpeg: bytes
    probabilities: np.ndarray  # (classes,) float16: series for any class, 2 KB a frame
    cams: dict = field(default_factory=dict)  # class id -> (h, w) uint8 grid
    plocal: dict = field(default_factory=dict)  # class id -> local probability
    faith: dict = field(default_factory=dict)  # class id -> removal score, on scored frames (explain.trust.faithfulness)


class ReviewCollector:
    """Receives (frame, results row) from the consume stage and keeps what the page shows."""

    def __init__(self, tracked=(), top_n: int = 5):
        self.tracked = [int(c) for c in tracked]
        self.top_n = top_n
        self.frames: list[ReviewFrame] = []
        self.size: tuple[int, int] | None = None  # (width, height) of the source frames

    def add(self, frame, probs: np.ndarray, ids: np.ndarray, cams: np.ndarray, local: np.ndarray | None, trust=None) -> None:
        """ids (K,), cams (K, h, w) in [0, 1], local (K,) or None: the explained classes of this frame;
        trust: its outputs.files.FrameTrust (faithfulness scores), or None."""
        if self.size is None:
            self.size = (frame.rgb.shape[1], frame.rgb.shape[0])
        grids, plocal, faith = {}, {}, {}
        scores = None if trust is None else trust.faith
        for k, cid in enumerate(int(c) for c in ids):
            if cid not in grids:  # a tracked class that is also in the top-k: its map once
                grids[cid] = np.clip(np.rint(cams[k] * 255), 0, 255).astype(np.uint8)
                if local is not None and np.isfinite(local[k]):
                    plocal[cid] = float(local[k])
                if scores is not None and np.isfinite(scores[k]):
                    faith[cid] = float(scores[k])
        self.frames.append(
            ReviewFrame(
                frame.index, frame.pts, float(frame.time_s), encode_jpeg(frame.rgb), np.asarray(probs, np.float16), grids, plocal, faith
            )
        )
