"""streamcam live on real local streams (tests/stream_sources.py): the browser view, stalls,
reconnects, the recording, and frame age under a slow engine."""

from __future__ import annotations

import csv
import http.client
import itertools
import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamcam.apps.analyze import AnalyzeOptions
from streamcam.apps.live import Backoff, LiveStats, live
from streamcam.apps.live.server import BOUNDARY, BrowserView, LiveServer
from streamcam.explain.trust.smoothing import DEFAULT_SMOOTH_S
from streamcam.video.source import VideoSource

from stall_server import StallingServer
from stream_sources import MjpegSource, RtspSource
from videos import make_video

FAST_BACKOFF = Backoff(first_s=0.05, max_s=0.5)


class StopWhenAsked:
    """A viewer that keeps going until the test sets `stop`."""

    def __init__(self):
        self.stop, self.closed = threading.Event(), False

    def show(self, rgb):
        return not self.stop.is_set()

    def close(self):
        self.closed = True


class LiveRun:
    """live() in a background thread (the test thread drives the sources and reads the figures)."""

    def __init__(self, url, engine, stats, viewers, **kwargs):
        self.stopper = StopWhenAsked()
        self.figures, self.error = None, None

        def run():
            try:
                self.figures = live(url, engine, [*viewers, self.stopper], stats=stats, **kwargs)
            except BaseException as exc:  # handed to the test thread by finish()
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def finish(self, timeout=15):
        self.stopper.stop.set()
        deadline = time.monotonic() + timeout
        while self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not self.thread.is_alive(), "live() did not return"
        if self.error:
            raise self.error
        return self.figures


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def read_mjpeg_parts(url, n):
    host, port = url.split("//")[1].strip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/stream.mjpg")
    response = conn.getresponse()
    assert response.getheader("Content-Type").startswith("multipart/x-mixed-replace")
    pictures = []
    try:
        for _ in range(n):
            line = response.readline()
            while line.strip() != f"--{BOUNDARY}".encode():
                line = response.readline()
                assert line, "the stream ended"
            headers = dict(h.decode().split(": ", 1) for h in iter(lambda: response.readline().strip(), b""))
            data = response.read(int(headers["Content-Length"]))
            picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            assert picture is not None, "a part is not a JPEG"
            pictures.append(picture[:, :, ::-1])
    finally:
        conn.close()
    return pictures


def assert_overlay(rgb, source_rgb_mean):
    """The label strip (dark band with white text) on top, and jet colours blended into the frame."""
    strip = rgb[:12].astype(int)
    assert strip.mean() < 0.6 * source_rgb_mean, "no dark label strip"
    assert (strip.min(axis=2) > 200).sum() > 5, "no text in the strip"
    body = rgb[40:].astype(int)
    r, b = body[..., 0], body[..., 2]
    assert ((r - b > 80) | (b - r > 80)).mean() > 0.05, "no heatmap colours"


