"""File outputs of a video run besides the videos: per-frame CSV predictions and the summary JSON.

Each is written under a temporary name and renamed when finished, so a file under the final
name is always complete.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from streamcam.core.labels import Labels, ranking
from streamcam.core.paths import replace_durably


class FrameTrust(NamedTuple):
    """One frame's temporal-smoothing and faithfulness results, as the sinks write them."""

    smoothed: np.ndarray | None  # smoothed probabilities (classes,); None without smoothing
    held: Sequence[int]  # the explained top classes, best first
    changed: int  # 1: the explained top class differs from the previous frame's
    r_prev: float  # its map against the previous frame's after motion compensation (NaN: none)
    raw_cams: np.ndarray | None = None  # the engine's own maps of the shown classes, before smoothing
    faith: np.ndarray | None = None  # (K,) each explained class's removal score (explain.trust.faithfulness); NaN: not scored
    faith_control: np.ndarray | None = None  # (K,) the same with a random map of the same grid


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def _number(value: float) -> str:
    """A score with 4 decimals, or empty for NaN (not measured)."""
    return "" if value is None or np.isnan(value) else f"{value:.4f}"


class PredictionsCsv:
    """One row per frame and rank: `frame_index,pts,time_s,rank,class_id,class_name,probability`.

    Per tracked class (named in --cam-classes), the same on every row of a frame:
    `p_<name>` its whole-frame probability; `plocal_<name>` its largest probability in one region
    (a feature cell or a tile: a cyclist the whole frame misses can be plain in one place);
    `peak_x_<name>`, `peak_y_<name>` where its CAM peaks, 0..1 across and down the frame
    (empty when the map is all zero).

    With temporal smoothing (trust=True), after `probability` (still the model's own output):
    `probability_smoothed`; `top1_changed`, 1 where the explained top class differs from the
    previous frame's; `cam_r_prev`, that class's map against the previous frame's after motion
    compensation (empty where there is none). Rows are then ranked by the smoothed probability,
    the held (explained) top classes first, so rank 0 is the class the heatmap shows.

    With faithfulness scores (faith=True), then: `faith`, the explained top class's removal score,
    and `faith_control`, the same removal ranked by a random map; and per tracked class
    `faith_<name>`. Empty on frames that were not scored (--faithfulness-every N).
    """

    def __init__(
        self,
        path: Path,
        labels: Labels,
        top_n: int,
        tracked: Sequence[int] = (),
        trust: bool = False,
        faith: bool = False,
        exclusive: bool = False,
    ):
        """exclusive: FileExistsError when another run is writing this file (its temporary file exists)."""
        self.path = Path(path)
        self.labels = labels
        self.top_n = top_n
        self.tracked = list(tracked)
        self.trust, self.faith = trust, faith
        self.rows = 0
        self._partial = partial_path(self.path)
        self._file = open(self._partial, "x" if exclusive else "w", newline="", encoding="utf-8")  # noqa: SIM115 - open for the whole run; close() or abort()
        self._writer = csv.writer(self._file)
        names = [labels.name(c) if self._unique_name(c) else f"{c}_{labels.name(c)}" for c in self.tracked]
        kinds = ("p", "plocal", "peak_x", "peak_y", "faith") if faith else ("p", "plocal", "peak_x", "peak_y")
        extra = [f"{kind}_{name}" for kind in kinds for name in names]
        trust_columns = ["probability_smoothed", "top1_changed", "cam_r_prev"] if trust else []
        trust_columns += ["faith", "faith_control"] if faith else []
        self._writer.writerow(["frame_index", "pts", "time_s", "rank", "class_id", "class_name", "probability", *trust_columns, *extra])

    def _unique_name(self, class_id: int) -> bool:
        return sum(self.labels.name(c) == self.labels.name(class_id) for c in self.tracked) == 1

    def write_frame(
        self,
        frame_index: int,
        pts: int | None,
        time_s: float,
        probabilities: np.ndarray,
        local: np.ndarray | None = None,
        cams: np.ndarray | None = None,
        trust: FrameTrust | None = None,
    ) -> None:
        """local (T,) and cams (T, h, w): the tracked classes' local probabilities and CAMs, in order;
        trust: the frame's smoothing results (when the file was opened with trust=True)."""
        # per row: the smoothed probability; per frame (the same on each of its rows): the rest
        if trust is None or trust.smoothed is None:
            top = np.argsort(-probabilities, kind="stable")[: self.top_n]
            per_row, per_frame = None, []
        else:
            top = ranking(trust.smoothed, trust.held, self.top_n)
            per_row = [f"{trust.smoothed[c]:.6f}" for c in top]
            per_frame = [int(trust.changed), _number(trust.r_prev)]
        n = len(self.tracked)
        if self.faith:
            scored = trust is not None and trust.faith is not None
            faith = trust.faith if scored else np.full(len(trust.held) + n if trust else n, np.nan)
            control = trust.faith_control if scored else faith
            explained = len(faith) - n  # the top classes' columns come first, the tracked ones last
            per_frame += [_number(faith[0]) if explained else "", _number(control[0]) if explained else ""]
        extra = [f"{probabilities[c]:.6f}" for c in self.tracked]
        extra += [f"{p:.6f}" for p in local] if local is not None else [""] * n
        peaks = [peak_position(cam) for cam in cams] if cams is not None else [None] * n
        extra += [f"{p[0]:.4f}" if p else "" for p in peaks] + [f"{p[1]:.4f}" if p else "" for p in peaks]
        if self.faith:
            extra += [_number(v) for v in faith[explained:]]
        for rank, cid in enumerate(top):
            self._writer.writerow(
                [
                    frame_index,
                    "" if pts is None else pts,
                    f"{time_s:.6f}",
                    rank,
                    int(cid),
                    self.labels.name(int(cid)),
                    f"{probabilities[cid]:.6f}",
                    *([] if per_row is None else [per_row[rank]]),
                    *per_frame,
                    *extra,
                ]
            )
        self.rows += len(top)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> Path:
        try:
            self._file.close()
            replace_durably(self._partial, self.path)
        except BaseException:
            self._partial.unlink(missing_ok=True)  # never a half-finished file left behind
            raise
        return self.path

    def abort(self) -> None:
        try:
            self._file.close()  # flushes: on a full disk this fails too, and the file goes all the same
        except OSError:
            pass
        finally:
            self._partial.unlink(missing_ok=True)


def peak_position(cam: np.ndarray) -> tuple[float, float] | None:
    """(x, y) of the CAM's hottest cell's centre in 0..1 frame coordinates; None for an all-zero map."""
    if not np.any(cam > 0):
        return None
    row, col = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return (col + 0.5) / cam.shape[1], (row + 0.5) / cam.shape[0]


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write under a temporary name, then rename: a file under the final name is always complete."""
    partial = partial_path(Path(path))
    try:
        partial.write_bytes(data)
        replace_durably(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Path(path)


def write_json_atomic(path: Path, data: dict) -> Path:
    return write_bytes_atomic(path, (json.dumps(data, indent=2, default=str) + "\n").encode("utf-8"))
