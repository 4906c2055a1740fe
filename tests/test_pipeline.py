"""The threaded stage runner: results in order, errors from any stage reach the caller, no hangs."""

import threading
import time

import pytest

from streamcam.pipeline import Pipeline


def test_items_flow_in_order_through_three_stages():
    out = []
    Pipeline(lambda: range(50), lambda x: x * 2, out.append, depth=2).run()
    assert out == [x * 2 for x in range(50)]


@pytest.mark.parametrize("stage", ["produce", "compute", "consume"])
def test_an_error_in_any_stage_is_raised_in_the_caller(stage):
    def produce():
        for i in range(1000):
            if stage == "produce" and i == 5:
                raise ValueError("bad frame")
            yield i

    def compute(x):
        if stage == "compute" and x == 7:
            raise ValueError("engine failed")
        return x

    def consume(x):
        if stage == "consume" and x == 9:
            raise ValueError("disk full")

    started = time.monotonic()
    with pytest.raises(ValueError):
        Pipeline(produce, compute, consume).run()
    assert time.monotonic() - started < 10  # stopped, not hung on a full queue
    assert not [t for t in threading.enumerate() if t.name.startswith("streamcam-")]


def test_queues_are_bounded_so_a_slow_consumer_holds_back_the_reader():
    produced = []

    def produce():
        for i in range(20):
            produced.append(i)
            yield i

    seen_ahead = []

    def consume(x):
        seen_ahead.append(len(produced) - x)
        time.sleep(0.01)

    Pipeline(produce, lambda x: x, consume, depth=2).run()
    assert max(seen_ahead) <= 2 * 2 + 3  # queue depths plus one item held by each stage