def csv_frames(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    frames = {}
    for row in rows:
        frames.setdefault(int(row["frame_index"]), float(row["time_s"]))
    return frames


def count_frames(path):
    with VideoSource(str(path)) as video:
        return sum(1 for _ in video)


@pytest.mark.slow
def test_mjpeg_browser_view_stall_reconnect_and_recording(default_engine, tmp_path):
    """The whole life of a session on an HTTP/MJPEG camera that stalls, dies and comes back."""
    stats = LiveStats(stall_after_s=1.0)
    record = AnalyzeOptions(out_dir=tmp_path / "rec", top_n=3)
    timeout = 2.0
    with MjpegSource(size=(320, 180), rate=15) as source, LiveServer(stats, port=0) as server:
        run = LiveRun(source.url, default_engine, stats, [BrowserView(server)], timeout=timeout, record=record, backoff=FAST_BACKOFF)
        try:
            wait_for(lambda: stats.frames_shown >= 15, 60, "15 frames shown")
            before = stats.snapshot()
            assert before["source_state"] == "playing" and before["reconnects"] == 0 and before["fps"] > 0

            # The browser view: JPEG parts of the overlay, at the source's size; the counts rise.
            pictures = read_mjpeg_parts(server.url, 3)
            assert all(p.shape == (180, 320, 3) for p in pictures)
            assert_overlay(pictures[-1], 110)
            later = stats.snapshot()
            assert later["frames_shown"] > before["frames_shown"]
            assert later["frame_age_ms_p50"] is not None and later["frame_age_ms_p95"] >= later["frame_age_ms_p50"]

            # A stall: the camera goes silent with the connection open. PyAV's read timeout ends the
            # read; the session sees it within the timeout (plus a poll) and reconnects.
            source.pause()
            paused_at = time.monotonic()
            seen = wait_for(lambda: stats.source_state() in ("stalled", "reconnecting"), timeout + 2, "the stall to show")
            assert seen - paused_at <= timeout + 1.5
            wait_for(lambda: stats.source_state() == "reconnecting", timeout + 3, "reconnecting")
            shown_during_gap = stats.frames_shown

            # The camera dies and comes back on the same URL: frames flow again.
            source.stop()
            time.sleep(1.0)  # refused connections meanwhile: the backoff goes on
            restarted_at = time.monotonic()
            source.restart()
            back = wait_for(lambda: stats.frames_shown > shown_during_gap + 5, 30, "frames after the restart")
            after = stats.snapshot()
            assert after["reconnects"] >= 1 and after["source_state"] == "playing"
            print(f"reconnect: frames again {back - restarted_at:.2f} s after the source restarted")
        finally:
            figures = run.finish()
    assert figures["status"] == "stopped" and figures["reconnects"] >= 1 and figures["live_source"]
    assert figures["losses"] and figures["losses"][0]["frames_again_after_s"] > 1.0

    # The recording: complete, playable, one video frame per CSV frame; the outage is a gap in time.
    out = figures["outputs"]
    assert not list((tmp_path / "rec").glob(".*partial*"))
    frames = csv_frames(out["predictions"])
    assert count_frames(out["video"]) == len(frames) == figures["frames_shown"]
    times = [frames[i] for i in sorted(frames)]
    assert all(b > a for a, b in itertools.pairwise(times))
    assert max(b - a for a, b in itertools.pairwise(times)) > 2.0  # the stall + the restart
    summary = json.loads(Path(out["summary"]).read_text())
    assert summary["status"] == "complete" and summary["live"]["reconnects"] >= 1
    assert summary["frames_analysed"] == len(frames)
    # live smooths by default, over the shown frames' timestamps, and the recording says so
    assert Path(out["predictions"]).read_text().splitlines()[0].split(",")[7:] == ["probability_smoothed"]
    header = Path(out["frames_csv"]).read_text().splitlines()[0].split(",")
    assert header[6:11] == ["probability_smoothed", "peak_x", "peak_y", "top1_changed", "cam_r_prev"]
    assert csv_frames(out["frames_csv"]) == frames  # one row per recorded frame
    assert sum(c["frames"] for c in summary["seen"]["top1"]["classes"]) <= len(frames)
    assert (
        summary["smoothing"]["seconds"] == DEFAULT_SMOOTH_S and summary["smoothing"]["stability"]["smoothed"]["top1_flip_rate"] is not None
    )


@pytest.mark.slow
def test_rtsp_source_plays_and_reconnects_after_a_restart(default_engine):
    stats = LiveStats()
    with RtspSource(size=(320, 180), rate=15) as source:
        run = LiveRun(source.url, default_engine, stats, [], timeout=2.0, backoff=FAST_BACKOFF)
        try:
            wait_for(lambda: stats.frames_shown >= 10, 60, "10 RTSP frames shown")
            shown = stats.frames_shown
            source.restart()
            wait_for(lambda: stats.reconnects >= 1 and stats.frames_shown > shown + 10, 40, "frames after the RTSP restart")
        finally:
            figures = run.finish()
    assert figures["reconnects"] >= 1 and figures["frames_shown"] > 20


class SlowEngine:
    """The real engine, slowed down: each call takes `extra_s` longer (a big model, a busy box)."""

    def __init__(self, engine, extra_s):
        self.engine, self.extra_s = engine, extra_s
        self.classifier, self.method = engine.classifier, engine.method

    def explain(self, *args, **kwargs):
        time.sleep(self.extra_s)
        return self.engine.explain(*args, **kwargs)


@pytest.mark.slow
def test_a_slow_engine_drops_frames_and_frame_age_stays_bounded(default_engine):
    # 15 fps in, about 4 frames a second out. A reader that queued frames would fall behind by
    # more than 0.25 s per shown frame: after 30 frames, over 7 s. Ours always takes the newest.
    engine = SlowEngine(default_engine, extra_s=0.2)
    stats = LiveStats()
    with MjpegSource(size=(320, 180), rate=15) as source:
        run = LiveRun(source.url, engine, stats, [], timeout=5.0)
        try:
            wait_for(lambda: stats.frames_shown >= 10, 60, "10 frames")
            early = stats.snapshot()
            wait_for(lambda: stats.frames_shown >= 30, 60, "30 frames")
            late = stats.snapshot()
        finally:
            figures = run.finish()
    bound_ms = 1000 * (0.2 + 0.25 + 2 / 15)  # the slowed call, the real one and render with margin, 2 frame intervals
    assert late["frames_dropped"] > late["frames_shown"]  # most frames were skipped...
    assert early["frame_age_ms_p95"] < bound_ms and late["frame_age_ms_p95"] < bound_ms, (early, late)  # ...so age stays put
    assert figures["frame_age_ms_p95"] < bound_ms


def test_a_url_file_plays_at_its_own_pace_and_ends(default_engine, tmp_path):
    clip = tmp_path / "clip.mp4"
    make_video(clip, 30, size=(96, 64), fps=15, faststart=True)  # 2 s
    stats = LiveStats()
    with StallingServer(clip, stall_at=clip.stat().st_size) as server:  # the whole file: no stall
        began = time.monotonic()
        figures = live(server.url, default_engine, StopWhenAsked(), stats=stats, timeout=5.0)
        took = time.monotonic() - began
    assert figures["status"] == "complete" and not figures["live_source"] and figures["reconnects"] == 0
    assert figures["frames_shown"] + figures["frames_dropped"] == 30
    assert took >= 1.5  # played at 15 fps, not at decode speed (30 frames decode in milliseconds)
