"""Run produce -> compute -> consume in three threads joined by bounded queues.

Reading, compute and writing overlap; the queues bound memory whatever the input's length.
An exception in any stage stops the others and is re-raised in the caller's thread (never a
hang, never a silent death).

Ctrl-C (SIGINT, which only the main thread gets; run() counts the presses while it runs, ctrl_c.py,
so that a press never raises KeyboardInterrupt at a point it cannot handle):
- the first stops the producer; what it already produced is still computed and consumed, so
  outputs end at a frame boundary;
- a producer stuck inside a call (a camera that stopped sending, a network read) cannot see
  that request. After `stall_grace_s` the pipeline stops waiting for it: the items already
  queued are finished, run() returns, and the stuck thread is left behind (a daemon; whatever
  it holds is released by `on_reader_exit` in that thread if the call ever returns);
- a second Ctrl-C stops every stage at once: run() returns as soon as the consumer has put
  down its current item (or after a short wait if it is stuck too), without draining queues.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from .ctrl_c import Presses, counting_ctrl_c

_DONE = object()
_POLL_S = 0.1
# How often the caller's thread looks at the stages and at the Ctrl-C count (see run). Short,
# because the run ends only when this thread sees it (with 0.1 s, a 0.5 s clip lost a tenth of
# its time).
_WAKE_S = 0.005
STALL_GRACE_S = 2.0  # after a Ctrl-C, how long a stage may stay inside one call


def _wait(event: threading.Event, timeout: float) -> None:
    """Wait up to timeout for event, in the caller's thread (see _WAKE_S)."""
    deadline = time.monotonic() + timeout
    while not event.is_set() and time.monotonic() < deadline:
        time.sleep(_WAKE_S)


def prefer_stage_threads() -> None:
    """One OpenCV thread per calling thread (process-wide).

    The pipeline's stages already run in parallel threads of their own, beside FFmpeg's decoding
    and x264's encoding threads. OpenCV's pool on top of them measured slower on 2 cores: every
    small call (a plane resize, a lookup) woke the pool, and the CPU went to spinning and hand-offs
    (720p overlay: 6.4 ms of CPU per frame with the pool, 2.5 ms without).
    """
    import cv2

    cv2.setNumThreads(1)


class StagesStuck(KeyboardInterrupt):
    """Interrupted, and the consumer did not stop: its outputs cannot be finished safely."""


