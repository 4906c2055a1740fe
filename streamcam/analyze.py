"""`streamcam analyze`: a video in, an overlay video, per-frame CSV predictions and a summary out.

source (PyAV) -> batches of resized frames -> engine (one compiled call per batch)
-> renderers -> sinks (video encoder, CSV, pictures), the three stages overlapping in threads.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlparse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import render
from .engine import CamEngine
from .errors import OutputError, UsageError
from .frames import Frame
from .input_size import DEFAULT_INPUT_SIZE, InputSize
from .images import explained_classes, render_pictures, write_pictures
from .outputs import PredictionsCsv, partial_path, write_json_atomic
from .pipeline import Pipeline, StagesStuck
from .preprocess import resize_batch
from .video.sink import VideoSink
from .video.source import NETWORK_TIMEOUT_S, VideoInfo, VideoSource, is_camera, is_local_file
from .video.timecode import format_timecode, parse_timecode

FRAME_PICTURE_KINDS = ("gradcam", "heatmap", "segmented")


@dataclass
class AnalyzeOptions:
    top_n: int = 5
    cam_classes: str = "top1"  # 'top1', 'top3', or ids/names: 'traffic_light,bicycle'
    batch_size: int = 8
    start: str | float | None = None
    end: str | float | None = None
    every: int = 1
    fps: float | None = None
    out_dir: Path | None = None
    video: bool = True
    heatmap_video: bool = False
    segmented_video: bool = False
    codec: str = "libx264"
    crf: int = 23
    preset: str = "ultrafast"
    audio: bool = True
    alpha: float = 0.5
    colormap: str = "jet"
    save_frames: Sequence[str | float] = ()
    timeout: float = NETWORK_TIMEOUT_S  # seconds a network input may take to open or to send more
    input_size: str = DEFAULT_INPUT_SIZE  # '224x224', 'WxH', or the long side 'N' with the aspect ratio kept
    review: bool = False  # also write <stem>.review.html (streamcam.review)
    review_max_mb: float = 50.0

    def check(self) -> None:
        if self.top_n < 1:
            raise UsageError("--top-n must be at least 1")
        if self.batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        if not self.timeout > 0:
            raise UsageError("--timeout must be more than 0 seconds")
        InputSize.parse(self.input_size)
        if not self.review_max_mb > 0:
            raise UsageError("--max-mb must be more than 0")
        render.check_alpha(self.alpha)
        render.check_colormap(self.colormap)


@dataclass
class AnalyzeSummary:
    status: str  # 'complete' or 'interrupted'
    input: dict
    model: str
    method: str
    options: dict
    frames_analysed: int
    wall_time_s: float
    frames_per_second: float
    outputs: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # outputs that could not be finished (and were not kept)
    decode_errors: int = 0
    frame_index: str = "exact"  # 'estimated': numbers after a seek in a variable-rate file (see VideoSource)


def parse_cam_classes(spec: str, labels) -> tuple[int, list[int]]:
    """'top3' -> (3, []); ids/names -> (0, [ids]); both, 'top1,bicycle' -> (1, [ids]).

    The top-k classes change from frame to frame; named classes are tracked through the whole video.
    """
    top_k, names = 0, []
    for token in (t.strip() for t in spec.split(",")):
        match = re.fullmatch(r"top(\d+)", token.lower())
        if match:
            if top_k:
                raise UsageError(f"--cam-classes has more than one topK in {spec!r}")
            top_k = int(match.group(1))
            if top_k < 1:
                raise UsageError("--cam-classes topK needs K >= 1")
        elif token:
            names.append(token)
    tracked = labels.resolve(",".join(names)) if names else []
    if not top_k and not tracked:
        raise UsageError(f"no classes given in --cam-classes {spec!r}")
    return top_k, tracked


def output_stem(source: str | int) -> str:
    text = str(source)
    if is_camera(source):
        return f"camera{text}"
    if "://" in text:
        url = urlparse(text)  # rtsp://cam.local/live/main -> 'main'; http://host/clip.mp4 -> 'clip'
        return re.sub(r"[^\w.-]+", "_", Path(url.path).stem or url.hostname or "").strip("_.") or "stream"
    return Path(text).stem


class _Outputs:
    """The files one run writes, all under temporary names until close()."""

    VIDEOS = (("video", "gradcam"), ("heatmap_video", "heatmap"), ("segmented_video", "segmented"))

    def __init__(self, source, info: VideoInfo, options: AnalyzeOptions, labels, tracked, start, end):
        self.stem = output_stem(source)
        local = Path(str(source))
        self.out_dir = Path(options.out_dir) if options.out_dir else (local.parent if local.exists() else Path.cwd())
        self.out_dir.mkdir(parents=True, exist_ok=True)
        ext = ".webm" if options.codec in ("libvpx-vp9", "libvpx") else ".mp4"
        self.paths = {"predictions": self.out_dir / f"{self.stem}.predictions.csv", "summary": self.out_dir / f"{self.stem}.summary.json"}
        self.paths |= {key: self.out_dir / f"{self.stem}.{kind}{ext}" for key, kind in self.VIDEOS if getattr(options, key)}
        if options.review:
            self.paths["review"] = self.out_dir / f"{self.stem}.review.html"
        for path in self.paths.values():
            if path.is_dir():  # found now, not after the whole video has been analysed
                raise UsageError(f"cannot write {path}: a folder of that name is in the way")
        self.warnings: list[str] = []
        # Audio is copied from local files only: for a URL or camera it would take a second
        # connection, which can stall on its own (or see a different live moment).
        copy_audio = options.audio and info.has_audio and is_local_file(source)
        if options.audio and info.has_audio and not copy_audio:
            self.warnings.append("audio not copied: it is copied from local files only, not from streams or cameras")
        self.csv = PredictionsCsv(self.paths["predictions"], labels, options.top_n, tracked)
        self.sinks: dict[str, VideoSink] = {}
        try:
            for key, _kind in self.VIDEOS:
                if key in self.paths:
                    self.sinks[key] = VideoSink(
                        self.paths[key], width=info.width, height=info.height, time_base=info.time_base, fps=info.fps,
                        codec=options.codec, crf=options.crf, preset=options.preset,
                        audio_from=str(source) if copy_audio and key == "video" else None, audio_start=start, audio_end=end,
                    )
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        self.csv.abort()
        for sink in self.sinks.values():
            sink.abort()

    def discard(self) -> None:
        """Delete the temporary files without touching encoders that a stuck thread may be inside."""
        for output in (self.csv, *self.sinks.values()):
            output_temp = getattr(output, "temp_path", None) or partial_path(output.path)
            output_temp.unlink(missing_ok=True)

    def close(self) -> list[str]:
        """Finalise each file under its real name; returns errors. A file that fails is dropped alone."""
        errors: list[str] = []
        for key, output in (("predictions", self.csv), *self.sinks.items()):
            try:
                output.close()
            except Exception as exc:  # disk full, a folder in the way, an encoder error while flushing
                output.abort()
                errors.append(f"could not finish {self.paths.pop(key)}: {exc}")
            self.warnings += getattr(output, "warnings", [])
        return errors


class _FrameWriter:
    """The consume stage: CSV rows, rendered frames into the video sinks, saved pictures."""

    def __init__(self, outputs: _Outputs, options: AnalyzeOptions, labels, on_frame, save_times, n_tracked: int,
                 collectors: Sequence = ()):
        self.outputs, self.options, self.labels, self.on_frame = outputs, options, labels, on_frame
        self.collectors = list(collectors)  # extra consumers of (frame, results row), e.g. a review page
        self.n_tracked = n_tracked  # the tracked classes are the last columns of each batch
        self.pending_saves = sorted(save_times)
        self.saved: list[str] = []
        self.frames = 0
        self.strip = render.LabelStrip()

    def __call__(self, item) -> None:
        frames, batch = item
        for n, frame in enumerate(frames):
            probs, ids, cams = batch.probabilities[n], batch.class_ids[n], batch.cams[n]
            tracked = slice(len(ids) - self.n_tracked, len(ids))
            local_all = None if batch.local_probabilities is None else batch.local_probabilities[n]
            local = None if local_all is None else local_all[tracked]
            self.outputs.csv.write_frame(frame.index, frame.pts, frame.time_s, probs, local, cams[tracked])
            for collector in self.collectors:
                collector.add(frame, probs, ids, cams, local_all)
            if self.outputs.sinks:
                self._write_videos(frame, probs, ids, cams)
            while self.pending_saves and frame.time_s >= self.pending_saves[0] - 1e-6:
                self.pending_saves.pop(0)
                self._save_pictures(frame, probs, ids, cams)
            self.frames += 1
            if self.on_frame:
                self.on_frame(frame)
        self.outputs.csv.flush()

    def _write_videos(self, frame: Frame, probs, ids, cams) -> None:
        combined = cams.max(axis=0)  # several explained classes: where any of them looked
        sinks, o = self.outputs.sinks, self.options
        if "video" in sinks:
            picture = render.overlay(frame.rgb, combined, o.alpha, o.colormap)
            sinks["video"].write(self.strip.annotate(picture, self._label_lines(frame, probs, ids)), frame.pts, frame.time_s)
        if "heatmap_video" in sinks:
            sinks["heatmap_video"].write(render.heatmap_grey(frame.rgb, combined), frame.pts, frame.time_s)
        if "segmented_video" in sinks:
            sinks["segmented_video"].write(render.segmented(frame.rgb, combined), frame.pts, frame.time_s)

    def _label_lines(self, frame: Frame, probs, ids) -> list[str]:
        names = ", ".join(dict.fromkeys(self.labels.name(int(c)) for c in ids))
        return [self.labels.top_line(probs), f"frame {frame.index}  {format_timecode(frame.time_s)}  CAM: {names}"]

    def _save_pictures(self, frame: Frame, probs, ids, cams) -> None:
        classes, cams = explained_classes(probs, ids, cams, self.labels)
        pictures = render_pictures(frame.rgb, cams, classes, FRAME_PICTURE_KINDS, self.options.alpha, self.options.colormap)
        stem, out_dir = self.outputs.stem, self.outputs.out_dir
        self.saved += [str(p) for p in write_pictures(out_dir / f"{stem}_frames", f"{stem}_f{frame.index:06d}", ".png", pictures)]


def _batches(video: VideoSource, batch_size: int, size):
    """(frames, resized uint8 batch) chunks; resizing here keeps it in the reader thread."""
    chunk: list[Frame] = []
    for frame in video:
        chunk.append(frame)
        if len(chunk) == batch_size:
            yield chunk, resize_batch([f.rgb for f in chunk], size)
            chunk = []
    if chunk:
        yield chunk, resize_batch([f.rgb for f in chunk], size)


def _write_review(outputs: _Outputs, review, labels, source, max_mb: float) -> list[str]:
    """The review page beside the other outputs; returns errors (the page is dropped alone)."""
    from .review import write_review

    path = outputs.paths["review"]
    try:
        result = write_review(path, review, labels, str(source), max_mb)
    except OSError as exc:
        outputs.paths.pop("review")
        return [f"could not write {path}: {exc}"]
    outputs.warnings += result.warnings
    return []


def expected_frames(info: VideoInfo, start: float | None, end: float | None, every: int, fps: float | None) -> int | None:
    """How many frames the run will analyse, when the container says enough to know."""
    if info.fps is None or (info.frames is None and info.duration_s is None):
        return None
    duration = info.duration_s if info.duration_s is not None else info.frames / info.fps
    span = max(0.0, min(end if end is not None else duration, duration) - (start or 0.0))
    if fps:
        return max(1, int(np.ceil(span * min(fps, info.fps))))
    total = info.frames if (start is None and end is None and info.frames) else int(round(span * info.fps))
    return max(1, -(-total // every))


def analyze(
    source: str | int,
    engine: CamEngine,
    options: AnalyzeOptions | None = None,
    on_start: Callable[[VideoInfo, int | None], None] | None = None,
    on_frame: Callable[[Frame], None] | None = None,
    collectors: Sequence = (),
) -> AnalyzeSummary:
    """Analyse a video file, URL or camera; returns the summary (also written as JSON).

    collectors: extra consumers, each with add(frame, probabilities, class_ids, cams, local_probabilities)
    called per frame in the consume stage (the same frames and results the files get).
    """
    options = options or AnalyzeOptions()
    options.check()
    labels = engine.classifier.labels
    top_k, tracked = parse_cam_classes(options.cam_classes, labels)
    start = parse_timecode(options.start) if options.start is not None else None
    end = parse_timecode(options.end) if options.end is not None else None
    if start is not None and end is not None and end <= start:
        raise UsageError(f"--end ({end:g} s) must be after --start ({start:g} s)")
    save_times = [parse_timecode(t) for t in options.save_frames]
    began = time.perf_counter()

    video = VideoSource(source, start=start, end=end, every=options.every, fps=options.fps, timeout=options.timeout)
    reader_owns_video = False  # once the pipeline runs, its reading thread closes the source
    try:
        info = video.info
        # One model input size per video (from its upright size): the engine traces once.
        model_size = InputSize.parse(options.input_size).for_frame(info.width, info.height, engine.classifier.stride)
        outputs = _Outputs(source, info, options, labels, tracked, start, end)
        review = None
        if options.review:
            from .review import ReviewCollector

            review = ReviewCollector(tracked, options.top_n)
            collectors = [*collectors, review]
        writer = _FrameWriter(outputs, options, labels, on_frame, save_times, len(tracked), collectors)
        try:
            if on_start:
                on_start(info, expected_frames(info, start, end, options.every, options.fps))

            def compute(item):
                frames, resized = item
                return frames, engine.explain(resized, top_k=top_k, class_ids=tracked, pad_to=options.batch_size)

            pipeline = Pipeline(
                lambda: _batches(video, options.batch_size, model_size), compute, writer,
                on_reader_exit=video.close,
            )
            reader_owns_video = True
            interrupted = pipeline.run()
            if writer.frames == 0:
                if interrupted:
                    raise KeyboardInterrupt  # Ctrl-C before the first frame: nothing to keep
                raise UsageError("no frames were analysed (check --start/--end)")
            errors = outputs.close()
            if review is not None:
                errors += _write_review(outputs, review, labels, source, options.review_max_mb)
        except StagesStuck:
            outputs.discard()
            raise
        except BaseException:
            outputs.abort()
            raise
    finally:
        if not reader_owns_video:
            video.close()
    warnings = list(video.warnings) + outputs.warnings
    if pipeline.reader_abandoned:
        warnings.append("the input stopped responding after Ctrl-C; it was left behind")
    if writer.pending_saves:
        warnings.append("--save-frames after the last analysed frame: " + ", ".join(f"{t:g}" for t in writer.pending_saves))
    wall = time.perf_counter() - began
    summary = AnalyzeSummary(
        status="interrupted" if interrupted else "complete",
        input={k: (str(v) if k == "time_base" else v) for k, v in asdict(info).items()},
        model=engine.classifier.name,
        method=engine.method.name,
        options={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        frames_analysed=writer.frames,
        wall_time_s=round(wall, 3),
        frames_per_second=round(writer.frames / wall, 2) if wall > 0 else 0.0,
        outputs={**{k: str(v) for k, v in outputs.paths.items()}, "frames": writer.saved},
        warnings=list(dict.fromkeys(warnings)),  # e.g. the size-change line from each video sink once
        errors=errors,
        decode_errors=video.decode_errors,
        frame_index="estimated" if video.frame_index_estimated else "exact",
    )
    try:
        write_json_atomic(outputs.paths["summary"], asdict(summary))
    except OSError as exc:
        errors.append(f"could not write {outputs.paths['summary']}: {exc}")
    if errors:
        raise OutputError("; ".join(errors), summary)
    return summary
