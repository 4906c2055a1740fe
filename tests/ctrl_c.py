"""Ctrl-C sent by a test to its own process, without the race that can end the test worker.

The signal is simulated with `_thread.interrupt_main(SIGINT)`: the installed Python handler runs in
the main thread, exactly as for a terminal's Ctrl-C, but the kernel delivers nothing. A real
os.kill(SIGINT) is left to the tests of child processes (test_interrupts, test_analyze): in a test
worker that had built and dropped several OpenVINO CPU models, the kernel's delivery itself
crashed the worker (SIGSEGV in the main thread's sleep; under gdb, the CPU plugin calls sigaltstack
on the calling thread whenever a compiled model is made or dropped, so most likely a freed
alternate stack was left installed).

A test that interrupts itself races the code under test: if that code returns before the signal
lands, the KeyboardInterrupt hits pytest instead, the test worker dies ("node down: Not properly
terminated") and every test left on it is lost. Inside
`self_interrupts()` a SIGINT raises KeyboardInterrupt, as Python's default handler does (code under
test may install its own handler on top and restore ours when it returns). When the block ends,
the sending thread is stopped and joined, and a SIGINT that was already on its way is dropped and
counted before the previous handler comes back. A KeyboardInterrupt that escapes the block (the
code under test did not handle it) fails the test instead of ending the worker."""

from __future__ import annotations

import _thread
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class SelfInterrupts:
    def __init__(self) -> None:
        self.armed = True
        self.sent = 0
        self.late = 0  # SIGINTs that landed after the block ended
        self._done = threading.Event()
        self._threads: list[threading.Thread] = []

    def send(self, *delays: float, once: tuple[threading.Event, ...] = (), wait_s: float = 30.0) -> None:
        """Send one SIGINT after each delay (cumulative), counted from when all of `once` are set
        (or `wait_s` passed: then the test fails on its own checks rather than waiting forever)."""

        def deliver():
            for event in once:
                event.wait(wait_s)
            for delay in delays:
                if self._done.wait(delay):  # the block ended: send nothing more
                    return
                self.sent += 1
                _thread.interrupt_main(signal.SIGINT)

        thread = threading.Thread(target=deliver, name="test-ctrl-c", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _handle(self, signum, frame):
        # Python runs this in the main thread between bytecodes, so `armed` cannot change under it.
        if self.armed:
            raise KeyboardInterrupt
        self.late += 1


@contextmanager
def self_interrupts() -> Iterator[SelfInterrupts]:
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("only the main thread handles SIGINT")
    state = SelfInterrupts()
    previous = signal.signal(signal.SIGINT, state._handle)
    try:
        yield state
    except KeyboardInterrupt as interrupt:
        raise AssertionError("a Ctrl-C reached the test: the code under test did not handle it") from interrupt
    finally:
        state.armed = False
        state._done.set()
        for thread in state._threads:
            thread.join()
        time.sleep(0.05)  # a signal sent just before the join runs its handler here, and is dropped
        signal.signal(signal.SIGINT, previous)
