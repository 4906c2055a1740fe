"""VideoSink: timestamps survive a round trip, odd sizes, codecs, atomic output, audio copy."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from streamcam.core.errors import StreamcamError, UsageError
from streamcam.video.sink import VideoSink, check_encoder
from streamcam.video.source import VideoSource

from videos import frame_image, frame_number, make_size_change_ts, make_video


def read_all(path, **kwargs):
    with VideoSource(str(path), **kwargs) as src:
        return src, list(src)


def copy_video(src_path, out_path, **sink_kwargs):
    """Read src_path with VideoSource and write every frame with VideoSink."""
    source_kwargs = sink_kwargs.pop("source_kwargs", {})
    with VideoSource(str(src_path), **source_kwargs) as src:
        info = src.info
        with VideoSink(out_path, width=info.width, height=info.height, time_base=info.time_base, fps=info.fps, **sink_kwargs) as sink:
            frames = []
            for frame in src:
                sink.write(frame.rgb, frame.pts, frame.time_s)
                frames.append((frame.time_s, frame_number(frame.rgb)))
    return frames, sink


def audio_packets(path):
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        a = c.streams.audio[0]
        return [(float(p.pts * a.time_base), float((p.pts + p.duration) * a.time_base)) for p in c.demux(a) if p.pts is not None]


@pytest.fixture(scope="module")
def vfr(tmp_path_factory):
    path = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    make_video(path, 30, size=(96, 64), vfr_durations=[0.04, 0.11, 0.02, 0.067], with_audio=True)
    return path


def test_vfr_round_trip_keeps_count_times_and_size(vfr, tmp_path):
    out = tmp_path / "out.mp4"
    written, sink = copy_video(vfr, out)
    assert sink.warnings == []
    src, frames = read_all(out)
    assert (src.info.width, src.info.height) == (96, 64)
    assert len(frames) == len(written) == 30
    assert [f.time_s for f in frames] == pytest.approx([t for t, _ in written], abs=1e-3)
    assert [frame_number(f.rgb) for f in frames] == [n for _, n in written]
    assert not list(tmp_path.glob(".*partial*"))


def test_clip_is_rebased_to_zero_with_audio_shifted_alike(vfr, tmp_path):
    out = tmp_path / "clip.mp4"
    start, end = 0.5, 1.2
    written, _sink = copy_video(vfr, out, source_kwargs={"start": start, "end": end}, audio_from=str(vfr), audio_start=start, audio_end=end)
    t0 = written[0][0]
    _, frames = read_all(out)
    assert frames[0].time_s == pytest.approx(0, abs=1e-6)
    assert [f.time_s for f in frames] == pytest.approx([t - t0 for t, _ in written], abs=1e-3)
    assert [frame_number(f.rgb) for f in frames] == [n for _, n in written]
    packets = audio_packets(out)
    assert packets, "audio was not copied"
    assert packets[0][0] >= 0 and packets[0][0] < 0.05  # starts with the video (shifted by t0)
    assert packets[-1][0] < end - t0  # restricted to [start, end) in input time


def test_audio_copied_without_reencoding(vfr, tmp_path):
    out = tmp_path / "a.mp4"
    copy_video(vfr, out, audio_from=str(vfr))
    with av.open(str(out)) as c, av.open(str(vfr)) as original:
        assert c.streams.audio[0].codec_context.name == "aac"
        n_in = sum(1 for p in original.demux(original.streams.audio[0]) if p.size)
        n_out = sum(1 for p in c.demux(c.streams.audio[0]) if p.size)
    assert 0.8 * n_in <= n_out <= n_in  # capped at the video's end, not more than the input


def test_incompatible_audio_is_skipped_with_warning(vfr, tmp_path):
    out = tmp_path / "v.webm"
    _, sink = copy_video(vfr, out, codec="libvpx-vp9", audio_from=str(vfr))
    assert any("aac" in w and "webm" in w for w in sink.warnings)
    assert audio_packets(out) is None
    src, frames = read_all(out)
    assert len(frames) == 30 and src.info.codec == "vp9"


def test_input_without_audio_gives_no_audio_and_no_warning(tmp_path):
    src_path = tmp_path / "silent.mp4"
    make_video(src_path, 5)
    _, sink = copy_video(src_path, tmp_path / "o.mp4", audio_from=str(src_path))
    assert sink.warnings == [] and audio_packets(tmp_path / "o.mp4") is None


@pytest.mark.parametrize("size", [(65, 49), (641, 359)])
def test_odd_size_is_padded_to_even(tmp_path, size):
    w, h = size
    out = tmp_path / "odd.mp4"
    with VideoSink(out, width=w, height=h, time_base=Fraction(1, 25), fps=25) as sink:
        for i in range(4):
            sink.write(frame_image(i, w, h), i, i / 25)
    assert (sink.out_width, sink.out_height) == (w + 1, h + 1)
    src, frames = read_all(out)
    assert (src.info.width, src.info.height) == (w + 1, h + 1)
    assert [frame_number(f.rgb) for f in frames] == [0, 1, 2, 3]
    # The padding repeats the last row/column rather than adding black.
    assert abs(int(frames[2].rgb[-1, w // 2, 0]) - int(frames[2].rgb[-2, w // 2, 0])) < 6


@pytest.mark.parametrize(
    ("codec", "name", "decoded_codec"),
    [("libvpx-vp9", "o.webm", "vp9"), ("mpeg4", "o.mkv", "mpeg4"), ("mjpeg", "o.avi", "mjpeg")],
)
def test_other_codecs_and_containers(tmp_path, codec, name, decoded_codec):
    src_path = tmp_path / "in.mp4"
    make_video(src_path, 12, size=(64, 48), fps=25)
    with VideoSource(str(src_path)) as src:
        originals = [(f.time_s, float(np.median(f.rgb))) for f in src]
    copy_video(src_path, tmp_path / name, codec=codec)
    src, frames = read_all(tmp_path / name)
    assert src.info.codec == decoded_codec
    assert [f.time_s for f in frames] == pytest.approx([t for t, _ in originals], abs=1e-3)
    # Same frames in the same order: brightness within the codec's error of the input's (steps of 5).
    assert [float(np.median(f.rgb)) for f in frames] == pytest.approx([m for _, m in originals], abs=2.4)


@pytest.mark.parametrize(("codec", "name"), [("mpeg4", "m4.mkv"), ("mjpeg", "mj.avi")])
def test_fine_time_base_keeps_vfr_times(vfr, tmp_path, codec, name):
    out = tmp_path / name
    written, _ = copy_video(vfr, out, codec=codec)  # 1/90000 is too fine for MPEG-4 Part 2
    _, frames = read_all(out)
    assert [f.time_s for f in frames] == pytest.approx([t for t, _ in written], abs=1e-3)


def test_missing_pts_uses_time(tmp_path):
    out = tmp_path / "t.mp4"
    times = [0.0, 0.05, 0.3, 0.31]
    with VideoSink(out, width=64, height=48, time_base=Fraction(1, 1000), fps=None) as sink:
        for i, t in enumerate(times):
            sink.write(frame_image(i, 64, 48), None, t)
    _, frames = read_all(out)
    assert [f.time_s for f in frames] == pytest.approx(times, abs=1e-3)


# -- atomic output -----------------------------------------------------------------


def test_temp_file_until_close(tmp_path):
    out = tmp_path / "final.mp4"
    sink = VideoSink(out, width=64, height=48, time_base=Fraction(1, 25), fps=25)
    for i in range(40):
        sink.write(frame_image(i, 64, 48), i, i / 25)
        assert not out.exists()
    # libx264 buffers frames, so the temp file may appear late; it is the only file there.
    assert [p.name for p in tmp_path.iterdir()] in ([], [".final.partial.mp4"])
    assert sink.temp_path == tmp_path / ".final.partial.mp4"
    assert sink.close() == out
    assert out.exists() and not sink.temp_path.exists()


def test_error_inside_block_leaves_no_output_and_keeps_old_file(tmp_path):
    out = tmp_path / "final.mp4"
    out.write_bytes(b"previous result")

    def fail_mid_write():
        with VideoSink(out, width=64, height=48, time_base=Fraction(1, 25), fps=25) as sink:
            sink.write(frame_image(0, 64, 48), 0, 0.0)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail_mid_write()
    assert out.read_bytes() == b"previous result"
    assert list(tmp_path.iterdir()) == [out]


def test_keyboard_interrupt_finalises_playable_partial_output(vfr, tmp_path):
    out = tmp_path / "partial.mp4"

    def interrupt_at_frame_9():
        with (
            VideoSource(str(vfr)) as src,
            VideoSink(out, width=96, height=64, time_base=src.info.time_base, fps=src.info.fps, audio_from=str(vfr)) as sink,
        ):
            for frame in src:
                sink.write(frame.rgb, frame.pts, frame.time_s)
                if frame.index == 9:
                    raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupt_at_frame_9()
    _, frames = read_all(out)
    assert [frame_number(f.rgb) for f in frames] == list(range(10))
    last_video = frames[-1].time_s
    assert audio_packets(out)[-1][0] <= last_video + 0.12  # audio stops with the video


def test_abort_deletes_temp(tmp_path):
    out = tmp_path / "x.mp4"
    sink = VideoSink(out, width=64, height=48, time_base=Fraction(1, 25), fps=25)
    sink.write(frame_image(0, 64, 48), 0, 0.0)
    sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_closing_without_frames_fails_cleanly(tmp_path):
    out = tmp_path / "empty.mp4"
    with pytest.raises(StreamcamError, match="no video frames"), VideoSink(out, width=64, height=48, time_base=Fraction(1, 25), fps=25):
        pass
    assert list(tmp_path.iterdir()) == []


def test_wrong_frame_shape_is_rejected(tmp_path):
    # A different size is scaled (see the size-change tests); not being H x W x 3 uint8 is an error.
    with VideoSink(tmp_path / "s.mp4", width=64, height=48, time_base=Fraction(1, 25), fps=25) as sink:
        sink.write(frame_image(0, 64, 48), 0, 0.0)
        for bad in (np.zeros((48, 64), np.uint8), np.zeros((48, 64, 4), np.uint8), np.zeros((48, 64, 3), np.float32)):
            with pytest.raises(ValueError, match="x3 uint8"):
                sink.write(bad, 1, 0.04)


@pytest.mark.parametrize(("name", "match"), [("out.notaformat", "unknown output format"), ("missing/out.mp4", "folder")])
def test_bad_output_path(tmp_path, name, match):
    with pytest.raises(UsageError, match=match):
        VideoSink(tmp_path / name, width=64, height=48, time_base=Fraction(1, 25), fps=25)
    assert not any(tmp_path.rglob("*.notaformat"))


def test_unknown_codec(tmp_path):
    with pytest.raises(UsageError, match="cannot encode"):
        VideoSink(tmp_path / "o.mp4", width=64, height=48, time_base=Fraction(1, 25), fps=25, codec="nope264")
    assert list(tmp_path.iterdir()) == []


def test_colours_survive_encoding(tmp_path):
    """RGB -> YUV 4:2:0 -> H.264 -> RGB keeps colours (and red is not swapped with blue)."""
    colours = np.array([[220, 30, 30], [30, 200, 40], [40, 50, 210], [128, 128, 128]], np.uint8)
    rgb = np.repeat(np.repeat(colours[None], 64, axis=0), 32, axis=1)  # four 32-px-wide bars, 64 high
    out = tmp_path / "colours.mp4"
    with VideoSink(out, width=128, height=64, time_base=Fraction(1, 25), fps=25, crf=10) as sink:
        for i in range(3):
            sink.write(rgb, i, i / 25)
    with av.open(str(out)) as c:
        back = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    for k, colour in enumerate(colours):
        bar = back[8:-8, 32 * k + 8 : 32 * k + 24].reshape(-1, 3).mean(axis=0)
        np.testing.assert_allclose(bar, colour, atol=6)


# -- size changes mid-stream (issue 6) --------------------------------------------------------


@pytest.mark.parametrize("sizes", [[(96, 64), (160, 120), (48, 32)], [(95, 63), (64, 48)]])
def test_frames_of_another_size_are_scaled_with_one_warning(tmp_path, sizes):
    out = tmp_path / "s.mp4"
    width, height = sizes[0]
    with VideoSink(out, width=width, height=height, time_base=Fraction(1, 10), fps=10) as sink:
        i = 0
        for w, h in sizes:
            for _ in range(4):
                sink.write(frame_image(i, w, h), i, i / 10)
                i += 1
    assert len(sink.warnings) == 1 and f"{width}x{height}" in sink.warnings[0], sink.warnings
    _src, frames = read_all(out)
    assert [f.rgb.shape[:2] for f in frames] == [(height + height % 2, width + width % 2)] * i
    assert [frame_number(f.rgb) for f in frames] == list(range(i))  # each picture kept (scaled), in order
    for f in frames:  # the marker still covers the top-left quarter: scaled, not cropped or padded
        assert f.rgb[: height // 5, : width // 5].min() > 200 and f.rgb[height // 2 :, width // 2 :].max() < 230


def test_analyze_resolution_change_mid_stream(default_engine, tmp_path):
    pd = pytest.importorskip("pandas")
    from streamcam.apps.analyze import AnalyzeOptions, analyze

    src = tmp_path / "change.ts"
    make_size_change_ts(src, [(96, 64), (160, 120), (64, 48)], frames_each=6)
    options = AnalyzeOptions(
        out_dir=tmp_path / "out", top_n=2, batch_size=4, heatmap_video=True, segmented_video=True, save_frames=["0.7", "1.3"]
    )
    summary = analyze(src, default_engine, options)
    assert summary.status == "complete" and summary.frames_analysed == 18
    assert sum("scaled" in w for w in summary.warnings) == 1  # not one per frame, nor per video written
    table = pd.read_csv(tmp_path / "out" / "change.predictions.csv")
    for kind in ("gradcam", "heatmap", "segmented"):
        with av.open(str(tmp_path / "out" / f"change.{kind}.mp4")) as c:
            shapes = [f.to_ndarray(format="rgb24").shape for f in c.decode(video=0)]
        assert len(shapes) == table["frame_index"].nunique() == 18
        assert set(shapes) == {(64, 96, 3)}
    assert len(summary.outputs["frames"]) == 2 * 3  # pictures at the frames' own sizes


def test_a_bad_encoder_option_is_one_usage_error_before_any_file(tmp_path, capfd):
    with pytest.raises(UsageError, match="--preset 'nosuch' is not a preset"):
        check_encoder("libx264", 23, "nosuch")
    # An option the encoder itself refuses: its reason in one line, FFmpeg's log lines caught.
    with pytest.raises(UsageError, match=r"libvpx-vp9 encoder refused its options: .*crf"):
        check_encoder("libvpx-vp9", 99, None)
    with pytest.raises(UsageError, match=r"libvpx-vp9 encoder refused its options.*crf"):
        VideoSink(tmp_path / "o.webm", width=64, height=48, time_base=Fraction(1, 25), fps=25, codec="libvpx-vp9", crf=99)
    assert not list(tmp_path.iterdir())  # the sink opened its encoder before any frame, and cleaned up
    assert "error" not in capfd.readouterr().err.lower()
    check_encoder("libx264", 23, "veryslow")
    check_encoder("mpeg4", 23, None)
