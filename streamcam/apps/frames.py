"""`streamcam.explain_video`: a video's frames with their predictions and CAMs, one at a time, for
your own loop (what `analyze` computes, without its files).

VideoSource decodes, the frames go to the engine in batches at the model's input size, optional
temporal smoothing follows, and each frame's result is handed out before the next batch is
decoded: memory holds one batch whatever the video's length. Stopping early (break, an exception,
close()) closes the video.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from streamcam.core.errors import UsageError
from streamcam.core.frames import Frame
from streamcam.core.labels import Labels
from streamcam.core.ranking import ranking
from streamcam.explain.input_size import DEFAULT_INPUT_SIZE, InputSize
from streamcam.explain.trust import SmoothingOptions, TemporalSmoother
from streamcam.video.source import NETWORK_TIMEOUT_S, VideoInfo, VideoSource

from .analyze import model_inputs


@dataclass(frozen=True)
class FrameResult:
    """One frame and what the engine made of it.

    frame: the decoded frame (index: its number in the source; time_s; rgb: the upright
    (H, W, 3) uint8 picture, made when first read). probabilities (classes,); class_ids (K,) the
    explained classes (the top_k, then the named ones); names (K,) their names; cams (K, h, w) in
    [0, 1] on the model's grid (streamcam.overlay scales one onto the picture);
    local_probabilities (K,) or None: each explained class's best region. With smoothing,
    probabilities_smoothed (classes,), and the explained top class is the held one.
    """

    frame: Frame
    probabilities: np.ndarray
    class_ids: np.ndarray
    names: tuple[str, ...]
    cams: np.ndarray
    local_probabilities: np.ndarray | None = None
    probabilities_smoothed: np.ndarray | None = None
    labels: Labels | None = field(default=None, repr=False, compare=False)  # the classifier's, for top()

    def top(self, n: int = 5) -> list[tuple[int, str, float]]:
        """The n most probable classes: (id, name, probability), best first."""
        labels = self.labels or Labels(len(self.probabilities))
        return [(c, labels.name(c), float(self.probabilities[c])) for c in ranking(labels.model_part(self.probabilities), n=n)]


class VideoResults:
    """The iterator explain_video returns: FrameResults in order. The video closes when the frames
    run out, when the loop stops early and drops the iterator (break, an exception), on close(),
    or at the end of a `with` block around it."""

    def __init__(self, results: Iterator[FrameResult], video: VideoSource):
        self._results = results
        self.info: VideoInfo = video.info  # size, fps, frame count and duration where known

    def __iter__(self) -> VideoResults:
        return self

    def __next__(self) -> FrameResult:
        return next(self._results)

    def close(self) -> None:
        self._results.close()  # runs the generator's finally: the video closes

    def __enter__(self) -> VideoResults:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def explain_video(
    source: str | int,
    engine=None,
    *,
    top_k: int = 1,
    classes: Sequence[int | str] | str = (),
    batch_size: int = 8,
    input_size: str = DEFAULT_INPUT_SIZE,
    start: float | None = None,
    end: float | None = None,
    every: int = 1,
    fps: float | None = None,
    smooth: float = 0.0,
    timeout: float = NETWORK_TIMEOUT_S,
) -> VideoResults:
    """Each analysed frame of a video file, URL or camera with its probabilities and CAMs.

    engine: a CamEngine (default: the embedded EfficientNet-Lite0 with Grad-CAM, built here);
    top_k: the most probable classes explained on each frame; classes: ids or exact names explained
    on every frame ('traffic_light', 920); input_size as --input-size ('224x224', 'WxH', or the
    long side '640'); start/end in seconds, every, fps as analyze samples frames; smooth: temporal
    smoothing's time constant in seconds (0: each frame on its own, the default here).
    The video opens now (a bad file fails here); frames are decoded as the loop asks for them.
    """
    if engine is None:
        from streamcam.explain.engine import build_engine

        engine = build_engine()
    labels = engine.classifier.labels
    tracked = labels.ids(classes)
    if top_k < 0 or top_k + len(tracked) == 0:
        raise UsageError("nothing to explain: ask for top_k >= 1 or name classes")
    size = InputSize.parse(input_size)
    smoothing = SmoothingOptions(seconds=smooth)
    smoothing.check()
    video = VideoSource(source, start=start, end=end, every=every, fps=fps, timeout=timeout)
    model_size = size.for_frame(video.info.width, video.info.height, engine.classifier.stride)
    smoother = TemporalSmoother(smoothing, top_k, tracked, labels.num_classes) if smooth > 0 else None
    return VideoResults(_results(video, engine, top_k, tracked, batch_size, model_size, smoother, labels), video)


def _results(video, engine, top_k, tracked, batch_size, model_size, smoother, labels) -> Iterator[FrameResult]:
    try:
        batch: list[Frame] = []
        for frame in video:
            batch.append(frame)
            if len(batch) == batch_size:
                yield from _explain(batch, engine, top_k, tracked, batch_size, model_size, smoother, labels)
                batch = []
        if batch:
            yield from _explain(batch, engine, top_k, tracked, batch_size, model_size, smoother, labels)
    finally:
        video.close()


def _explain(frames, engine, top_k, tracked, batch_size, model_size, smoother, labels) -> Iterator[FrameResult]:
    pictures = model_inputs(frames, model_size)
    if smoother is None:
        result = engine.explain(pictures, top_k=top_k, class_ids=tracked, pad_to=batch_size)
    else:  # the held classes' maps too, so the smoother can keep showing them
        asked = smoother.class_ids_to_explain()
        result = smoother.update(frames, engine.explain(pictures, top_k=smoother.engine_top_k, class_ids=asked, pad_to=batch_size))
    for n, frame in enumerate(frames):
        ids = result.class_ids[n]
        yield FrameResult(
            frame,
            result.probabilities[n],
            ids,
            tuple(labels.name(int(c)) for c in ids),
            result.cams[n],
            None if result.local_probabilities is None else result.local_probabilities[n],
            None if result.probabilities_smoothed is None else result.probabilities_smoothed[n],
            labels,
        )
