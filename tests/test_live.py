"""streamcam live, driven by a fake viewer (no window needed)."""

import _thread
import itertools
import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from streamcam.apps.analyze import AnalyzeOptions
from streamcam.apps.live import WindowViewer, live
from streamcam.core.errors import InputError, UsageError
from streamcam.core.preprocess import resize_batch

from ctrl_c import self_interrupts
from stall_server import StallingServer, packet_offset
from videos import make_video


class FakeViewer:
    def __init__(self, stop_after=None):
        self.frames, self.stop_after, self.closed = [], stop_after, False
        self.showing = threading.Event()  # set at the first picture: live() is in its frame loop

    def show(self, rgb):
        self.frames.append(rgb)
        self.showing.set()
        return self.stop_after is None or len(self.frames) < self.stop_after

    def close(self):
        self.closed = True


def test_live_shows_overlays_until_the_input_ends(default_engine, tmp_path):
    src = tmp_path / "clip.mp4"
    make_video(src, 12, size=(96, 64))
    viewer = FakeViewer()
    stats = live(str(src), default_engine, viewer)
    assert viewer.closed and 1 <= stats["frames_shown"] == len(viewer.frames) <= 12
    assert stats["frames_shown"] + stats["frames_dropped"] == 12  # every frame is either shown or skipped
    assert viewer.frames[0].shape == (64, 96, 3) and viewer.frames[0].dtype == np.uint8


def test_live_stops_when_the_viewer_says_so(default_engine, tmp_path):
    src = tmp_path / "clip.mp4"
    make_video(src, 40, size=(96, 64))
    viewer = FakeViewer(stop_after=2)
    assert live(str(src), default_engine, viewer)["frames_shown"] == 2 and viewer.closed


def test_live_at_a_larger_input_size_keeps_the_frame_size(default_engine, tmp_path):
    src = tmp_path / "wide.mp4"
    make_video(src, 6, size=(320, 128))
    viewer = FakeViewer()
    stats = live(str(src), default_engine, viewer, top_k=1, class_ids=[444], input_size="320")
    assert stats["frames_shown"] >= 1 and all(f.shape == (128, 320, 3) for f in viewer.frames)
    with pytest.raises(UsageError, match="--input-size"):
        live(str(src), default_engine, FakeViewer(), input_size="wide")


def test_ctrl_c_during_the_warm_up_ends_live_after_it_not_inside_the_engine(default_engine, tmp_path, monkeypatch):
    """A press while the engine traces (Keras code that can swallow a KeyboardInterrupt) is raised
    once the warm-up calls are done, before any frame is read."""
    from streamcam.explain.runtime.compiled_shapes import FIX_AFTER

    src = tmp_path / "clip.mp4"
    make_video(src, 12, size=(96, 64))
    calls = []
    explain = default_engine.explain

    def pressed_in_the_first_call(images, *args, **kwargs):
        if not calls:
            _thread.interrupt_main(signal.SIGINT)
        out = explain(images, *args, **kwargs)
        calls.append(len(images))
        return out

    monkeypatch.setattr(default_engine, "explain", pressed_in_the_first_call)
    viewer = FakeViewer()
    with self_interrupts(), pytest.raises(KeyboardInterrupt):
        live(str(src), default_engine, viewer)
    assert calls == [1] * FIX_AFTER and viewer.frames == []


def test_live_bad_input(default_engine, tmp_path):
    with pytest.raises(InputError):
        live(str(tmp_path / "missing.mp4"), default_engine, FakeViewer())


def test_window_viewer_needs_a_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    with pytest.raises(UsageError, match="no display"):
        WindowViewer()


# -- quitting while the reader is stuck in a read (issue 6) ---------------------------------------

READER_THREAD = "streamcam-live-read"


def _reader_threads():
    return [t for t in threading.enumerate() if t.name == READER_THREAD]


