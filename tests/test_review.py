"""`streamcam review` and `analyze --review`: the offline page and the data in it (no browser here)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from streamcam import cli
from streamcam.apps.analyze import AnalyzeOptions, analyze
from streamcam.core.labels import Labels
from streamcam.outputs.review import ReviewCollector, find_peaks
from streamcam.outputs.review.page import build_data, write_review
from streamcam.video.timecode import format_timecode

from videos import make_audio_only, make_video

REPO = Path(__file__).resolve().parents[1]

runner = CliRunner()


def page_data(path) -> dict:
    html = path.read_text(encoding="utf-8")
    match = re.search(r'<script type="application/json" id="review-data">(.*?)</script>', html, re.S)
    return json.loads(match.group(1).replace("<\\/", "</"))


@pytest.fixture
def fast_cli(monkeypatch, default_engine):
    """The CLI with the session's engine, so each invocation does not load the model again."""
    monkeypatch.setattr(cli, "_engine", lambda *a, **k: default_engine)


# --- peaks --------------------------------------------------------------------------------


def reference_peaks(x, prominence):
    """Brute force: strict local maxima (flat tops once), prominence from the definition."""
    x = np.asarray(x, float)
    out = []
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[j + 1] == x[i]:
            j += 1
        if (i == 0 or x[i - 1] < x[i]) and (j == len(x) - 1 or x[j + 1] < x[i]):
            p = (i + j) // 2
            left = x[: p + 1][::-1]
            right = x[p:]
            lmin = min(left[: np.argmax(left > x[p])] if np.any(left > x[p]) else left)
            rmin = min(right[: np.argmax(right > x[p])] if np.any(right > x[p]) else right)
            if x[p] - max(lmin, rmin) >= prominence - 1e-9:  # "at least", with float slack
                out.append(p)
        i = j + 1
    return out


def test_adjacent_high_frames_give_one_peak():
    x = [0.0, 0.1, 0.8, 0.82, 0.81, 0.8, 0.1, 0.0]
    assert find_peaks(x, 0.3) == [3]
    assert find_peaks([0, 0.1, 0.9, 0.9, 0.9, 0.1, 0], 0.3) == [3]  # a flat top: once, in its middle


def test_two_separated_bumps_give_two_peaks():
    t = np.arange(100)
    x = np.exp(-(((t - 25) / 5.0) ** 2)) * 0.7 + np.exp(-(((t - 70) / 4.0) ** 2)) * 0.5
    assert find_peaks(x, 0.2) == [25, 70]


def test_prominence_threshold_is_respected():
    x = [0.0, 0.6, 0.5, 0.55, 0.0]  # a small shoulder of prominence 0.05 beside the main peak
    assert find_peaks(x, 0.04) == [1, 3]
    assert find_peaks(x, 0.06) == [1]
    assert find_peaks(x, 0.7) == []


def test_peaks_match_brute_force_on_noisy_series():
    rng = np.random.default_rng(7)
    for _ in range(50):
        x = np.round(rng.random(rng.integers(1, 60)), 1)  # rounding gives flat runs too
        for prominence in (0.0, 0.15, 0.4):
            assert find_peaks(x, prominence) == reference_peaks(x, prominence), (x, prominence)


# --- the page ---------------------------------------------------------------------------


def test_review_page_is_one_offline_file_with_every_frame(fast_cli, tmp_path):
    clip = tmp_path / "clip.mp4"
    times = make_video(clip, 20, size=(96, 64))
    result = runner.invoke(
        cli.app,
        ["review", str(clip), "--start", "0.2", "--end", "0.6", "-o", str(tmp_path / "out"), "--classes", "bicycle-built-for-two", "-q"],
    )
    assert result.exit_code == 0, result.output
    page = tmp_path / "out" / "clip.review.html"
    html = page.read_text(encoding="utf-8")
    assert not re.search(r'(src|href)\s*=\s*["\']?\s*(https?:)?//', html, re.I)  # nothing fetched
    assert "uPlot" in html and 'data-testid="frame-index"' in html and 'data-testid="class-select"' in html
    assert not list((tmp_path / "out").glob(".*partial*"))
    data = page_data(page)
    expected = [i for i, t in enumerate(times) if 0.2 - 1e-6 <= t < 0.6 - 1e-6]
    assert [f["i"] for f in data["frames"]] == expected
    assert [f["tc"] for f in data["frames"]] == [format_timecode(times[i]) for i in expected]
    bicycle = next(c for c in data["classes"] if c["name"] == "bicycle-built-for-two")
    assert bicycle["tracked"] and len(bicycle["p"]) == len(expected) and None not in bicycle["plocal"]
    assert all(str(bicycle["id"]) in f["cams"] for f in data["frames"])


