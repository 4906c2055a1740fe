"""The live reader: a thread that keeps only the newest frame, and reconnects live sources.

Live input must not fall behind: the engine always takes the most recent frame, and a frame it
had no time for is dropped (counted), so no backlog can grow.

A live source (a camera, or a URL without a duration: MJPEG over HTTP, RTSP, UDP) that fails,
stalls (a read that gets nothing for the read timeout fails in PyAV) or ends is reopened with
exponential backoff and jitter, until the session stops. Its frames are re-stamped on the
session's clock: index counts the frames received, time_s is seconds since the first one, so a
reconnect gap shows as missing timestamps in a recording. A file, local or a URL with a duration,
plays at its own pace, keeps its own timestamps, and ends normally.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from streamcam.core.errors import StreamcamError
from streamcam.core.frames import Frame
from streamcam.video.source import VideoSource

from .stats import ENDED, RECONNECTING, LiveStats

LIVE_TIME_BASE_DEN = 1000  # re-stamped live frames: pts in milliseconds
_POLL_S = 0.05


@dataclass(frozen=True)
class Backoff:
    """Waits before reconnect attempts: first_s, doubling up to max_s, each shortened by up to
    `jitter` (a fraction) at random so that many viewers of one camera do not retry in step."""

    first_s: float = 0.1
    max_s: float = 2.0
    jitter: float = 0.5

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = min(self.max_s, self.first_s * 2**attempt)
        return base * (1.0 - self.jitter * rng.random())


class LatestFrame(NamedTuple):
    frame: Frame
    captured_at: float  # the session clock when the reader had the decoded frame


class LiveReader:
    """Reads frames in a thread and keeps only the newest; errors are re-raised by get().

    The reading thread owns every source it reads: it is the only one that iterates it, and it
    closes it, in its own thread, when the input ends, fails, or stop() was asked. Closing it from
    another thread while the reader is inside a read would close a running generator and free the
    container under FFmpeg's feet.

    reopen: how to open the source again after a loss; None for a file (no reconnects).
    """

    def __init__(
        self,
        source: VideoSource,
        stats: LiveStats,
        *,
        reopen: Callable[[], VideoSource] | None = None,
        pace: bool = False,
        backoff: Backoff = Backoff(),
        clock: Callable[[], float] = time.monotonic,
    ):
        self._cond = threading.Condition()
        self._latest: LatestFrame | None = None
        self._ended = False  # no more frames will come (end of input, error or stop)
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self.closed = threading.Event()  # the reader has returned and closed its source
        self._stats, self._reopen, self._pace, self._backoff, self._clock = stats, reopen, pace, backoff, clock
        self._rng = random.Random()
        self._received = 0  # frames from every connection (the live index)
        self._t0: float | None = None  # the session clock at the first frame (live time 0)
        self._failed_attempts = 0  # reconnect attempts since the last frame
        self.losses: deque[dict] = deque(maxlen=20)  # the latest losses: when, why, how long until frames again
        self._thread = threading.Thread(target=self._run, args=(source,), name="streamcam-live-read", daemon=True)
        try:
            self._thread.start()
        except BaseException:
            source.close()  # no reader: nobody else is inside it
            raise

    @property
    def live(self) -> bool:
        return self._reopen is not None

    # -- the reading thread --------------------------------------------------------------------
    def _run(self, source: VideoSource | None) -> None:
        try:
            while source is not None:
                try:
                    reason = self._play(source)
                except Exception as exc:
                    if not self.live:
                        raise
                    reason = str(exc)
                finally:
                    source.close()  # here, in the thread that was reading: never under a read in progress
                if not self.live or self._stop.is_set():
                    break
                source = self._reconnect(reason)
        except BaseException as exc:  # re-raised in the caller's thread by get()
            if not self._stop.is_set():
                self._error = exc
        finally:
            self._stats.set_state(ENDED)
            with self._cond:
                self._ended = True
                self._cond.notify_all()
            self.closed.set()

    def _play(self, source: VideoSource) -> str:
        """Read one connection (or the file) to its end; returns why it ended."""
        frames: Iterator[Frame] = iter(source)
        began, first = self._clock(), None
        try:
            for frame in frames:
                if self._pace:  # a file plays at its own speed; live input arrives in real time anyway
                    first = frame.time_s if first is None else first
                    if self._stop.wait(max(0.0, began + frame.time_s - first - self._clock())):
                        return "stopped"
                if self._stop.is_set():
                    return "stopped"
                self._publish(frame, self._clock())
        finally:
            frames.close()
        return source.warnings[-1] if source.warnings else "the stream ended"

    def _publish(self, frame: Frame, captured_at: float) -> None:
        if self.live:  # the session's clock: gaps between connections stay visible
            self._t0 = captured_at if self._t0 is None else self._t0
            t = captured_at - self._t0
            frame = frame.restamped(self._received, round(t * LIVE_TIME_BASE_DEN), t)
        self._received += 1
        self._failed_attempts = 0
        if self.losses and self.losses[-1]["frames_again_after_s"] is None:
            self.losses[-1]["frames_again_after_s"] = round(captured_at - self.losses[-1]["_lost_at"], 3)
        with self._cond:
            dropped = self._latest is not None
            self._latest = LatestFrame(frame, captured_at)
            self._cond.notify()
        self._stats.frame_received(dropped)

    def _reconnect(self, reason: str) -> VideoSource | None:
        """Reopen with backoff until it works or stop() is asked (then None)."""
        lost_at = self._clock()
        self.losses.append(
            {
                "at_s": None if self._t0 is None else round(lost_at - self._t0, 3),
                "reason": reason,
                "frames_again_after_s": None,
                "_lost_at": lost_at,
            }
        )
        self._stats.set_state(RECONNECTING)
        while not self._stop.wait(self._backoff.delay(self._failed_attempts, self._rng)):
            self._failed_attempts += 1
            try:
                source = self._reopen()
            except StreamcamError:  # refused, timed out, no frame yet: try again later
                continue
            self._stats.reconnected()
            return source
        return None

    # -- the caller's side ----------------------------------------------------------------------
    NOTHING_YET = object()  # get(timeout) found no new frame in time

    def get(self, timeout: float | None = None):
        """The newest unseen frame; None at the end of the input (or after stop()); NOTHING_YET
        when `timeout` seconds passed without one. Re-raises the reader's error."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._latest is None and not self._ended and not self._stop.is_set():
                left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
                if left <= 0:
                    return self.NOTHING_YET
                self._cond.wait(left)
            if self._error is not None:
                raise self._error
            latest, self._latest = self._latest, None
            return latest

    def stop(self) -> None:
        """Ask the reader to stop at its next frame; it then closes the source itself."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def wait_closed(self, timeout: float) -> bool:
        """Wait (at most `timeout`) until the reader has stopped and closed the source.

        False if it is still inside a call (a stalled read): it closes the source when that
        returns. Polls an Event rather than Thread.join(): a Ctrl-C landing in join() on
        Python 3.11 can mark the still-running thread as stopped.
        """
        deadline = time.monotonic() + timeout
        while not self.closed.wait(_POLL_S) and time.monotonic() < deadline:
            pass
        return self.closed.is_set()

    def loss_report(self) -> list[dict]:
        return [{k: v for k, v in loss.items() if not k.startswith("_")} for loss in self.losses]
