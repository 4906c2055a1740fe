"""streamcam live, driven by a fake viewer (no window needed)."""

import numpy as np
import pytest

from streamcam.errors import InputError, UsageError
from streamcam.live import WindowViewer, live
from videos import make_video


class FakeViewer:
    def __init__(self, stop_after=None):
        self.frames, self.stop_after, self.closed = [], stop_after, False

    def show(self, rgb):
        self.frames.append(rgb)
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


def test_live_bad_input(default_engine, tmp_path):
    with pytest.raises(InputError):
        live(str(tmp_path / "missing.mp4"), default_engine, FakeViewer())


def test_window_viewer_needs_a_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    with pytest.raises(UsageError, match="no display"):
        WindowViewer()
