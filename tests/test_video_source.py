"""VideoSource: decoding order, timestamps, rotation, ranges, sampling and bad input."""

from __future__ import annotations

import sys
import types
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from streamcam.core.errors import InputError, UsageError
from streamcam.video import source as source_mod
from streamcam.video.source import VideoSource, probe, rotation_k, upright

from videos import (
    SHARED_VIDEOS,
    corrupt_packets,
    flip_header_bytes,
    frame_image,
    frame_number,
    make_audio_only,
    make_size_change_ts,
    make_video,
    marker_corner,
)


def shared(name: str):
    path = SHARED_VIDEOS / name
    if not path.exists():
        pytest.skip(f"shared test video not available: {path}")
    return path


def read_all(path, **kwargs):
    with VideoSource(str(path), **kwargs) as src:
        return src, list(src)


@pytest.fixture(scope="module")
def cfr(tmp_path_factory):
    """40 frames, 10 fps, keyframe every 10 frames."""
    path = tmp_path_factory.mktemp("cfr") / "cfr.mp4"
    make_video(path, 40, size=(64, 48), fps=10, gop=10)
    return path


# -- basics ---------------------------------------------------------------------------


def test_frames_in_order_as_contiguous_rgb(cfr):
    src, frames = read_all(cfr)
    assert [f.index for f in frames] == list(range(40))
    assert [frame_number(f.rgb) for f in frames] == list(range(40))
    for f in frames[:3]:
        assert f.rgb.shape == (48, 64, 3) and f.rgb.dtype == np.uint8 and f.rgb.flags.c_contiguous
    assert [f.time_s for f in frames] == pytest.approx([i / 10 for i in range(40)], abs=1e-9)
    assert frames[7].pts * src.info.time_base == pytest.approx(0.7)
    assert src.warnings == [] and src.decode_errors == 0


def test_info_from_header(cfr):
    info = probe(str(cfr))
    assert (info.width, info.height, info.codec, info.rotation) == (64, 48, "h264", 0)
    assert "mp4" in info.container
    assert info.fps == pytest.approx(10)
    assert info.frames == 40
    assert info.duration_s == pytest.approx(4.0, abs=0.11)
    assert info.has_audio is False
    assert isinstance(info.time_base, Fraction)


def test_iterates_lazily_and_only_once(cfr):
    with VideoSource(str(cfr)) as src:
        frames = iter(src)
        assert isinstance(frames, types.GeneratorType)  # no frame list is built
        assert next(frames).index == 0
        with pytest.raises(RuntimeError):
            iter(src)


def test_picks_video_stream_when_audio_is_stream_zero(tmp_path):
    path = tmp_path / "a0.mp4"
    make_video(path, 10, with_audio=True, audio_first=True)
    with av.open(str(path)) as c:
        assert c.streams[0].type == "audio"
    src, frames = read_all(path)
    assert src.info.has_audio and len(frames) == 10
    assert [frame_number(f.rgb) for f in frames] == list(range(10))


def test_variable_frame_rate_timestamps_kept(tmp_path):
    path = tmp_path / "vfr.mp4"
    times = make_video(path, 24, vfr_durations=[0.04, 0.12, 0.02, 0.07])
    _, frames = read_all(path)
    assert [f.time_s for f in frames] == pytest.approx(times, abs=1e-4)
    assert [frame_number(f.rgb) for f in frames] == list(range(24))


@pytest.mark.parametrize(("codec", "ext"), [("libvpx-vp9", ".webm"), ("mjpeg", ".avi")])
def test_other_codecs(tmp_path, codec, ext):
    path = tmp_path / f"v{ext}"
    make_video(path, 12, codec=codec)
    src, frames = read_all(path)
    assert src.info.codec == ("vp9" if codec == "libvpx-vp9" else "mjpeg")
    assert [frame_number(f.rgb) for f in frames] == list(range(12))


def test_no_duration_no_frame_count():
    src, frames = read_all(shared("awkward_vp9_no_duration_dark.webm"))
    assert src.info.frames is None and src.info.duration_s is None
    assert len(frames) == 74
    assert src.warnings == []


# -- rotation ----------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_upright_matches_np_rot90(k):
    img = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    out = upright(img[:, ::2], 90 * k)  # non-contiguous input on purpose
    assert np.array_equal(out, np.rot90(img[:, ::2], k)) and out.flags.c_contiguous


def test_rotation_sign_convention():
    assert [rotation_k(r) for r in (0, 90, -90, 180, -180, 270, -270)] == [0, 1, 3, 2, 2, 3, 1]


