"""What the review page needs from each analysed frame, kept small: a JPEG and uint8 CAM grids.

The collector is an extra consumer of analyze's consume stage (see analyze.analyze's `collectors`),
so review pages come from the same pipeline and sinks as the other outputs.
"""

from __future__ import annotations

import pickle
import tempfile
from array import array
from dataclasses import dataclass, field

import cv2
import numpy as np

MAX_WIDTH = 960  # the page shows frames at most this wide; bigger would only grow the file
JPEG_QUALITY = 85
OVERHEAD_PER_FRAME = 200  # JSON keys, numbers, top-n


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
    """Receives (frame, results row) from the consume stage and keeps what the page shows.

    Each frame goes to temporary files at once (its JPEG and maps pickled in one, its
    probabilities as float16 rows in another), beside the outputs when spill_dir is given (a
    /tmp in memory would not relieve memory). What stays in memory per frame is three numbers,
    so an hour of video costs as much memory as a minute; the page reads the frames back one at
    a time and keeps what fits its --max-mb (page.py).
    """

    def __init__(self, tracked=(), top_n: int = 5, spill_dir=None):
        self.tracked = [int(c) for c in tracked]
        self.top_n = top_n
        self.size: tuple[int, int] | None = None  # (width, height) of the source frames
        self.max_probabilities: np.ndarray | None = None  # (classes,) each class's highest probability so far
        self.faith_scored = False  # any frame with a faithfulness score
        self._records = tempfile.TemporaryFile(dir=spill_dir)  # noqa: SIM115 - closed by close() or when collected
        self._probabilities = tempfile.TemporaryFile(dir=spill_dir)  # noqa: SIM115 - likewise
        self._where = array("q")  # per frame: offset and length of its pickled record
        self._cost = array("q")  # per frame: its bytes in the page (frame_bytes)
        self._plocal = {c: array("f") for c in self.tracked}  # per named class and frame: plocal (NaN: none), for the page's peaks
        self.error: str | None = None  # why collecting stopped (a full disk): the page is then dropped alone

    def add(self, frame, probs, ids, cams, local, trust=None) -> None:
        """One frame (see _add); a spill file that cannot grow stops the page, not the run."""
        if self.error is not None:
            return
        try:
            self._add(frame, probs, ids, cams, local, trust)
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            self.close()

    def __len__(self) -> int:
        return len(self._cost)

    def _add(self, frame, probs: np.ndarray, ids: np.ndarray, cams: np.ndarray, local: np.ndarray | None, trust=None) -> None:
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
        row = np.asarray(probs, np.float16)
        self._probabilities.seek(0, 2)
        self._probabilities.write(row.tobytes())
        self.max_probabilities = row.astype(np.float32) if self.max_probabilities is None else np.maximum(self.max_probabilities, row)
        self.faith_scored = self.faith_scored or bool(faith)
        record = ReviewFrame(
            frame.index, frame.pts, float(frame.time_s), encode_jpeg(frame.rgb), np.empty(0, np.float16), grids, plocal, faith
        )
        offset, length = self._append(record)
        self._where.extend((offset, length))  # written before counted: a failed write leaves no half frame
        self._cost.append(frame_bytes(record))
        for c, values in self._plocal.items():
            values.append(plocal.get(c, float("nan")))

    def _append(self, record: ReviewFrame) -> tuple[int, int]:
        data = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        self._records.seek(0, 2)
        offset = self._records.tell()
        self._records.write(data)
        return offset, len(data)

    def frame(self, n: int) -> ReviewFrame:
        """Frame n as collected (its probabilities not included: see probability_rows)."""
        self._records.seek(self._where[2 * n])
        return pickle.loads(self._records.read(self._where[2 * n + 1]))  # our own temporary file, written by add()

    def replace(self, n: int, record: ReviewFrame) -> None:
        """Store frame n anew (a smaller JPEG)."""
        self._where[2 * n], self._where[2 * n + 1] = self._append(record)
        self._cost[n] = frame_bytes(record)

    def plocal_series(self, class_id: int) -> np.ndarray:
        """A named class's plocal on every frame (NaN where the frame has none)."""
        return np.frombuffer(self._plocal[class_id], np.float32).astype(np.float64)

    def cost(self, n: int) -> int:
        return self._cost[n]

    def probability_rows(self, rows: int = 4096):
        """(first frame number, (k, classes) float32 probabilities) for the frames in order, k at a time."""
        classes = 0 if self.max_probabilities is None else len(self.max_probabilities)
        self._probabilities.seek(0)
        start = 0
        while classes and (chunk := self._probabilities.read(rows * classes * 2)):
            block = np.frombuffer(chunk, np.float16).reshape(-1, classes).astype(np.float32)
            yield start, block
            start += len(block)

    def close(self) -> None:
        self._records.close()
        self._probabilities.close()


def frame_bytes(f: ReviewFrame) -> int:
    """A frame's share of the page: its JPEG and maps in base64, plus its JSON."""
    return 4 * len(f.jpeg) // 3 + sum(4 * g.size // 3 for g in f.cams.values()) + OVERHEAD_PER_FRAME
