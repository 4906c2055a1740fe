"""One live session: newest frame -> engine -> overlay -> viewers (window, browser) and the recording.

The loop runs in the caller's thread (OpenCV windows want it). The first Ctrl-C ends the session
after the frame in hand, so a recording is finished like any other; a second one stops at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Protocol

import numpy as np

from streamcam.apps.analyze import AnalyzeOptions, AnalyzeSummary, smoothing_summary
from streamcam.core.ctrl_c import counting_ctrl_c, ctrl_c_after
from streamcam.core.errors import OutputError
from streamcam.core.frames import Frame
from streamcam.core.ranking import ranking
from streamcam.explain.engine import CamEngine
from streamcam.explain.input_size import DEFAULT_INPUT_SIZE, InputSize
from streamcam.explain.runtime.compiled_shapes import FIX_AFTER
from streamcam.explain.trust import SmoothingOptions, TemporalSmoother
from streamcam.explain.trust.smoothing import DEFAULT_SMOOTH_S
from streamcam.outputs import render
from streamcam.outputs.run_sinks import (
    FrameWriter,
    RunOutputs,
    class_overlay,
    draw_key,
    finish_summary,
    output_paths,
    output_stem,
    several_classes,
    trust_of,
)
from streamcam.video.source import NETWORK_TIMEOUT_S, VideoInfo, VideoSource, is_camera, is_local_file
from streamcam.video.timecode import format_timecode

from .reader import LIVE_TIME_BASE_DEN, Backoff, LiveReader
from .stats import LiveStats, rate_text
from .window import WindowViewer

# Quitting waits this long for the reader to leave the call it is in (a decode: milliseconds). A
# stalled network read can last the whole read timeout; the reader is then left to finish it and
# close the source by itself.
STOP_WAIT_S = 2.0
_IDLE_S = 0.1  # while no frame comes, viewers are kept responsive this often


class Viewer(Protocol):
    def show(self, rgb: np.ndarray) -> bool:
        """Display a picture; return False when the user asked to stop."""

    def close(self) -> None: ...


def is_live_source(source: str | int, info: VideoInfo) -> bool:
    """A camera, or a URL with no duration (a stream, not a file): reconnected, re-stamped, not paced."""
    return is_camera(source) or (not is_local_file(source) and info.duration_s is None)


DEFAULT_BACKOFF = Backoff()  # frozen: one shared default is safe


def live(
    source: str | int,
    engine: CamEngine,
    viewer: Viewer | Sequence[Viewer],
    top_k: int = 1,
    class_ids=(),
    alpha: float = 0.5,
    colormap: str = "jet",
    on_frame: Callable[[Frame, float], None] | None = None,
    timeout: float = NETWORK_TIMEOUT_S,
    input_size: str = DEFAULT_INPUT_SIZE,
    stats: LiveStats | None = None,
    record: AnalyzeOptions | None = None,
    backoff: Backoff = DEFAULT_BACKOFF,
    smooth: float = DEFAULT_SMOOTH_S,
    heat: str = "evidence",
) -> dict:
    """Show overlays until the input ends, a viewer says stop, or Ctrl-C; returns the session's figures.

    viewer: one or several (a window, the browser view); each gets every shown picture.
    timeout: seconds a URL may take to connect or to send more before it counts as lost (then a
        live source is reconnected).
    input_size: '224x224', 'WxH', or the long side 'N' with the aspect ratio kept (see input_size.py).
    stats: where the figures go as they happen (the browser view reads them); a new one if None.
    record: write what `streamcam analyze` writes (record.out_dir: the folder) for the shown frames.
    heat: 'evidence' (each map scaled by its class's evidence, faded below it) or 'minmax' (see render.py).
    smooth: temporal smoothing's time constant in seconds over the shown frames' timestamps (the
        same causal filters analyze uses: explain.trust); 0 shows each frame on its own.
    """
    viewers = [viewer] if hasattr(viewer, "show") else list(viewer)
    render.check_alpha(alpha)
    render.check_colormap(colormap)
    render.check_heat(heat)
    if record is not None:
        record.check()
    size = InputSize.parse(input_size)
    smoothing = SmoothingOptions(seconds=smooth).check()
    class_ids = engine.classifier.labels.ids(class_ids)  # ids, names or groups ('a+b'), as analyze takes them
    smoother = TemporalSmoother(smoothing, top_k, class_ids, engine.classifier.labels.num_classes) if smoothing.enabled else None
    # The engine's call: with smoothing, one spare class and the held ones (see TemporalSmoother).
    call_top_k, call_ids = (top_k, class_ids) if smoother is None else (smoother.engine_top_k, smoother.class_ids_to_explain())
    stats = stats or LiveStats(stall_after_s=min(2.0, timeout))
    labels = engine.classifier.labels
    stride = engine.classifier.stride
    # Trace the engine before the first frame (seconds on a CPU), so frame ages and rates measure
    # the session, not the compile; before connecting when the input size does not depend on the
    # frame's, so a live source does not pile up frames meanwhile.
    if size.long_side is None:
        _warm_up(engine, size.for_frame(1, 1, stride), call_top_k, call_ids)
    video = VideoSource(source, timeout=timeout)  # a source that cannot be opened at all fails here
    live_source = is_live_source(source, video.info)
    writer = None
    try:
        model_size = size.for_frame(video.info.width, video.info.height, stride)
        if size.long_side is not None:
            _warm_up(engine, model_size, call_top_k, call_ids)
        writer = _recorder(source, video.info, live_source, record, labels, list(class_ids), smoother is not None) if record else None
    except BaseException:
        video.close()
        raise
    stats.start()
    # From here the reader thread owns the source and closes it.
    reopen = (lambda: VideoSource(source, timeout=timeout)) if live_source else None
    reader = LiveReader(video, stats, reopen=reopen, pace=not live_source, backoff=backoff)
    strip = render.LabelStrip()
    hint = "  (q to quit)" if any(isinstance(v, WindowViewer) for v in viewers) else ""
    status = "complete"
    # Ctrl-C is counted (core/ctrl_c.py): the first press ends the loop after the frame in hand, a
    # second one inside the loop raises (a frame that will not end); from the loop's end a press does
    # not cut the recording short (footage from a live source cannot be had again), a second gives up.
    with counting_ctrl_c() as presses:
        presses.raise_at = 2
        try:
            while presses.count == 0:
                latest = reader.get(timeout=_IDLE_S)
                if latest is None:
                    break  # the input ended
                if latest is reader.NOTHING_YET:
                    if not all(v.idle(stats.source_state()) for v in viewers if hasattr(v, "idle")):
                        status = "stopped"
                        break
                    continue
                frame = latest.frame
                picture = frame.model_input(model_size)[None]
                if smoother is None:
                    result = engine.explain(picture, top_k, class_ids)
                else:
                    result = smoother.update([frame], engine.explain(picture, smoother.engine_top_k, smoother.class_ids_to_explain()))
                probs, ids, cams = result.probabilities[0], result.class_ids[0], result.cams[0]
                trust = None if smoother is None else trust_of(result, 0, len(class_ids))
                shown_probs, first = (probs, ()) if trust is None else (trust.smoothed, trust.held[:1])
                local = None if result.local_probabilities is None else result.local_probabilities[0]
                evidence = render.evidence_of(ids, shown_probs, local, heat)
                if several_classes(ids, heat):
                    overlay = class_overlay(frame.rgb, ids, cams, evidence, alpha)
                else:
                    drawn, weight = render.heat_to_draw(cams, evidence, alpha, heat)
                    overlay = render.overlay(frame.rgb, drawn, weight, colormap)
                snapshot = stats.snapshot()
                lines = [labels.top_line(shown_probs, first=first), f"{format_timecode(frame.time_s)}  {rate_text(snapshot)}{hint}"]
                screen = strip.annotate(overlay, lines)
                if render.scales_by_evidence(heat):
                    draw_key(screen, False, strip, len(lines), labels, ids, cams, evidence, colormap)
                top = [
                    {"name": labels.name(int(c)), "p": round(float(shown_probs[c]), 4)}
                    for c in ranking(labels.model_part(shown_probs), first, 5)
                ]
                for viewer in viewers:  # a browser view sends the picture's own numbers with it
                    if hasattr(viewer, "caption"):
                        viewer.caption({"top": top, "time_s": round(float(frame.time_s), 3), "frame": int(frame.index)})
                keep_going = all(v.show(screen) for v in viewers)
                stats.frame_shown(latest.captured_at, top, frame.time_s)
                if writer is not None:
                    writer.write(frame, probs, ids, cams, local, overlay=overlay, trust=trust)
                    writer.outputs.flush()
                if on_frame:
                    on_frame(frame, snapshot["fps"])
                if not keep_going:
                    status = "stopped"
                    break
            if presses.count:
                status = "interrupted"
        except BaseException:
            if writer is not None:
                writer.outputs.abort()
            raise
        finally:
            presses.raise_at = presses.count + 2
            reader.stop()
            try:
                for v in viewers:
                    v.close()  # the window goes at once, whatever the reader is doing
            finally:
                reader.wait_closed(STOP_WAIT_S)  # bounded: a reader stuck in a stalled read closes the source when it returns
        figures = {**stats.totals(), "status": status, "live_source": live_source, "losses": reader.loss_report()}
        if writer is not None:
            figures["outputs"] = _finish_recording(writer, video, engine, record, figures, smoother)
    return figures


def _warm_up(engine: CamEngine, model_size: tuple[int, int], top_k: int, class_ids) -> None:
    height, width = model_size
    # FIX_AFTER calls: the OpenVINO runtime compiles a shape met again with that shape fixed
    # (70-100 ms once, compiled_shapes.py); here, not on the session's first frame. A Ctrl-C
    # meanwhile is raised after the calls, not inside a trace (ctrl_c_after).
    with ctrl_c_after():
        for _ in range(FIX_AFTER):
            engine.explain(np.zeros((1, height, width, 3), np.uint8), top_k, class_ids)


def _recorder(
    source, info: VideoInfo, live_source: bool, record: AnalyzeOptions, labels, tracked: list[int], smoothed: bool
) -> FrameWriter:
    """The same writers `streamcam analyze` uses, for the frames the session shows."""
    if live_source:  # frames re-stamped on the session clock, in milliseconds (see reader.py)
        info = replace(info, time_base=Fraction(1, LIVE_TIME_BASE_DEN))
    # No audio: shown frames are a live subset, and streams are read once (see analyze's audio rule).
    sinks = replace(record.sinks(), audio=False, review=False, trust_columns=smoothed)
    return FrameWriter(_claim_recording(source, info, sinks, labels, tracked), sinks, labels, None, [], len(tracked))


def _claim_recording(source, info: VideoInfo, sinks, labels, tracked: list[int]) -> RunOutputs:
    """The recording's files under a name of their own, `<stem>-YYYYmmdd-HHMMSS[-n]`: footage from
    a live source cannot be had again, so no earlier recording is ever replaced. The CSV's
    temporary file is created exclusively, so two sessions starting in the same second differ too."""
    base, stamp = output_stem(source), time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        stem = f"{base}-{stamp}" + (f"-{n}" if n > 1 else "")
        if any(p.exists() for p in output_paths(source, sinks, stem).values()):
            continue
        try:
            return RunOutputs(source, info, sinks, labels, tracked, None, None, stem=stem, exclusive=True)
        except FileExistsError:
            continue
    raise OutputError(f"no free recording name for {base}-{stamp} in {sinks.out_dir}")


def _finish_recording(writer: FrameWriter, video: VideoSource, engine: CamEngine, record: AnalyzeOptions, figures: dict, smoother=None):
    """Close the recording's files and write its summary; returns the outputs."""
    outputs = writer.outputs
    errors = outputs.close()
    summary = AnalyzeSummary.of_run(
        video.info,
        engine,
        record,
        status="interrupted" if figures["status"] == "interrupted" else "complete",
        frames_analysed=writer.frames,
        wall_time_s=figures["wall_time_s"],
        frames_per_second=figures["frames_per_second"],
        outputs={k: str(v) for k, v in outputs.paths.items()},
        warnings=list(dict.fromkeys(outputs.warnings)),
        errors=errors,
        live={k: figures[k] for k in ("frames_shown", "frames_dropped", "reconnects", "frame_age_ms_p50", "frame_age_ms_p95", "losses")},
        smoothing=None if smoother is None else smoothing_summary(smoother),
        seen=writer.seen.summary(),
    )
    finish_summary(outputs.paths["summary"], summary, errors)  # raises OutputError if any output failed
    return {k: str(v) for k, v in outputs.paths.items()}
