"""File outputs of a video run besides the videos: the ranked predictions CSV, the per-frame CSV and the summary JSON.

Each is written under a temporary name and renamed when finished, so a file under the final
name is always complete.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from streamcam.core.labels import Labels
from streamcam.core.paths import replace_durably
from streamcam.core.ranking import ranking


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


def snake_case(name: str) -> str:
    """A class name as a column name: 'bicycle-built-for-two' -> 'bicycle_built_for_two'."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower(), flags=re.ASCII).strip("_") or "class"


def class_columns(labels: Labels, classes: Sequence[int]) -> list[str]:
    """Each class's part of its column names (`p_<part>`...), snake_case; where two classes' names
    would give the same part (ImageNet has two 'crane's), each of them gets its id in front."""
    parts = [snake_case(labels.name(c)) for c in classes]
    taken = {part: parts.count(part) for part in parts}
    # 'control' would make faith_control, a column of its own
    return [f"{c}_{part}" if taken[part] > 1 or part == "control" else part for c, part in zip(classes, parts)]


def frame_ranking(probabilities: np.ndarray, trust: FrameTrust | None, n: int | None = None, labels: Labels | None = None) -> list[int]:
    """The frame's classes best first, as the CSVs list them: by probability, or with smoothing by the
    smoothed probability with the held (explained) top classes first; so [0] is the class the
    heatmap shows. labels: the model's classes only are ranked (a named group's column is not)."""
    part = labels.model_part if labels is not None else np.asarray
    if trust is None or trust.smoothed is None:
        return ranking(part(probabilities), (), n)
    return ranking(part(trust.smoothed), trust.held, n)


class _CsvFile:
    """A CSV written under a temporary name and renamed by close(); abort() removes it."""

    def __init__(self, path: Path, header: list[str], exclusive: bool):
        """exclusive: FileExistsError when another run is writing this file (its temporary file exists)."""
        self.path = Path(path)
        self.rows = 0
        self._partial = partial_path(self.path)
        self._file = open(self._partial, "x" if exclusive else "w", newline="", encoding="utf-8")  # noqa: SIM115 - open for the whole run; close() or abort()
        self._writer = csv.writer(self._file)
        self._writer.writerow(header)

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


class PredictionsCsv(_CsvFile):
    """`<stem>.predictions.csv`: one row per frame and rank, holding only what differs between ranks:
    `frame_index,pts,time_s,rank,class_id,class_name,probability`.

    With temporal smoothing (trust=True), after `probability` (still the model's own output):
    `probability_smoothed`; rows are then ranked by the smoothed probability, the held (explained)
    top classes first, so rank 0 is the class the heatmap shows. What holds for the whole frame
    (the named classes, the explained class's map, smoothing and faithfulness figures) is in
    FramesCsv, one row per frame.
    """

    def __init__(self, path: Path, labels: Labels, top_n: int, trust: bool = False, exclusive: bool = False):
        """exclusive: FileExistsError when another run is writing this file (its temporary file exists)."""
        self.labels, self.top_n, self.trust = labels, top_n, trust
        smoothed = ["probability_smoothed"] if trust else []
        super().__init__(path, ["frame_index", "pts", "time_s", "rank", "class_id", "class_name", "probability", *smoothed], exclusive)

    def write_frame(
        self, frame_index: int, pts: int | None, time_s: float, probabilities: np.ndarray, trust: FrameTrust | None = None
    ) -> None:
        """trust: the frame's smoothing results (when the file was opened with trust=True)."""
        top = frame_ranking(probabilities, trust, self.top_n, self.labels)
        smoothed = trust is not None and trust.smoothed is not None
        for rank, cid in enumerate(top):
            self._writer.writerow(
                [
                    frame_index,
                    "" if pts is None else pts,
                    f"{time_s:.6f}",
                    rank,
                    cid,
                    self.labels.name(cid),
                    f"{probabilities[cid]:.6f}",
                    *([f"{trust.smoothed[cid]:.6f}"] if smoothed else []),
                ]
            )
        self.rows += len(top)