@pytest.mark.parametrize(("rotation", "corner"), [(90, "bl"), (-90, "tr"), (180, "br")])
def test_rotation_metadata_applied_like_opencv(tmp_path, rotation, corner):
    path = tmp_path / f"rot{rotation}.mp4"
    make_video(path, 5, size=(64, 48), rotation=rotation)
    src, frames = read_all(path)
    expect = (48, 64) if rotation % 180 else (64, 48)
    assert (src.info.width, src.info.height) == expect
    assert frames[0].rgb.shape == (expect[1], expect[0], 3)
    # Counter-clockwise display rotation moves the top-left marker to this corner.
    assert marker_corner(frames[0].rgb) == corner
    ok, bgr = cv2.VideoCapture(str(path)).read()  # OpenCV autorotates: the oracle
    assert ok and bgr.shape == frames[0].rgb.shape
    assert np.abs(bgr[:, :, ::-1].astype(int) - frames[0].rgb).mean() < 3


def test_real_rot180_phone_video_matches_opencv():
    path = shared("awkward_rot180_vfr_phone_dog_fireplace.mp4")
    with VideoSource(str(path)) as src:
        first = next(iter(src))
    assert src.info.rotation in (180, -180)
    assert (src.info.width, src.info.height) == (1280, 720)
    ok, bgr = cv2.VideoCapture(str(path)).read()
    assert ok
    diff = np.abs(bgr[:, :, ::-1].astype(int) - first.rgb).mean()
    assert diff < 3, diff
    raw = np.abs(bgr[:, :, ::-1].astype(int) - first.rgb[::-1, ::-1]).mean()
    assert raw > 20  # the un-rotated frame really is different


# -- range and sampling --------------------------------------------------------------------


def test_start_end_seeks_instead_of_decoding_everything(cfr):
    with VideoSource(str(cfr), start=2.25, end=3.0) as src:
        frames = list(src)
        decoded = src._decoded
    assert [frame_number(f.rgb) for f in frames] == [23, 24, 25, 26, 27, 28, 29]
    assert frames[0].index == 23 and frames[0].time_s == pytest.approx(2.3)  # the source's frame number
    # Keyframe before 2.25 s is at 2.0 s: 1 probe frame + frames 20..30 at most, not 30+.
    assert decoded <= 12


def test_end_only(cfr):
    _, frames = read_all(cfr, end=0.5)
    assert [frame_number(f.rgb) for f in frames] == [0, 1, 2, 3, 4]


def test_start_past_end_is_usage_error(cfr):
    with pytest.raises(UsageError, match="past the end"):
        VideoSource(str(cfr), start=99)


def test_every_nth(cfr):
    _, frames = read_all(cfr, every=3, start=1.0, end=2.0)
    assert [frame_number(f.rgb) for f in frames] == [10, 13, 16, 19]
    assert [f.index for f in frames] == [10, 13, 16, 19]  # source frame numbers, not 0, 1, 2...


def test_fps_sampling(cfr):
    _, frames = read_all(cfr, fps=2.5)
    assert [frame_number(f.rgb) for f in frames] == [0, 4, 8, 12, 16, 20, 24, 28, 32, 36]


def test_fps_sampling_on_variable_rate(tmp_path):
    path = tmp_path / "vfr.mp4"
    times = make_video(path, 30, vfr_durations=[0.03, 0.15, 0.05])
    _, frames = read_all(path, fps=5)
    kept = [f.time_s for f in frames]
    # Each kept frame is the first one at or after its 0.2 s grid instant.
    expect, nxt = [], 0.0
    for t in times:
        if t >= nxt - 1e-6:
            expect.append(t)
            nxt = (int(t / 0.2 + 1e-6) + 1) * 0.2
    assert kept == pytest.approx(expect, abs=1e-4)


@pytest.mark.parametrize(
    "kwargs",
    [{"every": 2, "fps": 5.0}, {"every": 0}, {"fps": 0}, {"start": 2, "end": 1}, {"start": -1}],
)
def test_bad_sampling_options(cfr, kwargs):
    with pytest.raises(UsageError):
        VideoSource(str(cfr), **kwargs)


# -- bad input ------------------------------------------------------------------------------


def assert_input_error(source, match):
    with pytest.raises(InputError, match=match) as err:
        VideoSource(source)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message and "Errno" not in message
    return message


def test_missing_file(tmp_path):
    assert_input_error(str(tmp_path / "nope.mp4"), "no such file")


def test_directory(tmp_path):
    assert_input_error(str(tmp_path), "directory")


def test_zero_bytes(tmp_path):
    (tmp_path / "z.webm").write_bytes(b"")
    assert_input_error(str(tmp_path / "z.webm"), "empty file")


