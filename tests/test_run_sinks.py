"""The writing stage (outputs/run_sinks.py): render workers and the YUV drawing path change nothing in the
outputs: same frames, same order, same timestamps, same CSV."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from streamcam.apps.analyze import AnalyzeOptions, analyze
from streamcam.core.errors import OutputError
from streamcam.explain.null_engine import NullEngine
from streamcam.outputs.run_sinks import RENDER_WORKERS

from test_frames import psnr
from videos import make_video


def decoded(path):
    """(pts, time, picture) of every frame of a video file, in presentation order."""
    with av.open(str(path)) as container:
        return [(f.pts, f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]


def run(src, out, default_classifier, **options):
    out.mkdir()
    summary = analyze(str(src), NullEngine(default_classifier), AnalyzeOptions(out_dir=out, batch_size=5, **options))
    return summary, (out / "clip.predictions.csv").read_text(), decoded(out / "clip.gradcam.mp4")


def test_render_workers_keep_every_frame_in_order_with_its_timestamp(default_classifier, tmp_path):
    src = tmp_path / "clip.mp4"
    times = make_video(src, 23, size=(320, 180), vfr_durations=[0.04, 0.02, 0.07])  # variable rate: order shows in time
    serial = run(src, tmp_path / "serial", default_classifier, render_workers=0)
    parallel = run(src, tmp_path / "parallel", default_classifier, render_workers=max(2, RENDER_WORKERS))
    assert serial[0].frames_analysed == parallel[0].frames_analysed == 23
    assert serial[1] == parallel[1]  # the CSV, byte for byte
    assert [(p, t) for p, t, _ in serial[2]] == [(p, t) for p, t, _ in parallel[2]]
    assert np.allclose([t for _, t, _ in parallel[2]], np.array(times) - times[0], atol=1e-3)
    # Each frame's picture matches its own counterpart (a swapped pair would not).
    assert all(np.array_equal(a, b) for (_, _, a), (_, _, b) in zip(serial[2], parallel[2]))
    pictures = [p for _, _, p in parallel[2]]
    assert not np.array_equal(pictures[3], pictures[4])


def test_the_yuv_path_and_the_rgb_path_write_the_same_video(default_classifier, tmp_path):
    # The same pictures once as 4:2:0 (drawn on the I420 planes) and once as 4:4:4 (no fast path:
    # drawn in RGB): the same count and timestamps, and pictures two lossy encodes apart.
    src = tmp_path / "clip.mp4"
    make_video(src, 12, size=(320, 180))
    yuv = run(src, tmp_path / "yuv", default_classifier)
    rgb_src = tmp_path / "rgb" / "clip.mp4"
    rgb_src.parent.mkdir()
    with av.open(str(src)) as container:  # the same pictures as 4:4:4: no I420 fast path for them
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(rgb_src), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv444p"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    summary = analyze(str(rgb_src), NullEngine(default_classifier), AnalyzeOptions(out_dir=tmp_path / "rgb", batch_size=5))
    rgb = decoded(tmp_path / "rgb" / "clip.gradcam.mp4")
    assert summary.frames_analysed == yuv[0].frames_analysed == 12
    assert [(p, t) for p, t, _ in rgb] == [(p, t) for p, t, _ in yuv[2]]
    assert min(psnr(a, b) for (_, _, a), (_, _, b) in zip(rgb, yuv[2])) >= 35  # two lossy encodes apart


def test_pictures_drawn_ahead_are_written_in_order_and_none_after_close(default_classifier, tmp_path):
    # The compute stage starts drawing a batch (draw_ahead) while the writer still encodes the
    # one before; the writer then takes the drawn pictures in their frames' order.
    from streamcam.outputs.run_sinks import FrameWriter, RunOutputs
    from streamcam.video.source import VideoSource

    src = tmp_path / "clip.mp4"
    make_video(src, 10, size=(320, 180))
    options = AnalyzeOptions(out_dir=tmp_path / "out", batch_size=5)
    engine = NullEngine(default_classifier)
    with VideoSource(str(src)) as video:
        frames = list(video)
        outputs = RunOutputs(str(src), video.info, options.sinks(), default_classifier.labels, [], None, None)
    writer = FrameWriter(outputs, options.sinks(), default_classifier.labels, None, [], 0, render_workers=2)
    batches = [frames[:5], frames[5:]]
    items = [writer.draw_ahead((chunk, engine.explain(np.stack([f.model_input((224, 224)) for f in chunk])))) for chunk in batches]
    assert all(item.pictures is not None and len(item.pictures) == 5 for item in items)
    for item in items:
        writer(item)
    writer.close()
    assert outputs.close() == [] and writer.frames == 10
    assert [t for _, t, _ in decoded(tmp_path / "out" / "clip.gradcam.mp4")] == pytest.approx([f.time_s for f in frames], abs=1e-3)
    late = writer.draw_ahead((frames[:2], engine.explain(np.stack([f.model_input((224, 224)) for f in frames[:2]]))))
    assert late.pictures is None  # a compute stage that outlived the run starts no drawing


def test_a_frames_csv_that_cannot_be_finished_is_dropped_alone(default_classifier, tmp_path):
    """The per-frame table is a sink like the others: a folder taking its name mid-run drops it
    alone, with no temporary file left, and the summary lists the rest."""
    src = tmp_path / "clip.mp4"
    make_video(src, 10, size=(96, 64))
    out = tmp_path / "out"
    blocker = out / "clip.frames.csv"
    options = AnalyzeOptions(out_dir=out, batch_size=5)
    with pytest.raises(OutputError, match=r"could not finish .*clip\.frames\.csv"):
        analyze(str(src), NullEngine(default_classifier), options, on_frame=lambda frame: blocker.mkdir(exist_ok=True))
    summary = json.loads((out / "clip.summary.json").read_text())
    assert "frames_csv" not in summary["outputs"] and {"predictions", "video"} <= set(summary["outputs"])
    assert len((out / "clip.predictions.csv").read_text().splitlines()) == 1 + 10 * 5
    assert blocker.is_dir() and not list(blocker.iterdir()) and not list(out.glob(".*partial*"))
