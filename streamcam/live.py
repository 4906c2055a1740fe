"""`streamcam live`: the overlay on screen as frames arrive (webcam, stream or file).

Live input must not fall behind: a reader thread keeps only the newest frame, and the engine
always explains the most recent one, dropping those it had no time for.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable, Protocol

import numpy as np

from . import render
from .engine import CamEngine
from .errors import UsageError
from .frames import Frame
from .input_size import DEFAULT_INPUT_SIZE, InputSize
from .preprocess import resize_batch
from .video.source import NETWORK_TIMEOUT_S, VideoSource, is_local_file
from .video.timecode import format_timecode


class Viewer(Protocol):
    def show(self, rgb: np.ndarray) -> bool:
        """Display a frame; return False when the user asked to stop."""

    def close(self) -> None: ...


class WindowViewer:
    """An OpenCV window; q or Esc (or closing the window) stops."""

    def __init__(self, title: str = "streamcam live"):
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise UsageError("no display to show a window on; use `streamcam analyze` to write an overlay video instead")
        import cv2

        self.cv2, self.title = cv2, title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, rgb: np.ndarray) -> bool:
        cv2 = self.cv2
        cv2.imshow(self.title, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27) and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        self.cv2.destroyWindow(self.title)


# Quitting waits this long for the reader to leave the call it is in (a decode: milliseconds). A
# stalled network read can last the source's whole read timeout; the reader is then left to
# finish it and close the source by itself.
STOP_WAIT_S = 2.0
_POLL_S = 0.05


class _NewestFrame:
    """Reads frames in a thread and keeps only the newest; errors are re-raised by get().

    The reading thread owns the source from here on: it is the only one that iterates it, and it
    closes it, in its own `finally`, when the input ends, fails, or stop() was asked. Closing it
    from another thread while the reader is inside a read would close a generator that is running
    ("ValueError: generator already executing") and free the container under FFmpeg's feet.
    """

    def __init__(self, source: VideoSource, pace: bool):
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._ended = False  # no more frames will come (end of input, error or stop)
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self.closed = threading.Event()  # the reader has returned and closed the source
        self.dropped = 0
        self._pace = pace  # a file plays at its own speed; cameras and streams arrive in real time anyway
        self._thread = threading.Thread(target=self._read, args=(source,), name="streamcam-live-read", daemon=True)
        try:
            self._thread.start()
        except BaseException:
            source.close()  # no reader: nobody else is inside it
            raise

    def _read(self, source: VideoSource) -> None:
        frames = None
        try:
            frames = iter(source)
            began, first = time.perf_counter(), None
            for frame in frames:
                if self._pace:
                    first = frame.time_s if first is None else first
                    if self._stop.wait(max(0.0, began + frame.time_s - first - time.perf_counter())):
                        return
                if self._stop.is_set():
                    return
                with self._cond:
                    self.dropped += self._frame is not None
                    self._frame = frame
                    self._cond.notify()
        except BaseException as exc:  # re-raised in the caller's thread by get()
            self._error = exc
        finally:
            try:
                if frames is not None:
                    frames.close()
                source.close()  # here, in the thread that was reading: never under a read in progress
            except BaseException as exc:
                if self._error is None and not self._stop.is_set():
                    self._error = exc
            finally:
                with self._cond:
                    self._ended = True
                    self._cond.notify_all()
                self.closed.set()

    def get(self) -> Frame | None:
        """The newest unseen frame, or None at the end of the input."""
        with self._cond:
            while self._frame is None and not self._ended:
                self._cond.wait(0.1)
            if self._error is not None:
                raise self._error
            frame, self._frame = self._frame, None
            return frame

    def stop(self) -> None:
        """Ask the reader to stop at its next frame; it then closes the source itself."""
        self._stop.set()

    def wait_closed(self, timeout: float = STOP_WAIT_S) -> bool:
        """Wait (at most `timeout`) until the reader has stopped and closed the source.

        False if it is still inside a call (a stalled read): it closes the source when that
        returns. Polls an Event rather than Thread.join(): a Ctrl-C landing in join() on
        Python 3.11 can mark the still-running thread as stopped.
        """
        deadline = time.monotonic() + timeout
        while not self.closed.wait(_POLL_S) and time.monotonic() < deadline:
            pass
        return self.closed.is_set()


def live(
    source: str | int,
    engine: CamEngine,
    viewer: Viewer,
    top_k: int = 1,
    class_ids=(),
    alpha: float = 0.5,
    colormap: str = "jet",
    on_frame: Callable[[Frame, float], None] | None = None,
    timeout: float = NETWORK_TIMEOUT_S,
    input_size: str = DEFAULT_INPUT_SIZE,
) -> dict:
    """Show overlays until the input ends or the viewer says stop; returns counts and the achieved rate.

    timeout: seconds a URL may take to connect or to send more before it counts as lost.
    input_size: '224x224', 'WxH', or the long side 'N' with the aspect ratio kept (see input_size.py).
    """
    render.check_alpha(alpha)
    render.check_colormap(colormap)
    strip = render.LabelStrip()
    labels = engine.classifier.labels
    shown = 0
    began = time.perf_counter()
    # The reader thread owns the source once it exists, and closes it (see _NewestFrame).
    size = InputSize.parse(input_size)
    video = VideoSource(source, timeout=timeout)
    model_size = size.for_frame(video.info.width, video.info.height, engine.classifier.stride)
    reader = _NewestFrame(video, pace=is_local_file(source))
    try:
        while (frame := reader.get()) is not None:
            result = engine.explain(resize_batch([frame.rgb], model_size), top_k, class_ids)
            rate = (shown + 1) / max(time.perf_counter() - began, 1e-6)
            lines = [labels.top_line(result.probabilities[0]), f"{format_timecode(frame.time_s)}  {rate:.1f} fps  (q to quit)"]
            picture = strip.annotate(render.overlay(frame.rgb, result.cams[0].max(axis=0), alpha, colormap), lines)
            shown += 1
            if on_frame:
                on_frame(frame, rate)
            if not viewer.show(picture):
                break
    finally:
        reader.stop()
        try:
            viewer.close()  # the window goes at once, whatever the reader is doing
        finally:
            reader.wait_closed()  # bounded: a reader stuck in a stalled read closes the source when it returns
    wall = time.perf_counter() - began
    return {"frames_shown": shown, "frames_dropped": reader.dropped, "wall_time_s": round(wall, 3),
            "frames_per_second": round(shown / wall, 2) if wall > 0 else 0.0}
