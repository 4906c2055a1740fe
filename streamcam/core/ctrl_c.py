"""Ctrl-C as a count that long work reads at its own boundaries, not an exception at any bytecode.

Python raises KeyboardInterrupt wherever the main thread happens to be when SIGINT arrives, and
some of those points lie outside any `try` that could finish the work properly: a press that landed
on a loop's jump back escaped the pipeline, and one that landed while the outputs were being
closed threw a whole analysis away. Inside `counting_ctrl_c()` a press only adds one to
`Presses.count`; the pipeline stops reading when it sees it, and the outputs are finished.
`raise_at` keeps a way out where the work must not be held up for ever: that press raises.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Presses:
    """Ctrl-C presses counted so far; the press that brings `count` to `raise_at` raises
    KeyboardInterrupt instead (None: none does)."""

    def __init__(self) -> None:
        self.count = 0
        self.raise_at: int | None = None

    def press(self, signum=None, frame=None) -> None:
        # A signal handler: Python runs it in the main thread between two bytecodes.
        self.count += 1
        if self.raise_at is not None and self.count >= self.raise_at:
            raise KeyboardInterrupt

    @contextmanager
    def raising_after(self, more: int) -> Iterator[None]:
        """Inside the block, the `more`-th press from now raises (the earlier ones are counted)."""
        before, self.raise_at = self.raise_at, self.count + more
        try:
            yield
        finally:
            self.raise_at = before


@contextmanager
def counting_ctrl_c(presses: Presses | None = None) -> Iterator[Presses]:
    """While the block runs, Ctrl-C adds one to `presses.count` (a new Presses unless given)
    instead of raising. The handler before it comes back when the block ends.

    Only the main thread gets signals: elsewhere nothing is installed and the count stays 0. A
    SIGINT set to be ignored (or left to the system) stays so, and a block inside another block
    on the same Presses changes nothing.
    """
    presses = presses if presses is not None else Presses()
    current = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(current) or current == presses.press:
        yield presses
        return
    signal.signal(signal.SIGINT, presses.press)
    try:
        yield presses
    finally:
        signal.signal(signal.SIGINT, current)


@contextmanager
def ctrl_c_after() -> Iterator[Presses]:
    """Ctrl-C inside the block raises KeyboardInterrupt as the block ends, not where it lands; a
    second press raises at once. For a block of library code that catches every exception:
    Keras's `ops.shape` has a bare `except` that runs while a function is traced, so a press
    during live's warm-up came out as a ValueError and a traceback, not exit 130. An exception
    that leaves the block after a press is taken as the press's doing, and raised as one.
    Outside the main thread (no signals there) the block runs as it is; inside a counting_ctrl_c
    block, the presses go on being counted there, for that block's owner to act on."""
    outer = getattr(signal.getsignal(signal.SIGINT), "__self__", None)
    if isinstance(outer, Presses):
        yield outer
        return
    with counting_ctrl_c() as presses:
        presses.raise_at = 2
        try:
            yield presses
        except Exception as exc:
            if presses.count:
                raise KeyboardInterrupt from exc
            raise
    if presses.count:
        raise KeyboardInterrupt
