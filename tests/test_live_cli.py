"""`streamcam live` as a real process: serving without a display, recording a live stream until a
real Ctrl-C, and bad --serve addresses."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.request

import pytest

from live_process import URL_WAIT_S, LiveProcess
from stream_sources import MjpegSource, is_listening
from videos import make_video

STATS_LINE = re.compile(r"^(\d+) frames shown at [\d.]+ fps, \d+ skipped, \d+ reconnects, frame age p50 \d+ ms, p95 \d+ ms$", re.M)


def _stats(url: str) -> dict:
    with urllib.request.urlopen(url + "stats.json", timeout=5) as response:
        return json.loads(response.read())


def _wait_stats(url: str, live: LiveProcess, condition, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        if live.proc.poll() is not None:
            pytest.fail(f"streamcam live ended early ({live.proc.returncode}): {live.stderr}")
        try:
            last = _stats(url)
        except OSError:
            last = None
        if last is not None and condition(last):
            return last
        time.sleep(0.2)
    pytest.fail(f"/stats.json never matched in {seconds:g}s; last: {last}; stderr: {live.stderr}")


def _port_free(port: int) -> bool:
    if is_listening(port):
        return False
    with socket.socket() as s:
        # as the server binds: TIME_WAIT left by an earlier run's connections does not block it
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.slow
def test_without_a_display_it_serves_on_8080(tmp_path):
    if not _port_free(8080):
        pytest.skip("127.0.0.1:8080 is in use: the display-less default port cannot be tested here")
    clip = tmp_path / "clip.mp4"
    make_video(clip, 750, size=(96, 64), fps=25)  # 30 s at its own pace: still playing at the Ctrl-C
    live = LiveProcess(str(clip))
    try:
        url = live.wait_for_url()
        assert url == "http://127.0.0.1:8080/"
        assert "no display: serving the live view to browsers instead" in live.stderr
        stats = _wait_stats(url, live, lambda s: s["frames_shown"] >= 1)
        assert stats["source_state"] == "playing"
        code, stdout, _ = live.interrupt()
        assert code == 130, live.stderr
        assert STATS_LINE.search(stdout), stdout
        assert "Traceback" not in live.stderr
    finally:
        live.kill()


@pytest.mark.slow
def test_recording_a_stream_until_ctrl_c(tmp_path):
    pd = pytest.importorskip("pandas")
    from streamcam.video.source import VideoSource

    out = tmp_path / "rec"
    live = None
    with MjpegSource(size=(320, 180), rate=15) as source:
        try:
            live = LiveProcess(source.url, "--no-window", "--serve", "127.0.0.1:0", "--record", str(out))
            url = live.wait_for_url()
            _wait_stats(url, live, lambda s: s["frames_shown"] >= 20)
            code, stdout, _ = live.interrupt()
        finally:
            if live is not None:
                live.kill()
    assert code == 130, live.stderr
    assert "Traceback" not in live.stderr
    line = STATS_LINE.search(stdout)
    assert line, stdout
    shown = int(line.group(1))

    video, csv, summary = (next(out.glob(f"127.0.0.1-*.{name}")) for name in ("gradcam.mp4", "predictions.csv", "summary.json"))
    assert video.is_file() and csv.is_file() and summary.is_file(), sorted(p.name for p in out.iterdir())
    assert not [p.name for p in out.iterdir() if "partial" in p.name]

    table = pd.read_csv(csv)
    frames = table.groupby("frame_index", sort=False)["time_s"].first()
    assert list(frames.index) == sorted(frames.index) and frames.index.is_unique
    times = frames.to_numpy()
    assert (times[1:] > times[:-1]).all(), times
    with VideoSource(str(video)) as decoded:
        n_video = sum(1 for _ in decoded)
    assert n_video == len(frames) >= 20
    assert shown == len(frames)
    assert pd.read_csv(next(out.glob("127.0.0.1-*.frames.csv")))["time_s"].tolist() == times.tolist()  # a row per frame

    figures = json.loads(summary.read_text())
    assert figures["status"] == "interrupted"
    assert figures["live"]["frames_shown"] == len(frames)
    assert isinstance(figures["live"]["frame_age_ms_p50"], (int, float))


def test_bad_serve_addresses_are_one_error_line(tmp_path):
    clip = tmp_path / "clip.mp4"
    make_video(clip, 10, size=(96, 64))

    live = LiveProcess(str(clip), "--no-window", "--serve", "127.0.0.1:notaport")
    try:
        code, _stdout = live.finish(30)
    finally:
        live.kill()
    lines = live.stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "--serve" in lines[0], live.stderr

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        live = LiveProcess(str(clip), "--no-window", "--serve", f"127.0.0.1:{port}")
        try:
            code, _stdout = live.finish(URL_WAIT_S)
        finally:
            live.kill()
    lines = live.stderr.strip().splitlines()
    assert code != 0 and "Traceback" not in live.stderr, live.stderr
    assert len(lines) == 1 and "cannot serve" in lines[0], live.stderr
