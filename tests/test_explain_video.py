"""streamcam.explain_video: a video's frames with their results, one at a time (apps/frames.py)."""

import os
from pathlib import Path

import numpy as np
import pytest

import streamcam
from streamcam.core.errors import UsageError
from streamcam.explain.null_engine import NullEngine

from videos import frame_number, make_video


def open_files(path: Path) -> int:
    """How many of this process's file descriptors point at path."""
    fds = Path("/proc/self/fd")
    count = 0
    for fd in os.listdir(fds):
        try:
            count += os.readlink(fds / fd) == str(path.resolve())
        except OSError:
            continue
    return count


def test_every_frame_in_order_with_its_results(default_classifier, tmp_path):
    src = tmp_path / "clip.mp4"
    times = make_video(src, 11, size=(96, 64))
    engine = NullEngine(default_classifier)
    results = list(streamcam.explain_video(str(src), engine, top_k=2, classes="traffic_light", batch_size=4))
    assert [r.frame.index for r in results] == list(range(11))
    assert [r.frame.time_s for r in results] == pytest.approx(times)
    assert [frame_number(r.frame.rgb) for r in results] == list(range(11))  # each result with its own picture
    first = results[0]
    assert first.probabilities.shape == (1000,) and first.cams.shape == (3, 7, 7)
    assert first.class_ids[-1] == 920 and first.names[-1] == "traffic_light"
    best = int(np.argmax(first.probabilities))
    assert first.top(1) == [(best, default_classifier.labels.name(best), pytest.approx(float(first.probabilities[best])))]
    assert streamcam.overlay(first.frame.rgb, first.cams[0]).shape == (64, 96, 3)


def test_sampling_and_smoothing_as_analyze_takes_them(default_classifier, tmp_path):
    src = tmp_path / "clip.mp4"
    make_video(src, 20, size=(96, 64))
    engine = NullEngine(default_classifier)
    results = list(streamcam.explain_video(str(src), engine, start=0.2, every=3, smooth=0.3, batch_size=3))
    assert [r.frame.index for r in results] == [5, 8, 11, 14, 17]
    assert all(r.probabilities_smoothed is not None and r.probabilities_smoothed.shape == (1000,) for r in results)


def test_leaving_the_loop_early_closes_the_video(default_classifier, tmp_path):
    src = tmp_path / "clip.mp4"
    make_video(src, 30, size=(96, 64))
    engine = NullEngine(default_classifier)
    for r in streamcam.explain_video(str(src), engine, batch_size=4):
        assert open_files(src) == 1  # the decoder has it open while the loop runs
        if r.frame.index == 5:
            break
    assert open_files(src) == 0
    with streamcam.explain_video(str(src), engine) as results:
        next(results)
        assert open_files(src) == 1
    assert open_files(src) == 0


def test_bad_requests_fail_before_any_frame(default_classifier, tmp_path):
    src = tmp_path / "clip.mp4"
    make_video(src, 3, size=(96, 64))
    engine = NullEngine(default_classifier)
    with pytest.raises(UsageError, match="only part of one"):
        streamcam.explain_video(str(src), engine, classes=["bicycle"])
    with pytest.raises(UsageError, match="nothing to explain"):
        streamcam.explain_video(str(src), engine, top_k=0)
    with pytest.raises(streamcam.InputError):
        streamcam.explain_video(str(tmp_path / "missing.mp4"), engine)
    assert open_files(src) == 0


def test_overlay_takes_uint8_or_unit_floats_and_refuses_other_shapes():
    rgb = np.full((20, 30, 3), 100, np.uint8)
    cam = np.zeros((5, 5), np.float32)
    cam[2, 2] = 1.0
    picture = streamcam.overlay(rgb, cam, alpha=0.4)
    assert picture.shape == (20, 30, 3) and picture.dtype == np.uint8
    np.testing.assert_array_equal(streamcam.overlay(rgb / 255.0, cam, alpha=0.4), picture)
    for bad_rgb, bad_cam in ((rgb[..., 0], cam), (rgb, cam[None]), (rgb * 3.0, cam)):
        with pytest.raises(UsageError):
            streamcam.overlay(bad_rgb, bad_cam)
