"""The files one run writes, and the stage that writes them, shared by every command that records.

`streamcam analyze`, `streamcam review`, `streamcam live --record` and batch runs all write
through RunOutputs (the CSVs, the videos, under temporary names until close()) and FrameWriter
(one frame's CSV rows, rendered video frames, saved pictures, what the summary says was seen,
extra collectors): one copy.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

import cv2
import numpy as np

from streamcam.core.errors import OutputError, UsageError
from streamcam.core.frames import Frame
from streamcam.video.sink import VideoSink
from streamcam.video.source import VideoInfo, is_camera, is_local_file
from streamcam.video.timecode import format_timecode

from . import render, render_i420
from .cams_file import CamsNpz
from .files import FramesCsv, FrameTrust, PredictionsCsv, partial_path, write_json_atomic
from .pictures import explained_classes, render_pictures, write_pictures
from .seen import SeenClasses

FRAME_PICTURE_KINDS = ("gradcam", "heatmap", "segmented")
# Threads that draw video pictures beside the one that encodes them: the cores left over, at most 4.
RENDER_WORKERS = max(1, min(4, (os.cpu_count() or 2) - 1))


@dataclass(frozen=True)
class SinkOptions:
    """What the run's files are and how they are drawn and encoded (the apps' options hand these down)."""

    out_dir: Path | None = None  # None: ./streamcam_out (output_folder)
    top_n: int = 5  # predictions CSV rows per frame
    video: bool = True  # <stem>.gradcam.mp4
    heatmap_video: bool = False
    segmented_video: bool = False
    review: bool = False  # reserve <stem>.review.html (written by the caller at the end)
    codec: str = "libx264"
    crf: int = 23
    preset: str = "ultrafast"
    audio: bool = True  # copy a local file's audio into the overlay video
    alpha: float = 0.5
    colormap: str = "jet"
    heat: str = "evidence"  # 'evidence': maps scaled by their class's evidence and faded below it; 'minmax': as they are (render.py)
    save_cams: bool = False  # <stem>.cams.npz: every frame's CAM grids (outputs.cams_file)
    trust_columns: bool = False  # the CSVs' temporal-smoothing columns (probability_smoothed, top1_changed, cam_r_prev)
    faith_columns: bool = False  # the frames CSV's faithfulness columns (faith, faith_control, faith_<name>)


def trust_of(batch, n: int, n_tracked: int) -> FrameTrust | None:
    """Frame n's smoothing and faithfulness results from a CamBatch (explain.trust), or None."""
    smoothed = batch.probabilities_smoothed is not None
    if not smoothed and batch.faith is None:
        return None
    held = [int(c) for c in batch.class_ids[n][: len(batch.class_ids[n]) - n_tracked]]
    return FrameTrust(
        batch.probabilities_smoothed[n] if smoothed else None,
        held,
        int(batch.top1_changed[n]) if smoothed else 0,
        float(batch.cam_r_prev[n]) if smoothed else float("nan"),
        None if batch.cams_raw is None else batch.cams_raw[n],
        None if batch.faith is None else batch.faith[n],
        None if batch.faith_control is None else batch.faith_control[n],
    )


def output_stem(source: str | int) -> str:
    text = str(source)
    if is_camera(source):
        return f"camera{text}"
    if "://" in text:
        url = urlparse(text)  # rtsp://cam.local/live/main -> 'main'; http://host/clip.mp4 -> 'clip'
        return re.sub(r"[^\w.-]+", "_", Path(url.path).stem or url.hostname or "").strip("_.") or "stream"
    return Path(text).stem


DEFAULT_OUT_DIR = Path("streamcam_out")  # in the working folder, as similar tools keep a run folder


def output_folder(out_dir: Path | None) -> Path:
    """Where a run's files go: out_dir, else ./streamcam_out/ (never beside the input: that may be a
    source tree, a read-only card or a network share)."""
    return Path(out_dir) if out_dir else DEFAULT_OUT_DIR