def test_variable_rate_clip_keeps_each_frames_own_time(fast_cli, tmp_path):
    clip = tmp_path / "vfr.mp4"
    times = make_video(clip, 12, size=(96, 64), vfr_durations=[0.04, 0.1, 0.02])
    result = runner.invoke(cli.app, ["review", str(clip), "--around", "0.3", "--span", "10", "-o", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    data = page_data(tmp_path / "vfr.review.html")
    assert [f["i"] for f in data["frames"]] == list(range(12))
    assert [f["t"] for f in data["frames"]] == pytest.approx(times, abs=1e-4)
    assert [f["tc"] for f in data["frames"]] == [format_timecode(t) for t in times]


@pytest.mark.parametrize("case", ["no_video_stream", "window_after_the_end", "not_a_video"])
def test_bad_input_exits_2_without_a_page(fast_cli, tmp_path, case):
    clip = tmp_path / "clip.mp4"
    args = []
    if case == "no_video_stream":
        make_audio_only(clip)
    elif case == "window_after_the_end":
        make_video(clip, 10, size=(64, 48))
        args = ["--start", "30", "--end", "40"]
    else:
        clip.write_bytes(b"not a video at all" * 100)
    result = runner.invoke(cli.app, ["review", str(clip), "-o", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    assert "error" in result.output and len(result.output.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("*.html"))


def test_around_past_the_end_is_told_in_the_users_terms(fast_cli, tmp_path):
    """review --around 00:42 on a 0.4 s clip: the error names --around as typed and the clip's length,
    not the window start (41.5 s) the user never typed."""
    clip = tmp_path / "clip.mp4"
    make_video(clip, 10, size=(64, 48))
    result = runner.invoke(cli.app, ["review", str(clip), "--around", "00:42", "--span", "1", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "--around 00:42 is past the end of" in lines[0] and "00:00.400" in lines[0], lines
    assert "41.5" not in lines[0]


def test_around_and_start_together_is_a_usage_error(fast_cli, tmp_path):
    clip = tmp_path / "clip.mp4"
    make_video(clip, 5)
    result = runner.invoke(cli.app, ["review", str(clip), "--around", "1", "--start", "0"])
    assert result.exit_code == 2


def test_analyze_review_writes_the_page_beside_the_outputs(default_engine, tmp_path):
    clip = tmp_path / "clip.mp4"
    make_video(clip, 9, size=(64, 48))
    summary = analyze(clip, default_engine, AnalyzeOptions(out_dir=tmp_path / "o", video=False, review=True, every=2))
    page = tmp_path / "o" / "clip.review.html"
    assert summary.outputs["review"] == str(page)
    assert [f["i"] for f in page_data(page)["frames"]] == [0, 2, 4, 6, 8]


def test_extra_collectors_see_every_frame(default_engine, tmp_path):
    clip = tmp_path / "clip.mp4"
    make_video(clip, 6, size=(64, 48))
    seen = []

    class Spy:
        def add(self, frame, probs, ids, cams, local):
            seen.append((frame.index, probs.shape, cams.shape[0] == len(ids)))

    analyze(clip, default_engine, AnalyzeOptions(out_dir=tmp_path, video=False), collectors=[Spy()])
    assert [s[0] for s in seen] == list(range(6)) and all(s[2] for s in seen)


# --- the size cap -----------------------------------------------------------------------


class _Frame:
    def __init__(self, i, rgb):
        self.index, self.pts, self.time_s, self.rgb = i, i, i / 25, rgb


def synthetic_collector(n=120, size=(160, 120)):
    """Noisy frames (JPEG cannot shrink them much) and a class-3 probability with two bumps."""
    rng = np.random.default_rng(0)
    collector = ReviewCollector(tracked=[3], top_n=3)
    t = np.arange(n)
    bump = 0.8 * np.exp(-(((t - 30) / 3.0) ** 2)) + 0.6 * np.exp(-(((t - 90) / 3.0) ** 2))
    for i in range(n):
        probs = np.full(10, 0.01, np.float32)
        probs[3], probs[5] = bump[i], 0.5
        rgb = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        cams = rng.random((2, 7, 7)).astype(np.float32)
        collector.add(_Frame(i, rgb), probs, np.array([5, 3]), cams, np.array([0.5, 0.9]))
    return collector


def test_max_mb_shrinks_and_keeps_the_peaks(tmp_path):
    collector = synthetic_collector()
    full, notes = build_data(collector, Labels(10), "synthetic", max_mb=100)
    assert not notes and len(full["frames"]) == 120
    peaks = next(c for c in full["classes"] if c["id"] == 3)["peaks"]
    assert peaks == [30, 90]
    full_size = write_review(tmp_path / "full.html", synthetic_collector(), Labels(10), "synthetic", 100).size_bytes
    cap = full_size / 4 / 1024 / 1024
    result = write_review(tmp_path / "small.html", synthetic_collector(), Labels(10), "synthetic", cap)
    assert result.size_bytes <= cap * 1024 * 1024 and result.warnings
    small = page_data(tmp_path / "small.html")
    kept = [f["i"] for f in small["frames"]]
    assert 10 < len(kept) < 120 and "every" in small["notice"]
    assert {28, 29, 30, 31, 32, 88, 89, 90, 91, 92} <= set(kept)
    assert next(c for c in small["classes"] if c["id"] == 3)["peaks"] == [30, 90]


def test_quality_is_reduced_before_frames_are_dropped(tmp_path):
    flat = ReviewCollector(top_n=2)
    for i in range(40):  # smooth frames: smaller JPEGs alone fit the cap
        rgb = np.tile(np.linspace(0, 255, 960, dtype=np.uint8)[None, :, None], (540, 1, 3))
        flat.add(_Frame(i, rgb), np.linspace(0, 1, 10, dtype=np.float32), np.array([9]), np.ones((1, 7, 7)), None)
    full = write_review(tmp_path / "a.html", flat, Labels(10), "flat", 100).size_bytes
    result = write_review(tmp_path / "b.html", flat, Labels(10), "flat", full * 0.8 / 1024 / 1024)
    data = page_data(tmp_path / "b.html")
    assert len(data["frames"]) == 40 and "JPEG quality" in data["notice"] and result.size_bytes < full * 0.8


_REVIEW_RSS_CHILD = """
import resource, sys
from types import SimpleNamespace
from streamcam.apps.analyze import AnalyzeOptions, analyze
from streamcam.core.labels import Labels
from streamcam.explain.null_engine import NullEngine

classifier = SimpleNamespace(labels=Labels(), stride=32, name="null", num_classes=1000)
options = AnalyzeOptions(video=False, review=True, review_max_mb=4, smooth=0, out_dir=sys.argv[2])
summary = analyze(sys.argv[1], NullEngine(classifier), options)
assert summary.frames_analysed == int(sys.argv[3]) and summary.outputs["review"], summary
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _noise_clip(path, frames: int) -> None:
    """640x360 noise, shifted a little each frame: cheap to encode, but each frame's JPEG is ~200 KB."""
    base = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "30"})
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for i in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.roll(base, 4 * i, axis=1), format="rgb24")))
        container.mux(stream.encode(None))


def _peak_rss_kb(clip, out, frames: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", _REVIEW_RSS_CHILD, str(clip), str(out), str(frames)], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


@pytest.mark.slow
def test_review_memory_does_not_grow_with_the_video(tmp_path):
    """Every frame's JPEG (~200 KB here) used to stay in memory until the page was written: the
    long clip's 750 frames held about 150 MB more than the short one's 25. Now they go to a
    temporary file beside the outputs as they come."""
    peaks = {}
    for frames in (25, 750):
        clip = tmp_path / f"noise{frames}.mp4"
        _noise_clip(clip, frames)
        peaks[frames] = _peak_rss_kb(clip, tmp_path / f"out{frames}", frames)
        assert not [p for p in (tmp_path / f"out{frames}").iterdir() if p.name.startswith(".")]  # the spill files are gone
    print(f"peak RSS: 25 frames {peaks[25] / 1024:.0f} MB, 750 frames {peaks[750] / 1024:.0f} MB ({peaks[750] / peaks[25]:.2f}x)")
    assert peaks[750] <= 1.2 * peaks[25]
