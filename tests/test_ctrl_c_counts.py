"""core.ctrl_c: Ctrl-C counted inside the block, raised only where asked, the old handler back after."""

import signal
import threading
import time

import pytest

from streamcam.core.ctrl_c import Presses, counting_ctrl_c

from ctrl_c import self_interrupts


def _wait_for(presses: Presses, count: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while presses.count < count and time.monotonic() < deadline:
        time.sleep(0.005)


def test_presses_inside_the_block_are_counted_and_the_handler_before_comes_back():
    with self_interrupts() as ctrl_c:
        handler_before = signal.getsignal(signal.SIGINT)
        with counting_ctrl_c() as presses:
            ctrl_c.send(0.01, 0.01, 0.01)
            _wait_for(presses, 3)
        assert presses.count == 3 and ctrl_c.sent == 3
        assert signal.getsignal(signal.SIGINT) == handler_before


def test_the_press_that_reaches_raise_at_raises():
    presses = Presses()
    with presses.raising_after(2):
        presses.press()
        with pytest.raises(KeyboardInterrupt):
            presses.press()
    assert presses.count == 2 and presses.raise_at is None  # raising_after gives the old rule back
    presses.press()  # none raises now
    assert presses.count == 3


def test_a_real_press_at_raise_at_raises_from_the_block():
    presses = Presses()
    presses.raise_at = 2
    with self_interrupts() as ctrl_c, counting_ctrl_c(presses):
        ctrl_c.send(0.01, 0.01)
        with pytest.raises(KeyboardInterrupt):
            _wait_for(presses, 3)  # the second press ends this wait
    assert presses.count == 2


def test_a_block_inside_one_on_the_same_presses_keeps_counting_there():
    with self_interrupts() as ctrl_c, counting_ctrl_c() as outer:
        with counting_ctrl_c(outer) as inner:
            assert inner is outer
            ctrl_c.send(0.01)
            _wait_for(outer, 1)
        assert signal.getsignal(signal.SIGINT) == outer.press  # the inner block did not restore another
        assert outer.count == 1


def test_outside_the_main_thread_nothing_is_installed():
    seen = {}

    def in_thread():
        with counting_ctrl_c() as presses:
            seen["handler"] = signal.getsignal(signal.SIGINT)
            seen["count"] = presses.count

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert seen == {"handler": before, "count": 0}


def test_an_ignored_ctrl_c_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with counting_ctrl_c():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