def output_paths(source, options: SinkOptions, stem: str | None = None) -> dict[str, Path]:
    """The final path of each file a run with these options writes, by key (predictions, frames_csv,
    summary, video, heatmap_video, segmented_video, review, cams)."""
    stem = stem or output_stem(source)
    out_dir = output_folder(options.out_dir)
    ext = ".webm" if options.codec in ("libvpx-vp9", "libvpx") else ".mp4"
    paths = {
        "predictions": out_dir / f"{stem}.predictions.csv",
        "frames_csv": out_dir / f"{stem}.frames.csv",
        "summary": out_dir / f"{stem}.summary.json",
    }
    paths |= {key: out_dir / f"{stem}.{kind}{ext}" for key, kind in RunOutputs.VIDEOS if getattr(options, key)}
    if options.review:
        paths["review"] = out_dir / f"{stem}.review.html"
    if options.save_cams:
        paths["cams"] = out_dir / f"{stem}.cams.npz"
    return paths


def _message(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


class RunOutputs:
    """The files one run writes, all under temporary names until close().

    A file that cannot be written (a full disk, a size limit, an I/O error) is dropped alone while
    the run goes on: its temporary file is removed, and close() reports it with the others'.
    stem: the files' common name (default: from the source); exclusive: refuse (FileExistsError)
    a stem whose CSV another run is writing, so a caller can claim a fresh one (live recordings).
    """

    VIDEOS = (("video", "gradcam"), ("heatmap_video", "heatmap"), ("segmented_video", "segmented"))

    def __init__(self, source, info: VideoInfo, options: SinkOptions, labels, tracked, start, end, stem=None, exclusive=False):
        self.stem = stem or output_stem(source)
        self.out_dir = output_folder(options.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.paths = output_paths(source, options, self.stem)
        for path in self.paths.values():
            if path.is_dir():  # found now, not after the whole video has been analysed
                raise UsageError(f"cannot write {path}: a folder of that name is in the way")
        self.warnings: list[str] = []
        self.errors: list[str] = []  # files dropped during the run
        # Audio is copied from local files only: for a URL or camera it would take a second
        # connection, which can stall on its own (or see a different live moment).
        copy_audio = options.audio and info.has_audio and is_local_file(source)
        if options.audio and info.has_audio and not copy_audio:
            self.warnings.append("audio not copied: it is copied from local files only, not from streams or cameras")
        self.tracked = list(tracked)
        self.csv = PredictionsCsv(self.paths["predictions"], labels, options.top_n, trust=options.trust_columns, exclusive=exclusive)
        self.frames_csv = None
        self.cams = None
        self.sinks: dict[str, VideoSink] = {}
        try:
            self.frames_csv = FramesCsv(
                self.paths["frames_csv"],
                labels,
                tracked,
                trust=options.trust_columns,
                faith=options.faith_columns,
                exclusive=exclusive,
            )
            self.cams = CamsNpz(self.paths["cams"]) if options.save_cams else None
            for key, _kind in self.VIDEOS:
                if key in self.paths:
                    self.sinks[key] = VideoSink(
                        self.paths[key],
                        width=info.width,
                        height=info.height,
                        time_base=info.time_base,
                        fps=info.fps,
                        codec=options.codec,
                        crf=options.crf,
                        preset=options.preset,
                        audio_from=str(source) if copy_audio and key == "video" else None,
                        audio_start=start,
                        audio_end=end,
                    )
        except BaseException:
            self.abort()
            raise

    def _files(self) -> list[tuple[str, object]]:
        """(paths key, writer) of every file still being written but the summary, each with close() and abort()."""
        tables = [(key, table) for key, table in (("predictions", self.csv), ("frames_csv", self.frames_csv)) if table is not None]
        cams = [("cams", self.cams)] if self.cams is not None else []
        return [*tables, *cams, *self.sinks.items()]

    def safely(self, key: str, write, *args) -> None:
        """write(*args) into the file `key`; if the file cannot take it, the file is dropped alone."""
        try:
            write(*args)
        except OSError as exc:  # disk full, a size limit, an I/O error (PyAV's errors are OSErrors too)
            self.drop(key, exc)

    def drop(self, key: str, exc: BaseException) -> None:
        """Give up one file: remove its temporary file and note why; the others go on."""
        output = dict(self._files()).get(key)
        if output is None:
            return
        with contextlib.suppress(OSError):
            output.abort()
        if key == "predictions":
            self.csv = None
        elif key == "frames_csv":
            self.frames_csv = None
        elif key == "cams":
            self.cams = None
        else:
            self.sinks.pop(key, None)
        self.errors.append(f"could not write {self.paths.pop(key)}: {_message(exc)}")

    def flush(self) -> None:
        if self.csv is not None:
            self.safely("predictions", self.csv.flush)
        if self.frames_csv is not None:
            self.safely("frames_csv", self.frames_csv.flush)

    def abort(self) -> None:
        for _key, output in self._files():
            with contextlib.suppress(OSError):  # a full disk must not hide the error that ended the run
                output.abort()

    def discard(self) -> None:
        """Delete the temporary files without touching encoders that a stuck thread may be inside."""
        for _key, output in self._files():
            output_temp = getattr(output, "temp_path", None) or partial_path(output.path)
            output_temp.unlink(missing_ok=True)

    def close(self) -> list[str]:
        """Finalise each file under its real name; returns errors (the files dropped during the run,
        then those that could not be finished). A file that fails is dropped alone."""
        errors = list(self.errors)
        for key, output in self._files():
            try:
                output.close()
            except Exception as exc:  # disk full, a folder in the way, an encoder error while flushing
                with contextlib.suppress(OSError):
                    output.abort()
                errors.append(f"could not finish {self.paths.pop(key)}: {_message(exc)}")
            self.warnings += getattr(output, "warnings", [])
        return errors


class _Drawing(NamedTuple):
    rows: list[tuple]  # (frame, probabilities, class ids, cams, local probabilities)
    pictures: list[Future] | None  # each row's video pictures, being drawn


class FrameWriter:
    """The consume stage: CSV rows, rendered frames into the video sinks, saved pictures, and the
    summary's account of what was seen (`seen`, outputs.seen)."""

    def __init__(
        self,
        outputs: RunOutputs,
        options: SinkOptions,
        labels,
        on_frame,
        save_times,
        n_tracked: int,
        collectors: Sequence = (),
        render_workers: int | None = None,
    ):
        self.outputs, self.options, self.labels, self.on_frame = outputs, options, labels, on_frame
        self.collectors = list(collectors)  # extra consumers of (frame, results row), e.g. a review page
        # A collector gets the frame's trust results (smoothing, faithfulness) when its add() takes `trust`.
        self._trust_collectors = {id(c) for c in self.collectors if "trust" in inspect.signature(c.add).parameters}
        self.n_tracked = n_tracked  # the tracked classes are the last columns of each batch
        self.seen = SeenClasses(labels, outputs.tracked if outputs is not None else ())
        self.pending_saves = sorted(save_times)
        self.saved: list[str] = []
        self.frames = 0
        self.strip = render.LabelStrip()
        self._overlay_sink = outputs.sinks.get("video") if outputs is not None else None
        self._workers = RENDER_WORKERS if render_workers is None else render_workers
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._closed = False

    def draw_ahead(self, item) -> _Drawing:
        """A pipeline item (frames, CamBatch) with its video pictures already being drawn by the
        render workers. The compute stage calls this, so a batch is drawn while this writer still
        encodes the one before (analyze: 720p overlay, null engine, 2 cores: see README Speed)."""
        frames, batch = item
        rows = self._rows(frames, batch)
        return _Drawing(rows, self._submit(rows))

    def __call__(self, item) -> None:
        """A pipeline item: (frames, CamBatch), or draw_ahead's. The batch's pictures are drawn by
        the render workers while this thread encodes them in order, so drawing and encoding overlap."""
        rows, drawn = item if isinstance(item, _Drawing) else self.draw_ahead(item)
        if drawn is not None:
            try:
                for row, pictures in zip(rows, drawn):
                    self._write(*row, pictures=pictures.result())
            finally:
                for pictures in drawn:
                    pictures.cancel()
        else:
            for row in rows:
                self._write(*row)
        self.outputs.flush()

    def _rows(self, frames, batch) -> list[tuple]:
        """(frame, probabilities, class ids, cams, local probabilities, FrameTrust or None) per frame."""
        return [
            (
                frame,
                batch.probabilities[n],
                batch.class_ids[n],
                batch.cams[n],
                None if batch.local_probabilities is None else batch.local_probabilities[n],
                trust_of(batch, n, self.n_tracked),
            )
            for n, frame in enumerate(frames)
        ]

    def _submit(self, rows) -> list[Future] | None:
        """Hand the rows' video pictures to the render workers (None: no videos, or no workers)."""
        if not (self.outputs.sinks and self._workers):
            return None
        with self._pool_lock:  # the compute and the write stage may both be first
            if self._closed:
                return None  # a compute stage that outlived the run: nothing will write these
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="streamcam-render")
            return [self._pool.submit(self.video_pictures, *row[:4], trust=row[5], local=row[4]) for row in rows]

    def write(
        self, frame: Frame, probs, ids, cams, local_all=None, overlay: np.ndarray | None = None, trust: FrameTrust | None = None
    ) -> None:
        """One frame's results. overlay: the heatmap already blended into this frame's RGB (live
        draws it for the screen first), so it is not blended twice."""
        self._write(
            frame, probs, ids, cams, local_all, trust, pictures=self.video_pictures(frame, probs, ids, cams, overlay, trust, local_all)
        )

    def _write(self, frame: Frame, probs, ids, cams, local_all=None, trust: FrameTrust | None = None, pictures: dict | None = None) -> None:
        tracked = slice(len(ids) - self.n_tracked, len(ids))
        local = None if local_all is None else local_all[tracked]
        outputs = self.outputs
        if outputs.csv is not None:
            outputs.safely("predictions", outputs.csv.write_frame, frame.index, frame.pts, frame.time_s, probs, trust)
        if outputs.frames_csv is not None:
            table = outputs.frames_csv
            outputs.safely("frames_csv", table.write_frame, frame.index, frame.pts, frame.time_s, probs, ids, cams, local_all, trust)
        self.seen.add(frame.index, frame.time_s, probs, local, trust)
        if outputs.cams is not None:
            outputs.safely("cams", outputs.cams.add, frame.index, frame.time_s, ids, cams, None if trust is None else trust.raw_cams)
        for collector in self.collectors:
            if id(collector) in self._trust_collectors:
                collector.add(frame, probs, ids, cams, local_all, trust=trust)
            else:
                collector.add(frame, probs, ids, cams, local_all)
        if pictures is None:
            pictures = self.video_pictures(frame, probs, ids, cams, trust=trust, local=local_all)
        for key, picture in pictures.items():
            if key in outputs.sinks:  # not one dropped meanwhile
                outputs.safely(key, outputs.sinks[key].write, picture, frame.pts, frame.time_s)
        while self.pending_saves and frame.time_s >= self.pending_saves[0] - 1e-6:
            self.pending_saves.pop(0)
            self._save_pictures(frame, probs, ids, cams)
        self.frames += 1
        if self.on_frame:
            self.on_frame(frame)

    def video_pictures(
        self, frame: Frame, probs, ids, cams, overlay=None, trust: FrameTrust | None = None, local=None
    ) -> dict[str, np.ndarray]:
        """The picture of this frame for each video output (thread-safe: run by the render workers)."""
        sinks = self.outputs.sinks
        pictures = {}
        if "video" in sinks:
            pictures["video"] = self.render_overlay(frame, probs, ids, cams, overlay, trust, local)
        if "heatmap_video" in sinks or "segmented_video" in sinks:
            # several explained classes: where any of them looked, each as strongly as its evidence allows
            combined, _weight = self._heat(probs, ids, cams, trust, local)[1:]
        if "heatmap_video" in sinks:
            pictures["heatmap_video"] = render.heatmap_grey(frame.rgb, combined)
        if "segmented_video" in sinks:
            pictures["segmented_video"] = render.segmented(frame.rgb, combined)
        return pictures

    def render_overlay(self, frame: Frame, probs, ids, cams, overlay=None, trust: FrameTrust | None = None, local=None) -> np.ndarray:
        """The overlay video's picture of one frame, heatmap blended in, label strip on top and, in
        'evidence' heat, a colour bar showing how far the strongest class's evidence reaches:
        I420 drawn on the decoder's planes when the frame and the videos allow, else RGB."""
        o = self.options
        evidence, heat, weight = self._heat(probs, ids, cams, trust, local)
        lines = self._label_lines(frame, probs, ids, trust, evidence)
        if overlay is None and several_classes(ids, o.heat):  # one colour per class, drawn in RGB
            overlay = class_overlay(frame.rgb, ids, cams, evidence, o.alpha)
        planes = frame.yuv_planes if overlay is None and self._takes_i420(frame) else None
        if planes is not None:
            blended = render_i420.overlay(planes, heat, weight, o.colormap)
            out = render_i420.annotate(self.strip, blended, lines, in_place=True)
        else:
            if overlay is None:
                overlay = render.overlay(frame.rgb, heat, weight, o.colormap)
            out = self.strip.annotate(overlay, lines)
        if render.scales_by_evidence(o.heat):
            draw_key(out, planes is not None, self.strip, len(lines), self.labels, ids, cams, evidence, o.colormap)
        return out

    def _heat(self, probs, ids, cams, trust: FrameTrust | None, local):
        """(evidence (K,), the map to draw, its weight) for one frame (render.heat_to_draw)."""
        shown = trust.smoothed if trust is not None and trust.smoothed is not None else probs
        evidence = render.evidence_of(ids, shown, local, self.options.heat)
        return (evidence, *render.heat_to_draw(cams, evidence, self.options.alpha, self.options.heat))

    def _takes_i420(self, frame: Frame) -> bool:
        """Whether the overlay video encodes this frame's I420 as it is (see render_i420.py): a
        4:2:0 sink of the frame's size. A stream that changes size goes the RGB way, scaled. With
        no sink (a benchmark of the drawing alone), always."""
        sink = self._overlay_sink
        return sink is None or (sink.accepts_i420 and (sink.width, sink.height) == (frame.width, frame.height))

    def close(self) -> None:
        """Stop the render workers (idle by now)."""
        with self._pool_lock:
            self._closed = True
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    def _label_lines(self, frame: Frame, probs, ids, trust: FrameTrust | None = None, evidence=None) -> list[str]:
        """The strip's lines: the top classes (smoothed, the explained one first, when smoothing), the
        frame's number and time, the explained classes (in 'evidence' heat with their evidence, and
        'faded' where it is below render.EVIDENCE_FADE)."""
        if evidence is None or not render.scales_by_evidence(self.options.heat):
            names = ", ".join(dict.fromkeys(self.labels.name(int(c)) for c in ids))
        else:  # a tracked class also in the top-k: once
            first = distinct_columns(ids)
            names = ", ".join(
                f"{self.labels.name(int(ids[k]))} {evidence[k]:.2f}" + (" faded" if evidence[k] < render.EVIDENCE_FADE else "")
                for k in first
            )
        smoothed = trust is not None and trust.smoothed is not None
        top = self.labels.top_line(trust.smoothed, first=trust.held[:1]) if smoothed else self.labels.top_line(probs)
        return [top, f"frame {frame.index}  {format_timecode(frame.time_s)}  CAM: {names}"]

    def _save_pictures(self, frame: Frame, probs, ids, cams) -> None:
        classes, cams = explained_classes(probs, ids, cams, self.labels)
        pictures = render_pictures(
            frame.rgb, cams, classes, FRAME_PICTURE_KINDS, self.options.alpha, self.options.colormap, heat=self.options.heat
        )
        stem, out_dir = self.outputs.stem, self.outputs.out_dir
        try:
            self.saved += [str(p) for p in write_pictures(out_dir / f"{stem}_frames", f"{stem}_f{frame.index:06d}", ".png", pictures)]
        except OSError as exc:  # the pictures of this frame are lost; the run and its other files go on
            self.outputs.errors.append(
                f"could not write the pictures of frame {frame.index} to {out_dir / f'{stem}_frames'}: {_message(exc)}"
            )


def distinct_columns(ids) -> list[int]:
    """The column of each explained class's first appearance (a tracked class may also be in the top-k)."""
    seen: dict[int, int] = {}
    for k, c in enumerate(int(c) for c in ids):
        seen.setdefault(c, k)
    return list(seen.values())


def several_classes(ids, heat: str) -> bool:
    """Whether an overlay gives each explained class its own colour (render.class_hues): two or
    more distinct classes, with heat scaled by evidence."""
    return render.scales_by_evidence(heat) and len(distinct_columns(ids)) >= 2


def class_overlay(rgb: np.ndarray, ids, cams, evidence, alpha: float) -> np.ndarray:
    """The frame with each distinct explained class's map in its own colour (render.class_hues)."""
    columns = distinct_columns(ids)
    return render.class_hues(rgb, cams[columns], render.evidence_strength(evidence[columns]), alpha)


def draw_key(picture: np.ndarray, i420: bool, strip: render.LabelStrip, n_lines: int, labels, ids, cams, evidence, colormap: str) -> None:
    """On a picture with its label strip drawn (I420 or RGB), under the strip at the right: with one
    explained class, the colour bar (how far its evidence reaches); with several, each drawn
    class's outline and a legend (a ramp in its colour, its name and evidence), the key to
    class_overlay. The overlay video and the live view share it."""
    height, width = (picture.shape[0] * 2 // 3, picture.shape[1]) if i420 else picture.shape[:2]
    strengths = render.evidence_strength(evidence)
    paste = render_i420.paste_rgb if i420 else render.paste
    y = (strip.layout(width, height, n_lines)[2] + 8) // 2 * 2
    columns = distinct_columns(ids)
    if len(columns) < 2:
        bar = render.colour_bar(max(16, height // 4) // 2 * 2, colormap, float(strengths.max()))
        paste(picture, bar, (width - bar.shape[1] - 8) // 2 * 2, y)
        return
    outlines = render.class_outlines(cams[columns], strengths[columns], height, width)
    if i420:
        render_i420.draw_outlines(picture, outlines, render.CLASS_COLOURS)
    else:
        for k, contours in outlines:
            cv2.drawContours(picture, contours, -1, render.class_colour(k), 2)
    key = render.legend([labels.name(int(ids[k])) for k in columns], evidence[columns])
    paste(picture, key, (width - key.shape[1] - 8) // 2 * 2, y)


def finish_summary(path: Path, summary, errors: list[str]) -> None:
    """Write the run's summary (a dataclass) as JSON; then, if any output failed, raise OutputError
    naming them all, with the summary of what was finished."""
    try:
        write_json_atomic(path, asdict(summary))
    except OSError as exc:
        errors.append(f"could not write {path}: {exc}")
    if errors:
        raise OutputError("; ".join(errors), summary)
