"""core.ctrl_c: Ctrl-C counted inside the block, raised only where asked, the old handler back after."""

import signal
import threading
import time

import pytest

from streamcam.core.ctrl_c import Presses, counting_ctrl_c, ctrl_c_after

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


def _swallowing_wait(presses: Presses, count: int) -> bool:
    """Waits for `count` presses inside a `try` that catches everything, as Keras's ops.shape does
    while a function is traced; True when it caught something."""
    try:
        _wait_for(presses, count)
    except BaseException:
        return True
    return False


def _library_block(ctrl_c, delays: tuple[float, ...], waits_for: int, seen: list, then_fails: bool = False) -> None:
    """Library code that swallows whatever it meets, run under ctrl_c_after while presses come."""
    with ctrl_c_after() as presses:
        ctrl_c.send(*delays)
        seen.append(_swallowing_wait(presses, waits_for))
        seen.append(presses.count)
        if then_fails:
            raise ValueError("what the swallowed interrupt turned into")


def test_ctrl_c_after_raises_as_the_block_ends_not_inside_it():
    seen = []
    with self_interrupts() as ctrl_c, pytest.raises(KeyboardInterrupt):
        _library_block(ctrl_c, (0.01,), 1, seen)
    assert seen == [False, 1]  # counted, nothing for the library to swallow; raised after


def test_ctrl_c_after_a_second_press_raises_at_once_and_an_error_after_a_press_is_the_press():
    seen = []
    with self_interrupts() as ctrl_c, pytest.raises(KeyboardInterrupt) as raised:
        _library_block(ctrl_c, (0.01, 0.01), 3, seen, then_fails=True)
    assert seen == [True, 2]  # the second press raised, and the library swallowed it
    assert isinstance(raised.value.__cause__, ValueError)


def test_ctrl_c_after_without_a_press_changes_nothing_and_leaves_an_outer_count_alone():
    with ctrl_c_after() as presses:
        pass
    assert presses.count == 0
    with pytest.raises(ValueError, match="not a press"), ctrl_c_after():
        raise ValueError("not a press")
    with self_interrupts() as ctrl_c, counting_ctrl_c() as outer:
        with ctrl_c_after() as inner:
            ctrl_c.send(0.01)
            _wait_for(outer, 1)
        assert inner is outer and outer.count == 1  # counted for the outer block's owner, not raised