def test_shared_zero_bytes():
    assert_input_error(str(shared("awkward_zero_bytes.webm")), "empty file")


def test_text_file(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    assert_input_error(str(path), "cannot open")


def test_png_is_a_one_frame_video(tmp_path):
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), frame_image(3, 64, 48)[:, :, ::-1])
    _, frames = read_all(path)
    assert len(frames) == 1 and frame_number(frames[0].rgb) == 3


def test_audio_only(tmp_path):
    path = tmp_path / "a.m4a"
    make_audio_only(path)
    assert_input_error(str(path), "no video stream")


def test_truncated_before_index(tmp_path):
    full = tmp_path / "full.mp4"
    make_video(full, 20, size=(96, 64))  # moov is written last
    data = full.read_bytes()
    assert data.rfind(b"moov") > len(data) // 2
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    assert_input_error(str(cut), "cannot open")


def test_index_but_no_frame_data(tmp_path):
    full = tmp_path / "full.mp4"
    make_video(full, 20, size=(96, 64), faststart=True)
    with av.open(str(full)) as c:
        first_pos = next(p.pos for p in c.demux(video=0) if p.pos is not None)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: first_pos + 5])
    assert_input_error(str(cut), "could not decode any video frame")


def test_truncated_mid_stream_generated(tmp_path):
    full = tmp_path / "full.mp4"
    make_video(full, 30, size=(160, 120), faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    src, frames = read_all(cut)
    assert 0 < len(frames) < 30
    assert [frame_number(f.rgb) for f in frames] == list(range(len(frames)))
    assert src.decode_errors >= 1 and "stopped" in src.warnings[-1]


def test_truncated_mid_stream_real(tmp_path):
    data = shared("road_highway_dashcam_solidWhiteRight.mp4").read_bytes()
    cut = tmp_path / "half.mp4"
    cut.write_bytes(data[: len(data) // 2])
    src, frames = read_all(cut)
    assert src.info.frames == 221
    assert 0 < len(frames) < 221
    assert src.decode_errors >= 1 and src.warnings


# -- cameras and URLs -----------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux device naming")
def test_camera_index_maps_to_v4l2(monkeypatch):
    seen = {}

    def fake_open(file, mode, **kwargs):
        seen.update(file=file, **kwargs)
        raise av.error.FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(source_mod.av, "open", fake_open)
    with pytest.raises(InputError, match="cannot open 0"):
        VideoSource("0")
    assert seen["file"] == "/dev/video0" and seen["format"] == "v4l2"
    with pytest.raises(InputError):
        VideoSource(2)
    assert seen["file"] == "/dev/video2"


def test_network_url_gets_timeout_and_tcp(monkeypatch):
    seen = {}

    def fake_open(file, mode, **kwargs):
        seen.update(file=file, **kwargs)
        raise av.error.ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(source_mod.av, "open", fake_open)
    with pytest.raises(InputError, match="Connection refused"):
        VideoSource("rtsp://cam.local/stream", options={"stimeout": 5})
    assert seen["file"] == "rtsp://cam.local/stream"
    assert seen["timeout"] == source_mod.NETWORK_TIMEOUT_S
    assert seen["options"] == {"rtsp_transport": "tcp", "stimeout": "5"}


def test_unreachable_tcp_url_is_input_error():
    assert_input_error("tcp://127.0.0.1:9", "cannot open tcp://127.0.0.1:9")


# -- damaged files (issue 6) ----------------------------------------------------------------


def _metadata_breaking_flip(tmp_path):
    """An MP4 with header bytes flipped so that its metadata is not valid UTF-8 for PyAV.

    The first of a fixed run of seeds whose flips make a plain (strict) av.open raise
    UnicodeDecodeError: deterministic, and still a reproduction if the muxer's layout moves.
    """
    clip = tmp_path / "clip.mp4"
    make_video(clip, 20, size=(64, 48), fps=10, faststart=True, with_audio=True)
    data = clip.read_bytes()
    bad = tmp_path / "bad.mp4"
    for seed in range(300):
        bad.write_bytes(flip_header_bytes(data, seed))
        try:
            av.open(str(bad)).close()
        except UnicodeDecodeError:
            return bad
        except Exception:  # other damage: not this reproduction
            continue
    pytest.fail("no seed in 0..299 damages the metadata")


def test_invalid_utf8_metadata_is_no_traceback(tmp_path):
    bad = _metadata_breaking_flip(tmp_path)
    try:
        src, frames = read_all(bad)
    except InputError as err:
        error = str(err)
    else:
        error = None
    if error is not None:
        assert "\n" not in error
    else:
        assert frames and (src.info.width, src.info.height) == (64, 48)
        assert isinstance(src.info.codec, str) and isinstance(src.info.container, str)
        with VideoSource(str(bad)) as again:  # metadata read through the source's container decodes too
            assert isinstance(dict(again._container.metadata), dict)
            assert all(isinstance(dict(s.metadata), dict) for s in again._container.streams)


@pytest.mark.parametrize("seed", range(40))
def test_flipped_header_bytes_give_frames_or_input_error(tmp_path, seed):
    clip = tmp_path / "clip.mp4"
    make_video(clip, 20, size=(64, 48), fps=10, faststart=seed % 2 == 0, with_audio=seed % 3 == 0)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(flip_header_bytes(clip.read_bytes(), seed))
    try:
        _src, frames = read_all(bad)
    except (InputError, UsageError) as err:
        error, frames = str(err), []
    else:
        error = None
    assert error is None or "\n" not in error
    if error is None:
        assert all(f.rgb.dtype == np.uint8 and f.rgb.ndim == 3 for f in frames)


@pytest.mark.parametrize(("codec", "ext"), [("libx264", ".mp4"), ("mjpeg", ".avi")])
def test_undecodable_packets_mid_stream_are_skipped(tmp_path, codec, ext):
    clip = tmp_path / f"clip{ext}"
    make_video(clip, 30, size=(96, 64), fps=10, codec=codec, gop=10)
    bad = tmp_path / f"bad{ext}"
    corrupt_packets(clip, bad, [12, 13, 14], seed=1)
    src, frames = read_all(bad)
    numbers = [frame_number(f.rgb) for f in frames]
    assert numbers[:12] == list(range(12))
    assert numbers[-10:] == list(range(20, 30))  # from the next keyframe on, all decoded
    assert [f.index for f in frames[-10:]] == list(range(20, 30))  # source numbers, not a count
    assert 1 <= src.decode_errors <= 3
    assert len(src.warnings) == 1 and "undecodable" in src.warnings[0]


def test_gives_up_after_many_consecutive_errors(tmp_path):
    clip = tmp_path / "clip.avi"
    n = source_mod.MAX_CONSECUTIVE_DECODE_ERRORS + 30
    make_video(clip, n, size=(64, 48), fps=10, codec="mjpeg")
    bad = tmp_path / "bad.avi"
    corrupt_packets(clip, bad, list(range(10, n - 10)), seed=2)
    src, frames = read_all(bad)
    assert [frame_number(f.rgb) for f in frames] == list(range(10))
    assert src.decode_errors == source_mod.MAX_CONSECUTIVE_DECODE_ERRORS
    assert len(src.warnings) == 1 and "gave up" in src.warnings[0]


def test_resolution_change_mid_stream_is_decoded(tmp_path):
    path = tmp_path / "change.ts"
    make_size_change_ts(path, [(96, 64), (160, 120)], frames_each=10)
    src, frames = read_all(path)
    assert (src.info.width, src.info.height) == (96, 64)
    assert [f.rgb.shape[:2] for f in frames] == [(64, 96)] * 10 + [(120, 160)] * 10
    assert [frame_number(f.rgb) for f in frames] == list(range(20))
    assert [f.index for f in frames] == list(range(20))


# -- frame numbers are the source's ---------------------------------------------------------


def test_index_after_seek_is_the_source_frame_number(cfr):
    src, frames = read_all(cfr, start=2.25, end=3.0)
    assert [f.index for f in frames] == [frame_number(f.rgb) for f in frames] == list(range(23, 30))
    assert src.frame_index_estimated is False


def test_index_with_every_and_fps_after_seek(cfr):
    _, frames = read_all(cfr, start=1.0, every=3)
    assert [f.index for f in frames] == list(range(10, 40, 3))
    _, frames = read_all(cfr, start=1.0, fps=2.5)
    assert [f.index for f in frames] == [frame_number(f.rgb) for f in frames] == [10, 14, 18, 22, 26, 30, 34, 38]


def test_variable_rate_index_after_seek_is_flagged_estimated(tmp_path):
    path = tmp_path / "vfr.mp4"
    make_video(path, 40, vfr_durations=[0.04, 0.12, 0.02, 0.07], gop=8)
    src, frames = read_all(path, start=1.0)
    assert src.frame_index_estimated is True
    assert all(b > a for a, b in zip([f.index for f in frames], [f.index for f in frames][1:]))
    src, frames = read_all(path)  # no seek: a count, exact
    assert src.frame_index_estimated is False and [f.index for f in frames] == list(range(40))
