"""Frame numbers are the source's: CSV, summary, overlay label and picture names after --start/--every/--fps."""

from __future__ import annotations

import itertools
import json

import pytest

from streamcam.apps.analyze import AnalyzeOptions, analyze
from streamcam.video.source import VideoSource

from videos import frame_number, make_video

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def cfr(tmp_path_factory):
    """10 fps, 90 frames (9 s), keyframe every 10 frames."""
    path = tmp_path_factory.mktemp("cfr") / "cfr.mp4"
    make_video(path, 90, size=(64, 48), fps=10, gop=10)
    return path


@pytest.fixture(scope="module")
def vfr(tmp_path_factory):
    path = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    make_video(path, 60, size=(64, 48), vfr_durations=[0.04, 0.12, 0.02, 0.07], gop=8)
    return path


def indices(path, **kwargs):
    with VideoSource(str(path), **kwargs) as src:
        frames = list(src)
    return [f.index for f in frames], frames, src


def test_start_gives_source_numbers(cfr):
    got, frames, src = indices(cfr, start=6)
    assert got == list(range(60, 90))
    assert [frame_number(f.rgb) for f in frames] == [i % 40 for i in got]  # the pixels agree
    assert src.frame_index_estimated is False


def test_every_steps_by_n(cfr):
    assert indices(cfr, every=3)[0] == list(range(0, 90, 3))
    assert indices(cfr, start=6, every=3)[0] == list(range(60, 90, 3))


def test_fps_sampling_gives_the_kept_frames_source_numbers(cfr):
    assert indices(cfr, fps=2)[0] == list(range(0, 90, 5))
    assert indices(cfr, start=6.05, fps=2)[0] == [61, 66, 71, 76, 81, 86]


def test_no_seek_counts_frames_exactly_also_for_variable_rate(vfr):
    got, _, src = indices(vfr, end=2.0)
    assert got == list(range(len(got))) and src.frame_index_estimated is False


def test_variable_rate_after_seek_is_an_estimate(vfr):
    got, frames, src = indices(vfr, start=2.0)
    assert src.frame_index_estimated is True
    assert all(b > a for a, b in itertools.pairwise(got))
    with VideoSource(str(vfr)) as full:
        exact = {round(f.time_s, 4): f.index for f in full}
    assert max(abs(f.index - exact[round(f.time_s, 4)]) for f in frames) <= 0.5 * len(exact) ** 0.5 + 2


def test_analyze_with_start_writes_source_numbers_everywhere(default_engine, tmp_path):
    src = tmp_path / "clip.mp4"
    make_video(src, 70, size=(64, 48), fps=10, gop=10)
    options = AnalyzeOptions(out_dir=tmp_path / "out", start="6", every=2, top_n=2, save_frames=["6.2"])
    summary = analyze(src, default_engine, options)
    table = pd.read_csv(tmp_path / "out" / "clip.predictions.csv")
    assert sorted(table["frame_index"].unique()) == [60, 62, 64, 66, 68]
    assert table["time_s"].iloc[0] == pytest.approx(6.0)
    pictures = summary.outputs["frames"]
    assert pictures and all("clip_f000062_" in p for p in pictures)
    on_disk = json.loads((tmp_path / "out" / "clip.summary.json").read_text())
    assert on_disk["frame_index"] == summary.frame_index == "exact"


def test_analyze_summary_says_estimated_for_variable_rate_after_seek(default_engine, vfr, tmp_path):
    summary = analyze(vfr, default_engine, AnalyzeOptions(out_dir=tmp_path, start="2", video=False, top_n=1))
    assert summary.frame_index == "estimated"
