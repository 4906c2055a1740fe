"""Run produce -> compute -> consume in three threads joined by bounded queues.

Reading, compute and writing overlap; the queues bound memory whatever the input's length.
An exception in any stage stops the others and is re-raised in the caller's thread (never a
hang, never a silent death). A Ctrl-C in the caller stops the producer; the items already
produced are still computed and consumed, so outputs end cleanly at a frame boundary.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator

_DONE = object()
_POLL_S = 0.1


class Pipeline:
    def __init__(self, produce: Callable[[], Iterable], compute: Callable, consume: Callable, depth: int = 2):
        self._produce, self._compute, self._consume = produce, compute, consume
        self._computed: queue.Queue = queue.Queue(maxsize=depth)
        self._produced: queue.Queue = queue.Queue(maxsize=depth)
        self._stop_reading = threading.Event()  # Ctrl-C: stop producing, finish what is queued
        self._abort = threading.Event()  # an error: everyone stops now
        self._error: BaseException | None = None
        self.interrupted = False

    def run(self) -> bool:
        """Run to the end; returns True if a Ctrl-C cut the input short. Re-raises a stage's exception."""
        threads = [
            threading.Thread(target=self._guard, args=(self._read,), name="streamcam-read", daemon=True),
            threading.Thread(target=self._guard, args=(self._work,), name="streamcam-compute", daemon=True),
            threading.Thread(target=self._guard, args=(self._write,), name="streamcam-write", daemon=True),
        ]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                try:
                    t.join(_POLL_S)
                except KeyboardInterrupt:
                    if self.interrupted:  # a second Ctrl-C: stop now, without draining the queues
                        self._abort.set()
                    self.interrupted = True
                    self._stop_reading.set()
        if self._error is not None and not (self.interrupted and isinstance(self._error, KeyboardInterrupt)):
            raise self._error
        return self.interrupted

    # -- stages -------------------------------------------------------------------------------
    def _guard(self, stage: Callable[[], None]) -> None:
        try:
            stage()
        except BaseException as exc:  # handed to the caller's thread, not swallowed
            if self._error is None:
                self._error = exc
            self._abort.set()

    def _read(self) -> None:
        items: Iterator = iter(self._produce())
        try:
            for item in items:
                if self._stop_reading.is_set() or not self._put(self._produced, item):
                    break
        finally:
            close = getattr(items, "close", None)
            if close:
                close()
        self._put(self._produced, _DONE)

    def _work(self) -> None:
        while (item := self._get(self._produced)) is not _DONE:
            if not self._put(self._computed, self._compute(item)):
                return
        self._put(self._computed, _DONE)

    def _write(self) -> None:
        while (item := self._get(self._computed)) is not _DONE:
            self._consume(item)

    # -- queue helpers that give up when another stage failed ---------------------------------
    def _put(self, q: queue.Queue, item) -> bool:
        while not self._abort.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue):
        while not self._abort.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return _DONE
