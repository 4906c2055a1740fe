"""`streamcam analyze`: a video in, an overlay video, per-frame CSV predictions and a summary out.

source (PyAV) -> batches of resized frames -> engine (one compiled call per batch)
-> renderers -> sinks (video encoder, CSV, pictures), the three stages overlapping in threads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from streamcam.core.ctrl_c import Presses, counting_ctrl_c
from streamcam.core.errors import UsageError
from streamcam.core.frames import Frame
from streamcam.core.locks import folder_lock
from streamcam.core.paths import check_output_folder
from streamcam.core.pipeline import Pipeline, StagesStuck, prefer_stage_threads
from streamcam.core.redact import redact_source
from streamcam.explain.engine import CamEngine
from streamcam.explain.input_size import DEFAULT_INPUT_SIZE, InputSize
from streamcam.explain.trust import FaithfulnessRun, SmoothingOptions, TemporalSmoother
from streamcam.explain.trust.smoothing import DEFAULT_SMOOTH_S
from streamcam.outputs import render
from streamcam.outputs.run_sinks import FrameWriter, RunOutputs, SinkOptions, finish_summary, output_folder, output_paths
from streamcam.video.sink import check_encoder
from streamcam.video.source import NETWORK_TIMEOUT_S, StartPastEnd, VideoInfo, VideoSource, is_local_file
from streamcam.video.timecode import format_timecode, parse_timecode


@dataclass
class AnalyzeOptions:
    top_n: int = 5
    cam_classes: str = "top1"  # 'top1', 'top3', or ids/exact names: 'traffic_light,mountain_bike'
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
    heat: str = "evidence"  # 'evidence': each map scaled by its class's evidence, faded below it; 'minmax': the old look
    save_frames: Sequence[str | float] = ()
    timeout: float = NETWORK_TIMEOUT_S  # seconds a network input may take to open or to send more
    input_size: str = DEFAULT_INPUT_SIZE  # '224x224', 'WxH', or the long side 'N' with the aspect ratio kept
    review: bool = False  # also write <stem>.review.html (streamcam.outputs.review)
    review_max_mb: float = 50.0
    review_around: str | None = None  # review --around as typed: the page opens on that moment, and errors speak of it
    save_cams: bool = False  # also write <stem>.cams.npz (outputs.cams_file: every frame's CAM grids)
    faithfulness_every: int | None = None  # score every N-th analysed frame's maps by removal (explain.trust.faithfulness)
    smooth: float = DEFAULT_SMOOTH_S  # seconds: the time constant of temporal smoothing (explain.trust); 0: off
    render_workers: int | None = None  # threads drawing video pictures beside the encoder (None: the spare cores; 0: none)
    overwrite: bool = False  # replace earlier outputs of another command (same command: always replaced)

    def check(self) -> None:
        if self.top_n < 1:
            raise UsageError("--top-n must be at least 1")
        if self.batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        if not self.timeout > 0:
            raise UsageError("--timeout must be more than 0 seconds")
        InputSize.parse(self.input_size)
        parse_top_k(self.cam_classes)
        if not self.review_max_mb > 0:
            raise UsageError("--max-mb must be more than 0")
        render.check_alpha(self.alpha)
        render.check_colormap(self.colormap)
        render.check_heat(self.heat)
        if self.video or self.heatmap_video or self.segmented_video:
            check_encoder(self.codec, self.crf, self.preset)  # a bad --preset fails before anything is written
        self.smoothing().check()
        if self.faithfulness_every is not None and self.faithfulness_every < 1:
            raise UsageError(f"--faithfulness-every must be 1 or more frames, not {self.faithfulness_every}")

    def smoothing(self) -> SmoothingOptions:
        return SmoothingOptions(seconds=self.smooth)

    def sinks(self) -> SinkOptions:
        """The part of these options that the shared run sinks (outputs.run_sinks) read."""
        shared = {f.name: getattr(self, f.name) for f in fields(SinkOptions) if hasattr(self, f.name)}
        return SinkOptions(**shared, trust_columns=self.smooth > 0, faith_columns=self.faithfulness_every is not None)


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
    live: dict | None = None  # a `live --record` session: frames dropped, reconnects, frame age, losses
    backend: str | None = None  # the Keras backend that ran the model (or, with OpenVINO, its CAM maths): tensorflow or jax
    runtime: dict | None = None  # what ran the model: name (keras or openvino), what was asked, why (explain.runtime)
    smoothing: dict | None = None  # temporal smoothing's settings, cuts and stability figures (None: off)
    faithfulness: dict | None = None  # removal scores: stride, frames scored, mean, control, low-trust share (None: off)
    source_sha256: str | None = None  # which input this was, without storing a URL's secrets (see run_settings)
    seen: dict | None = None  # the most frequent top-1 classes and each named class's peaks (outputs.seen)

    @classmethod
    def of_run(cls, info: VideoInfo, engine, options: AnalyzeOptions, **fields) -> AnalyzeSummary:
        """A summary with this run's input, model, method and options filled in, JSON-ready."""
        return cls(
            input={k: (str(v) if k == "time_base" else v) for k, v in asdict(info).items()},
            model=engine.classifier.name,
            method=engine.method.name,
            backend=getattr(engine, "backend_name", None),
            runtime=getattr(engine, "runtime_info", None),
            options={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
            **fields,
        )


# The most classes --cam-classes topK explains per frame: each is one more map per frame to compute
# and draw, and past a handful the overlay's outlines and legend cannot tell them apart anyway.
MAX_CAM_TOP_K = 10


def parse_top_k(spec: str) -> int:
    """The K of 'topK' in a --cam-classes value (0: none), checked against 1..MAX_CAM_TOP_K.

    Needs no labels, so a bad value fails before the model loads."""
    top_k = 0
    for token in (t.strip() for t in spec.split(",")):
        match = re.fullmatch(r"top(\d+)", token.lower())
        if match:
            if top_k:
                raise UsageError(f"--cam-classes has more than one topK in {spec!r}")
            top_k = int(match.group(1))
            if top_k < 1:
                raise UsageError("--cam-classes topK needs K >= 1")
            if top_k > MAX_CAM_TOP_K:
                raise UsageError(f"--cam-classes top{top_k}: at most top{MAX_CAM_TOP_K} (name further classes instead)")
    return top_k


def parse_cam_classes(spec: str, labels) -> tuple[int, list[int]]:
    """'top3' -> (3, []); ids/names -> (0, [ids]); both, 'top1,mountain_bike' -> (1, [ids]).

    The top-k classes change from frame to frame; named classes are tracked through the whole video.
    K is at most MAX_CAM_TOP_K.
    """
    top_k = parse_top_k(spec)
    names = [t for t in (t.strip() for t in spec.split(",")) if t and not re.fullmatch(r"top(\d+)", t.lower())]
    tracked = labels.resolve(",".join(names)) if names else []
    if not top_k and not tracked:
        raise UsageError(f"no classes given in --cam-classes {spec!r}")
    return top_k, tracked


def model_inputs(frames: Sequence[Frame], size: tuple[int, int]) -> np.ndarray:
    """The frames at the model's (height, width), stacked: N x H x W x 3 uint8 (see Frame.model_input)."""
    return np.stack([f.model_input(size) for f in frames])


def _chunks(video: VideoSource, batch_size: int) -> Iterator[list[Frame]]:
    """The video's frames in lists of batch_size: the reading stage only decodes.

    The model inputs are made in the compute stage: in the reading thread they held up the
    next request to FFmpeg's decoding threads, and a null-engine CSV-only run on the dashcam
    clip went from about 300 to 420 frames/s once they moved (decoding alone: 531).
    """
    chunk: list[Frame] = []
    for frame in video:
        chunk.append(frame)
        if len(chunk) == batch_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _batches(video: VideoSource, batch_size: int, size):
    """(frames, model-input batch) pairs, one after the other (the benchmarks' reading stage)."""
    for chunk in _chunks(video, batch_size):
        yield chunk, model_inputs(chunk, size)


def _write_review(outputs: RunOutputs, review, labels, source, options: AnalyzeOptions) -> list[str]:
    """The review page beside the other outputs; returns errors (the page is dropped alone)."""
    from streamcam.outputs.review import write_review

    path = outputs.paths["review"]
    around = parse_timecode(options.review_around) if options.review_around is not None else None
    try:
        if review.error is not None:
            raise OSError(review.error)
        result = write_review(path, review, labels, redact_source(source), options.review_max_mb, options.heat, around)
    except OSError as exc:
        outputs.paths.pop("review")
        return [f"could not write {path}: {exc.strerror or exc}"]
    finally:
        review.close()
    outputs.warnings += result.warnings
    return []


def smoothing_summary(smoother: TemporalSmoother) -> dict:
    """The smoothing used, the cuts it found, and the clip's stability with and without it."""
    o = smoother.options
    return {
        "seconds": o.seconds,
        "margin": o.margin,
        "hold_s": o.hold,
        "flow": o.flow,
        "flow_width": o.flow_width,
        "cut_residual": o.cut_residual,
        "cuts": smoother.cuts,
        "stability": smoother.figures.summary(),
    }


def expected_frames(info: VideoInfo, start: float | None, end: float | None, every: int, fps: float | None) -> int | None:
    """How many frames the run will analyse, when the container says enough to know."""
    if info.fps is None or (info.frames is None and info.duration_s is None):
        return None
    duration = info.duration_s if info.duration_s is not None else info.frames / info.fps
    span = max(0.0, min(end if end is not None else duration, duration) - (start or 0.0))
    if fps:
        return max(1, int(np.ceil(span * min(fps, info.fps))))
    total = info.frames if (start is None and end is None and info.frames) else round(span * info.fps)
    return max(1, -(-total // every))


# Options that change neither what is written nor how: a rerun differing only in these is the same command.
NOT_SETTINGS = ("out_dir", "timeout", "render_workers", "overwrite")


def source_digest(source) -> str:
    """The input's identity: a local file by its absolute path, anything else as given, hashed (a
    URL's password never lands in a file that way)."""
    text = str(source)
    if is_local_file(source):
        text = os.path.abspath(text)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def run_settings(source, options: AnalyzeOptions, engine=None) -> dict:
    """What makes two runs the same command: the input, the options that shape the outputs, and
    (when loaded) the model and CAM method. JSON-ready, as summaries and manifests store it."""
    kept = {k: v for k, v in asdict(options).items() if k not in NOT_SETTINGS}
    settings = {"source_sha256": source_digest(source), "options": json.loads(json.dumps(kept, default=str))}
    if engine is not None:
        settings |= {"model": engine.classifier.name, "method": engine.method.name}
    return settings


def settings_differ(earlier: dict, now: dict) -> list[str]:
    """How `earlier` settings (or a summary holding them) differ from `now`; [] when the same.
    Either shape: run_settings' (model and method at the top) or a batch manifest's (an "engine" part)."""
    if earlier.get("source_sha256") != now["source_sha256"]:
        return ["another input"]
    engine_keys = [k for k in ("model", "method") if k in now]  # absent before the model loads
    notes = _changes({k: earlier.get(k) for k in engine_keys}, {k: now[k] for k in engine_keys})
    if "engine" in now:
        notes += _changes(earlier.get("engine") or {}, now["engine"])
    options = {k: v for k, v in (earlier.get("options") or {}).items() if k not in NOT_SETTINGS}
    return notes + _changes(options, now["options"])


def _changes(old: dict, new: dict) -> list[str]:
    return [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def check_overwrite(source, options: AnalyzeOptions, engine=None, stem: str | None = None) -> None:
    """UsageError when this run would replace outputs that a different command wrote (another
    input, other options, another model), unless options.overwrite. The same command's outputs
    (a rerun, or a resumed batch video) are replaced as before. Without the engine (before the
    model loads) the model and method are not compared yet."""
    if options.overwrite:
        return
    paths = output_paths(source, options.sinks(), stem)
    existing = [p for p in paths.values() if p.is_file()]
    if not existing:
        return
    hint = "use --overwrite to replace them, or another --out-dir"
    try:
        earlier = json.loads(paths["summary"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(f"{existing[0]} is there already and no summary says which run wrote it: {hint}") from None
    differences = settings_differ(earlier if isinstance(earlier, dict) else {}, run_settings(source, options, engine))
    if differences:
        raise UsageError(
            f"{paths['summary'].parent / paths['summary'].name.split('.')[0]}.* are from a different run ({'; '.join(differences[:3])}): {hint}"
        )


def analyze(
    source: str | int,
    engine: CamEngine,
    options: AnalyzeOptions | None = None,
    on_start: Callable[[VideoInfo, int | None], None] | None = None,
    on_frame: Callable[[Frame], None] | None = None,
    collectors: Sequence = (),
    presses: Presses | None = None,
) -> AnalyzeSummary:
    """Analyse a video file, URL or camera; returns the summary (also written as JSON).

    collectors: extra consumers, each with add(frame, probabilities, class_ids, cams, local_probabilities)
    called per frame in the consume stage (the same frames and results the files get).
    presses: the caller's count of Ctrl-C presses (core.ctrl_c), for a caller that acts on a press
    after the run (a batch stops); by default the run counts its own.
    Sets OpenCV to one thread per calling thread, process-wide (see core.pipeline.prefer_stage_threads).

    Ctrl-C (in the main thread): before the frames flow it raises KeyboardInterrupt, and nothing is
    kept; while they flow the run ends at a frame boundary (status 'interrupted'); while the
    outputs are finished it marks the run 'interrupted' without cutting them short (they take
    moments), and only a second press there gives up on them (KeyboardInterrupt).
    """
    options = options or AnalyzeOptions()
    options.check()
    prefer_stage_threads()
    labels = engine.classifier.labels
    top_k, tracked = parse_cam_classes(options.cam_classes, labels)
    start = parse_timecode(options.start) if options.start is not None else None
    end = parse_timecode(options.end) if options.end is not None else None
    if start is not None and end is not None and end <= start:
        raise UsageError(f"--end ({end:g} s) must be after --start ({start:g} s)")
    save_times = [parse_timecode(t) for t in options.save_frames]
    # One run per output folder at a time (the CLI took it already, before the model loaded).
    with folder_lock(check_output_folder(output_folder(options.out_dir))):
        check_overwrite(source, options, engine)
        with counting_ctrl_c(presses) as presses:
            raise_at = presses.raise_at  # the caller's, given back after the run
            presses.raise_at = presses.count + 1  # until the frames flow a press raises: nothing to keep yet
            try:
                return _run(
                    source, engine, options, on_start, on_frame, collectors, labels, top_k, tracked, start, end, save_times, presses
                )
            finally:
                presses.raise_at = raise_at


def _run(
    source, engine, options, on_start, on_frame, collectors, labels, top_k, tracked, start, end, save_times, presses: Presses
) -> AnalyzeSummary:
    began = time.perf_counter()
    try:
        video = VideoSource(source, start=start, end=end, every=options.every, fps=options.fps, timeout=options.timeout)
    except StartPastEnd as exc:
        if options.review_around is None:
            raise
        raise UsageError(f"--around {options.review_around} is past the end of {exc.name} ({format_timecode(exc.duration_s)})") from None
    reader_owns_video = False  # once the pipeline runs, its reading thread closes the source
    try:
        info = video.info
        # One model input size per video (from its upright size): the engine traces once.
        model_size = InputSize.parse(options.input_size).for_frame(info.width, info.height, engine.classifier.stride)
        outputs = RunOutputs(source, info, options.sinks(), labels, tracked, start, end)
        review = None
        if options.review:
            from streamcam.outputs.review import ReviewCollector

            review = ReviewCollector(tracked, options.top_n, spill_dir=outputs.out_dir)
            collectors = [*collectors, review]
        writer = FrameWriter(outputs, options.sinks(), labels, on_frame, save_times, len(tracked), collectors, options.render_workers)
        try:
            if on_start:
                on_start(info, expected_frames(info, start, end, options.every, options.fps))

            smoother = TemporalSmoother(options.smoothing(), top_k, tracked, labels.num_classes) if options.smooth > 0 else None
            faith = None
            if options.faithfulness_every:
                summarised = "top1" if top_k else labels.name(tracked[0])
                faith = FaithfulnessRun(engine, options.faithfulness_every, summarised=summarised)

            def compute(frames):
                resized = model_inputs(frames, model_size)
                if smoother is None:
                    batch = engine.explain(resized, top_k=top_k, class_ids=tracked, pad_to=options.batch_size)
                else:  # the held classes' maps asked for too, so the smoother can keep showing them
                    asked = smoother.class_ids_to_explain()
                    batch = engine.explain(resized, top_k=smoother.engine_top_k, class_ids=asked, pad_to=options.batch_size)
                    batch = smoother.update(frames, batch)
                if faith is not None:
                    batch = faith.score(resized, batch)
                return writer.draw_ahead((frames, batch))

            pipeline = Pipeline(
                lambda: _chunks(video, options.batch_size),
                compute,
                writer,
                on_reader_exit=video.close,
            )
            reader_owns_video = True
            presses.raise_at = None  # the pipeline acts on each press at a frame boundary
            try:
                interrupted = pipeline.run(presses)
            finally:
                writer.close()
            # The frames are done. A press from here on marks the run interrupted but does not cut
            # the outputs short; a second one gives up on them.
            finishing_from = presses.count
            presses.raise_at = finishing_from + 2
            if writer.frames == 0:
                if interrupted:
                    raise KeyboardInterrupt  # Ctrl-C before the first frame: nothing to keep
                raise UsageError("no frames were analysed (check --start/--end)")
            errors = outputs.close()
            if review is not None:
                errors += _write_review(outputs, review, labels, source, options)
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
    summary = AnalyzeSummary.of_run(
        info,
        engine,
        options,
        status="interrupted" if interrupted or presses.count > finishing_from else "complete",
        frames_analysed=writer.frames,
        wall_time_s=round(wall, 3),
        frames_per_second=round(writer.frames / wall, 2) if wall > 0 else 0.0,
        outputs={**{k: str(v) for k, v in outputs.paths.items()}, "frames": writer.saved},
        warnings=list(dict.fromkeys(warnings)),  # e.g. the size-change line from each video sink once
        errors=errors,
        decode_errors=video.decode_errors,
        frame_index="estimated" if video.frame_index_estimated else "exact",
        smoothing=None if smoother is None else smoothing_summary(smoother),
        faithfulness=None if faith is None else faith.summary(),
        source_sha256=source_digest(source),
        seen=writer.seen.summary(),
    )
    finish_summary(outputs.paths["summary"], summary, errors)
    return summary
