"""Frames keep the decoder's YUV picture and convert only what a stage asks for (frames.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from streamcam.apps.analyze import AnalyzeOptions, analyze
from streamcam.core.frames import Frame, has_fast_path, i420_planes, upright
from streamcam.core.preprocess import resize_rgb
from streamcam.explain.null_engine import NullEngine
from streamcam.video.source import VideoSource

from videos import make_video

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media" / "videos"
REAL_CLIPS = [
    "road_highway_dashcam_solidWhiteRight.mp4",
    "road_overhead_cars_car-detection.mp4",
    "everyday_bottles_table.mp4",
    "awkward_rot180_vfr_phone_dog_fireplace.mp4",
]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def today_rgb(frame: Frame) -> np.ndarray:
    """The full-size RGB picture as the source made it before the fast path: FFmpeg's conversion."""
    return upright(frame._decoded.to_ndarray(format="rgb24"), frame._rotation)


def real_frames(name: str, n: int = 6) -> list[Frame]:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{path} not found (the shared media folder is absent)")
    with VideoSource(str(path), end=4.0) as video:
        frames = [f for _, f in zip(range(30), video)]
    return frames[:: max(1, len(frames) // n)][:n]


def area_resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The reference: OpenCV's area filter straight to the size (what every fast path approximates)."""
    return cv2.resize(rgb, size[::-1], interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("name", REAL_CLIPS)
@pytest.mark.parametrize("size", [(224, 224), (352, 640), (640, 352), (480, 848)])
def test_the_model_input_from_yuv_matches_resizing_the_rgb_frame(name, size):
    frames = real_frames(name)
    assert all(f._decoded is not None and has_fast_path(f._decoded) for f in frames)
    for frame in frames:
        fused = frame.model_input(size)
        assert frame._rgb is None  # the full-size RGB picture was never made
        assert fused.shape == (*size, 3) and fused.dtype == np.uint8
        reference = today_rgb(frame)
        assert psnr(fused, resize_rgb(reference, size)) >= 40.0
        assert psnr(fused, area_resize(reference, size)) >= 40.0


@pytest.mark.parametrize("name", REAL_CLIPS)
def test_the_lazy_rgb_picture_matches_ffmpegs_conversion(name):
    for frame in real_frames(name, 3):
        rgb = frame.rgb
        assert rgb.shape == (frame.height, frame.width, 3)
        assert psnr(rgb, today_rgb(frame)) >= 40.0


def test_rotation_applies_to_the_yuv_planes(tmp_path):
    src = tmp_path / "rot.mp4"
    make_video(src, 3, size=(96, 64), rotation=90)
    with VideoSource(str(src)) as video:
        frame = next(iter(video))
    assert (frame.width, frame.height) == (64, 96)
    y, u, v = i420_planes(frame.i420)
    assert y.shape == (96, 64) and u.shape == v.shape == (48, 32)
    assert psnr(frame.rgb, today_rgb(frame)) >= 40.0
    assert frame.model_input((32, 32)).shape == (32, 32, 3)


def test_frames_without_the_fast_path_convert_at_once(tmp_path):
    src = tmp_path / "odd.mp4"
    make_video(src, 3, size=(63, 47), codec="mpeg4")  # odd size: no I420 path
    with VideoSource(str(src)) as video:
        frame = next(iter(video))
    assert frame.i420 is None and frame.rgb.shape[:2] == (47, 63)
    assert frame.model_input((32, 32)).shape == (32, 32, 3)
    made = Frame(0, 0, 0.0, np.zeros((4, 6, 3), np.uint8))
    assert made.i420 is None and (made.width, made.height) == (6, 4)
    with pytest.raises(ValueError, match="needs rgb or a decoded picture"):
        Frame(0, 0, 0.0)


class RgbWatcher:
    """A collector (analyze's hook) that notes whether each frame's full RGB picture existed yet."""

    def __init__(self):
        self.converted = []

    def add(self, frame, probs, ids, cams, local):
        self.converted.append(frame._rgb is not None)


def test_a_csv_only_run_and_the_overlay_video_never_make_the_full_rgb_frame(default_classifier, tmp_path):
    src = tmp_path / "clip.mp4"
    make_video(src, 12, size=(160, 96))
    for video in (False, True):
        watcher = RgbWatcher()
        analyze(
            str(src), NullEngine(default_classifier), AnalyzeOptions(out_dir=tmp_path / f"video{video}", video=video), collectors=[watcher]
        )
        assert watcher.converted == [False] * 12