def _sockets_to(port):
    """How many of this process's open TCP sockets are connected to `port` (Linux /proc).

    A VideoSource reading an HTTP URL holds one such socket while its container is open;
    closing the container closes it (the server's own sockets have `port` as local port).
    """
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile (or the listing's own fd)
        if link.startswith("socket:["):
            inodes.add(link[len("socket:[") : -1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                count += 1
    return count


def _wait_until(condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


class QuitOnceStalled(FakeViewer):
    """Shows frames until the server has stalled, then (after the reader has had time to block in
    its read of the missing bytes) says stop. Records the reader thread and the open connections."""

    def __init__(self, server, port):
        super().__init__()
        self.server, self.port = server, port
        self.reader, self.sockets_when_quitting = None, None

    def show(self, rgb):
        self.frames.append(rgb)
        assert self.server.stalled.wait(10), "the server never sent its part"
        time.sleep(0.5)  # the reader decodes what arrived (ms), then waits in the network read
        (self.reader,) = _reader_threads()
        self.sockets_when_quitting = _sockets_to(self.port)
        return False


@pytest.fixture
def stalling_clip(tmp_path):
    """An mp4 (index at the front) whose bytes stop after about 10 frames."""
    if not os.path.exists("/proc/self/fd"):
        pytest.skip("needs Linux /proc to see the connection")
    src = tmp_path / "clip.mp4"
    make_video(src, 40, size=(96, 64), faststart=True)
    return src, packet_offset(src, 10)


def test_quitting_while_the_reader_is_stuck_in_a_stalled_read(default_engine, stalling_clip):
    assert _wait_until(lambda: not _reader_threads(), 15), "a reader thread of an earlier test is still running"
    src, stall_at = stalling_clip
    with StallingServer(src, stall_at) as server:
        port = int(server.url.split(":")[2].split("/")[0])
        viewer = QuitOnceStalled(server, port)
        began = time.monotonic()
        stats = live(server.url, default_engine, viewer)  # before the fix: ValueError: generator already executing
        took = time.monotonic() - began
        assert stats["frames_shown"] == 1 and viewer.closed
        assert took < 6, f"quitting took {took:.1f}s: it waited for the stalled read (10 s network timeout)"
        # The scenario really happened: when the viewer quit, the reader was blocked in the read with
        # the connection open, and live() returned without closing the container under it.
        assert viewer.sockets_when_quitting == 1
        assert viewer.reader.is_alive() and _sockets_to(port) == 1
    # The server is gone: the read returns, and the reader thread closes the source itself.
    assert _wait_until(lambda: not viewer.reader.is_alive(), 12), "the reader thread never ended"
    assert not _reader_threads()
    assert _wait_until(lambda: _sockets_to(port) == 0, 2), "the container was not closed"


def test_ctrl_c_while_the_reader_is_stuck_in_a_stalled_read(default_engine, stalling_clip):
    assert _wait_until(lambda: not _reader_threads(), 15), "a reader thread of an earlier test is still running"
    src, stall_at = stalling_clip
    with StallingServer(src, stall_at) as server:
        port = int(server.url.split(":")[2].split("/")[0])

        # Trace the engine first: the signal is meant for the frame loop, not for TensorFlow's tracing.
        default_engine.explain(resize_batch([np.zeros((64, 96, 3), np.uint8)], default_engine.classifier.input_size), 1, ())
        viewer = FakeViewer()  # never quits by itself
        began = time.monotonic()
        with self_interrupts() as ctrl_c:
            # Ctrl-C (its Python handler runs as for a terminal's; see ctrl_c.py) once live() is in its
            # frame loop (where Ctrl-C means "finish") and the reader is blocked; a loaded machine can
            # take seconds to get there.
            ctrl_c.send(0.5, once=(viewer.showing, server.stalled))
            figures = live(server.url, default_engine, viewer)  # the first Ctrl-C ends the session cleanly
            took = time.monotonic() - began
        assert ctrl_c.sent == 1 and ctrl_c.late == 0
        assert figures["status"] == "interrupted" and figures["frames_shown"] >= 1
        assert viewer.closed and took < 8, f"Ctrl-C took {took:.1f}s to stop live()"
        reader = _reader_threads()
        assert len(reader) == 1 and _sockets_to(port) == 1  # still in the read; the container left open
    assert _wait_until(lambda: not reader[0].is_alive(), 12), "the reader thread never ended"
    assert _wait_until(lambda: _sockets_to(port) == 0, 2), "the container was not closed"


class PressesCtrlCOnClose(FakeViewer):
    """A viewer that is closed after the frame loop, as the session shuts down: a Ctrl-C then."""

    def close(self):
        super().close()
        _thread.interrupt_main(signal.SIGINT)  # its handler runs at the main thread's next bytecode check


def test_a_second_ctrl_c_while_the_session_closes_keeps_the_recording(default_engine, tmp_path):
    """The first press ends the frame loop; the second lands while the viewers close, before the
    recording is finished: the recording is finished all the same (footage from a live source
    cannot be had again), the session says interrupted, and nothing half-written is left."""
    src, rec = tmp_path / "clip.mp4", tmp_path / "rec"
    make_video(src, 400, size=(96, 64))
    viewer = PressesCtrlCOnClose()
    with self_interrupts() as ctrl_c:
        ctrl_c.send(0.3, once=(viewer.showing,))
        figures = live(str(src), default_engine, viewer, record=AnalyzeOptions(out_dir=rec))
    assert ctrl_c.sent == 1 and ctrl_c.late == 0 and viewer.closed
    assert figures["status"] == "interrupted" and 1 <= figures["frames_shown"] < 400
    summary = json.loads(Path(figures["outputs"]["summary"]).read_text())
    assert summary["status"] == "interrupted" and summary["frames_analysed"] == figures["frames_shown"]
    assert all(Path(path).stat().st_size > 0 for path in figures["outputs"].values())
    assert not [p.name for p in rec.iterdir() if p.name.startswith(".")]


# -- latest frame wins ---------------------------------------------------------------------------


class SlowViewer(FakeViewer):
    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def show(self, rgb):
        time.sleep(self.seconds)
        return super().show(rgb)


def test_live_skips_the_backlog_and_always_shows_the_newest_frame(default_engine, tmp_path):
    # 60 frames at 100 fps, played at their own speed (0.6 s), shown by a consumer that needs
    # more than 0.1 s a frame: about 10 new frames arrive while each one is on screen.
    src = tmp_path / "fast.mp4"
    make_video(src, 60, size=(96, 64), fps=100)
    taken = []
    stats = live(str(src), default_engine, SlowViewer(0.1), on_frame=lambda frame, rate: taken.append(frame.index))
    assert stats["frames_shown"] == len(taken) and stats["frames_dropped"] > 0
    assert stats["frames_shown"] + stats["frames_dropped"] == 60
    assert all(b > a for a, b in itertools.pairwise(taken)), taken  # never an older frame after a newer one
    assert taken[-1] == 59, taken  # the final frame is the newest at the end: it is shown
    # After each slow show the next frame taken is one of the newest (>= 5 frames on, or the last),
    # not the next in line: a reader that queued every frame would show 0, 1, 2, ...
    assert all(b - a >= min(5, 59 - a) for a, b in itertools.pairwise(taken)), taken


def test_a_second_recording_into_the_same_folder_keeps_the_first(default_engine, tmp_path):
    src = tmp_path / "clip.mp4"
    make_video(src, 4, size=(96, 64))
    rec = tmp_path / "rec"
    first = live(str(src), default_engine, FakeViewer(), record=AnalyzeOptions(out_dir=rec))["outputs"]
    second = live(str(src), default_engine, FakeViewer(), record=AnalyzeOptions(out_dir=rec))["outputs"]
    # Time-stamped names (`clip-YYYYmmdd-HHMMSS[-n]`), different even within one second.
    assert re.fullmatch(r"clip-\d{8}-\d{6}(-\d+)?\.gradcam\.mp4", Path(first["video"]).name)
    assert set(first) == set(second) == {"predictions", "frames_csv", "summary", "video"}
    for key in first:
        assert first[key] != second[key] and Path(first[key]).is_file() and Path(second[key]).is_file()
    assert len(list(rec.iterdir())) == 8


def test_the_label_strip_gives_no_rate_until_two_frames_are_shown():
    from streamcam.apps.live import LiveStats
    from streamcam.apps.live.stats import rate_text

    now = [100.0]
    stats = LiveStats(clock=lambda: now[0])
    stats.start()
    texts = [rate_text(stats.snapshot())]
    for _ in range(3):
        stats.frame_shown(now[0], [], 0.0)
        texts.append(rate_text(stats.snapshot()))
        now[0] += 0.2
    assert texts == ["-- fps", "-- fps", "5.0 fps", "5.0 fps"]