class Pipeline:
    def __init__(
        self,
        produce: Callable[[], Iterable],
        compute: Callable,
        consume: Callable,
        depth: int = 2,
        stall_grace_s: float = STALL_GRACE_S,
        on_reader_exit: Callable[[], None] | None = None,
    ):
        self._produce, self._compute, self._consume = produce, compute, consume
        self._computed: queue.Queue = queue.Queue(maxsize=depth)
        self._produced: queue.Queue = queue.Queue(maxsize=depth)
        self._stop_reading = threading.Event()  # Ctrl-C: stop producing, finish what is queued
        self._reader_gone = threading.Event()  # the producer finished, or we stopped waiting for it
        self._abort = threading.Event()  # an error or a second Ctrl-C: everyone stops now
        self._error: BaseException | None = None
        self._grace = stall_grace_s
        self._on_reader_exit = on_reader_exit
        self.interrupted = False
        self.reader_abandoned = False  # run() returned while the producer was still inside a call
        self._gave_up_on_reader = False
        self._stopped_now = False
        self._finished = {name: threading.Event() for name in ("read", "compute", "write")}

    def run(self, presses: Presses | None = None) -> bool:
        """Run to the end; returns True if a Ctrl-C cut the input short. Re-raises a stage's exception.

        presses: the caller's count of Ctrl-C presses (ctrl_c.counting_ctrl_c), for a caller that
        goes on counting after the run; presses it counted before the run count as made during it.
        """
        with counting_ctrl_c(presses) as presses:
            return self._run(presses)

    def _run(self, presses: Presses) -> bool:
        # Threads are watched through events, never Thread.join: on Python 3.11 a KeyboardInterrupt
        # inside join() can mark a still-running thread as stopped (a caller's own handler may raise).
        for name, stage in (("read", self._read), ("compute", self._work), ("write", self._write)):
            threading.Thread(target=self._guard, args=(stage, self._finished[name]), name=f"streamcam-{name}", daemon=True).start()
        writer_done = self._finished["write"]
        give_up_at = None  # when the first Ctrl-C stops waiting for a stuck stage
        seen = 0  # presses acted on
        while not writer_done.is_set():  # the writer ends last: after the worker, which ends after the reader
            time.sleep(_WAKE_S)
            if presses.count > seen:
                seen = presses.count
                if self.interrupted or seen > 1:  # the second Ctrl-C: stop now, without draining the queues
                    self._stop_now()
                    break
                self.interrupted = True
                self._stop_reading.set()
                give_up_at = time.monotonic() + self._grace
            elif give_up_at is not None and time.monotonic() >= give_up_at:
                give_up_at = self._stop_waiting()
                if self._stopped_now:
                    break
        if not self._stopped_now:  # both see the end or an abort within a poll, unless stuck in a call
            _wait(self._finished["compute"], self._grace)
            if not self._gave_up_on_reader:
                _wait(self._finished["read"], self._grace)
        self.reader_abandoned = not self._finished["read"].is_set()
        if not writer_done.is_set():
            raise StagesStuck()
        if self._error is not None and not (self.interrupted and isinstance(self._error, KeyboardInterrupt)):
            raise self._error
        return self.interrupted

    def _stop_waiting(self) -> float | None:
        """The grace after a Ctrl-C is over: let the queued items finish without the producer."""
        if not self._finished["read"].is_set() and not self._reader_gone.is_set():
            self._gave_up_on_reader = True
            self._reader_gone.set()
            return time.monotonic() + self._grace  # one more grace for compute and write to drain
        self._stop_now()  # they did not drain either
        return None

    def _stop_now(self) -> None:
        self._stopped_now = True
        self.interrupted = True
        self._abort.set()
        _wait(self._finished["write"], self._grace)  # the writer finishes the item in hand, then sees the abort

    # -- stages -------------------------------------------------------------------------------
    def _guard(self, stage: Callable[[], None], finished: threading.Event) -> None:
        try:
            stage()
        except BaseException as exc:  # handed to the caller's thread, not swallowed
            if self._error is None:
                self._error = exc
            self._abort.set()
        finally:
            finished.set()

    def _read(self) -> None:
        try:
            items: Iterator = iter(self._produce())
            try:
                for item in items:
                    if self._stop_reading.is_set() or not self._put(self._produced, item, self._reader_gone):
                        break
            finally:
                close = getattr(items, "close", None)
                if close:
                    close()
            self._put(self._produced, _DONE, self._reader_gone)
        finally:
            self._reader_gone.set()
            if self._on_reader_exit is not None:
                self._on_reader_exit()  # the reading thread releases what it read from

    def _work(self) -> None:
        while (item := self._get(self._produced, self._reader_gone)) is not _DONE:
            if not self._put(self._computed, self._compute(item)):
                return
        self._put(self._computed, _DONE)

    def _write(self) -> None:
        while (item := self._get(self._computed)) is not _DONE:
            self._consume(item)

    # -- queue helpers that give up when another stage failed ---------------------------------
    def _put(self, q: queue.Queue, item, give_up: threading.Event | None = None) -> bool:
        """Put unless aborted (or `give_up` is set: nobody will take it); returns whether it was put."""
        while not self._abort.is_set() and not (give_up is not None and give_up.is_set()):
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue, upstream_gone: threading.Event | None = None):
        """The next item; _DONE on abort, or when the upstream stage is gone and the queue is empty."""
        while not self._abort.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                if upstream_gone is not None and upstream_gone.is_set() and q.empty():
                    return _DONE
        return _DONE