class FramesCsv(_CsvFile):
    """`<stem>.frames.csv`: one row per frame, `frame_index,pts,time_s`, then the frame's top class
    (rank 0 of the predictions CSV: with smoothing the explained one, the class the heatmap shows):
    `class_id,class_name,probability` and, with smoothing, `probability_smoothed`; `peak_x,peak_y`
    where its CAM peaks, 0..1 across and down the frame (empty when the map is all zero, or when
    the class has no map: --cam-classes names other classes only).

    With temporal smoothing (trust=True): `top1_changed`, 1 where the explained top class differs
    from the previous frame's; `cam_r_prev`, that class's map against the previous frame's after
    motion compensation (empty where there is none).

    With faithfulness scores (faith=True): `faith`, the explained top class's removal score, and
    `faith_control`, the same removal ranked by a random map. Empty on frames that were not scored
    (--faithfulness-every N).

    Per tracked class (named in --cam-classes), its name snake_case (class_columns):
    `p_<name>` its whole-frame probability; `plocal_<name>` its largest probability in one region
    (a feature cell or a tile: a cyclist the whole frame misses can be plain in one place);
    `peak_x_<name>`, `peak_y_<name>` where its CAM peaks; with faithfulness, `faith_<name>`.
    """

    def __init__(
        self,
        path: Path,
        labels: Labels,
        tracked: Sequence[int] = (),
        trust: bool = False,
        faith: bool = False,
        exclusive: bool = False,
    ):
        self.labels = labels
        self.tracked = list(tracked)
        self.trust, self.faith = trust, faith
        names = class_columns(labels, self.tracked)
        kinds = ("p", "plocal", "peak_x", "peak_y", "faith") if faith else ("p", "plocal", "peak_x", "peak_y")
        header = ["frame_index", "pts", "time_s", "class_id", "class_name", "probability"]
        header += ["probability_smoothed", "peak_x", "peak_y", "top1_changed", "cam_r_prev"] if trust else ["peak_x", "peak_y"]
        header += ["faith", "faith_control"] if faith else []
        super().__init__(path, header + [f"{kind}_{name}" for kind in kinds for name in names], exclusive)

    def write_frame(
        self,
        frame_index: int,
        pts: int | None,
        time_s: float,
        probabilities: np.ndarray,
        class_ids: Sequence[int],
        cams: np.ndarray,
        local: np.ndarray | None = None,
        trust: FrameTrust | None = None,
    ) -> None:
        """class_ids (K,) and cams (K, h, w): the frame's explained classes and their maps, the tracked
        classes last, in order; local (K,): their local probabilities (None: the model has none);
        trust: the frame's smoothing and faithfulness results."""
        n = len(self.tracked)
        top = frame_ranking(probabilities, trust, 1, self.labels)[0]
        column = next((k for k, c in enumerate(class_ids) if int(c) == top), None)
        peak = peak_position(cams[column]) if column is not None else None
        row = [frame_index, "" if pts is None else pts, f"{time_s:.6f}", top, self.labels.name(top), f"{probabilities[top]:.6f}"]
        smoothed = trust is not None and trust.smoothed is not None
        if self.trust:
            row.append(f"{trust.smoothed[top]:.6f}" if smoothed else "")
        row += [f"{peak[0]:.4f}", f"{peak[1]:.4f}"] if peak else ["", ""]
        if self.trust:
            row += [int(trust.changed), _number(trust.r_prev)] if smoothed else ["", ""]
        if self.faith:
            scored = trust is not None and trust.faith is not None
            faith = trust.faith if scored else np.full(n + 1, np.nan)
            control = trust.faith_control if scored else faith
            explained = len(faith) - n  # the top classes' scores come first, the tracked ones last
            row += [_number(faith[0]), _number(control[0])] if explained else ["", ""]
        tracked = slice(len(class_ids) - n, len(class_ids))
        row += [f"{probabilities[c]:.6f}" for c in self.tracked]
        row += [f"{p:.6f}" for p in local[tracked]] if local is not None else [""] * n
        peaks = [peak_position(cam) for cam in cams[tracked]]
        row += [f"{p[0]:.4f}" if p else "" for p in peaks] + [f"{p[1]:.4f}" if p else "" for p in peaks]
        if self.faith:
            row += [_number(v) for v in faith[explained:]]
        self._writer.writerow(row)
        self.rows += 1


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
