"""The live stream servers of stream_sources.py, read the way streamcam reads them: VideoSource."""

from __future__ import annotations

import importlib.util
import itertools
import time

import pytest

from streamcam.core.errors import InputError
from streamcam.video.source import VideoSource

from stream_sources import MjpegSource, RtspSource

SIZE, RATE = (320, 180), 15
TIMEOUT_S = 5.0
# A stalled read ends after TIMEOUT_S (HTTP) or up to 2 * TIMEOUT_S (RTSP: when the first
# timeout expires the demuxer hands out the packet it held back, the next read waits again).
STALL_READS = {MjpegSource: 1, RtspSource: 2}

needs_rtsp = pytest.mark.skipif(importlib.util.find_spec("rtsp") is None, reason="the `rtsp` package is not installed")


@pytest.fixture(params=[MjpegSource, pytest.param(RtspSource, marks=needs_rtsp)], ids=["mjpeg", "rtsp"])
def stream(request):
    with request.param(size=SIZE, rate=RATE) as server:
        yield server


def take(frames, n: int, seconds: float = 10.0) -> list:
    """Up to n frames, stopping after `seconds` (each read is bounded by the source's timeout)."""
    deadline = time.monotonic() + seconds
    out = []
    for frame in itertools.islice(frames, n):
        out.append(frame)
        if time.monotonic() > deadline:
            break
    return out


def assert_live_frames(frames, n: int) -> None:
    w, h = SIZE
    assert len(frames) == n
    assert all(f.rgb.shape == (h, w, 3) and f.rgb.dtype.name == "uint8" for f in frames)
    assert [f.index for f in frames] == sorted({f.index for f in frames})  # increasing


def test_frames_arrive(stream):
    with VideoSource(stream.url, timeout=TIMEOUT_S) as video:
        assert (video.info.width, video.info.height) == SIZE and video.info.duration_s is None
        assert_live_frames(take(video, 10), 10)


@pytest.mark.slow
def test_pause_stalls_the_read_until_timeout_and_restart_serves_again(stream):
    with VideoSource(stream.url, timeout=TIMEOUT_S) as video:
        frames = iter(video)
        assert len(take(frames, 5)) == 5
        stream.pause()  # shorter than the timeout: the reader waits, then goes on
        time.sleep(1.0)
        stream.resume()
        assert len(take(frames, 5)) == 5

        stream.pause()
        t0 = time.monotonic()
        rest = list(itertools.islice(frames, 3 * RATE))  # what was already sent, then the end
        stalled_s = time.monotonic() - t0
    assert len(rest) < 3 * RATE
    assert TIMEOUT_S - 0.5 < stalled_s < STALL_READS[type(stream)] * TIMEOUT_S + 3
    assert any("(stopped)" in w for w in video.warnings), video.warnings

    stream.restart()  # same URL
    with VideoSource(stream.url, timeout=TIMEOUT_S) as video:
        assert_live_frames(take(video, 10), 10)


def test_mjpeg_serves_one_client_per_start():
    with MjpegSource(size=SIZE, rate=RATE) as stream:
        with VideoSource(stream.url, timeout=TIMEOUT_S) as video:
            assert len(take(video, 3)) == 3
        deadline = time.monotonic() + 5
        while stream.running and time.monotonic() < deadline:  # ffmpeg exits at its next write
            time.sleep(0.05)
        assert not stream.running
        with pytest.raises(InputError, match="Connection refused"):
            VideoSource(stream.url, timeout=TIMEOUT_S)
        stream.restart()
        with VideoSource(stream.url, timeout=TIMEOUT_S) as video:
            assert len(take(video, 3)) == 3


@pytest.mark.slow
@needs_rtsp
def test_rtsp_serves_clients_one_after_another_and_at_once():
    with RtspSource(size=SIZE, rate=RATE) as stream:
        with VideoSource(stream.url, timeout=TIMEOUT_S) as first:
            assert len(take(first, 3)) == 3
            with VideoSource(stream.url, timeout=TIMEOUT_S) as second:
                assert len(take(second, 3)) == 3
        with VideoSource(stream.url, timeout=TIMEOUT_S) as third:
            assert len(take(third, 3)) == 3
        assert stream.running
