"""File outputs of a video run besides the videos: per-frame CSV predictions and the summary JSON.

Each is written under a temporary name and renamed when finished, so a file under the final
name is always complete.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .labels import Labels


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.stem}.partial{path.suffix}")


class PredictionsCsv:
    """`frame_index,pts,time_s,rank,class_id,class_name,probability[,p_<tracked>...]`, one row per frame and rank."""

    def __init__(self, path: Path, labels: Labels, top_n: int, tracked: Sequence[int] = ()):
        self.path = Path(path)
        self.labels = labels
        self.top_n = top_n
        self.tracked = list(tracked)
        self.rows = 0
        self._partial = partial_path(self.path)
        self._file = open(self._partial, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        extra = [f"p_{labels.name(c)}" if self._unique_name(c) else f"p_{c}_{labels.name(c)}" for c in self.tracked]
        self._writer.writerow(["frame_index", "pts", "time_s", "rank", "class_id", "class_name", "probability", *extra])

    def _unique_name(self, class_id: int) -> bool:
        return sum(self.labels.name(c) == self.labels.name(class_id) for c in self.tracked) == 1

    def write_frame(self, frame_index: int, pts: int | None, time_s: float, probabilities: np.ndarray) -> None:
        top = np.argsort(-probabilities, kind="stable")[: self.top_n]
        extra = [f"{probabilities[c]:.6f}" for c in self.tracked]
        for rank, cid in enumerate(top):
            self._writer.writerow([frame_index, "" if pts is None else pts, f"{time_s:.6f}", rank, int(cid),
                                   self.labels.name(int(cid)), f"{probabilities[cid]:.6f}", *extra])
        self.rows += len(top)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> Path:
        try:
            self._file.close()
            os.replace(self._partial, self.path)
        except BaseException:
            self._partial.unlink(missing_ok=True)  # never a half-finished file left behind
            raise
        return self.path

    def abort(self) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: dict) -> Path:
    partial = partial_path(path)
    try:
        partial.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
