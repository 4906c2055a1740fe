"""streamcam analyze end to end: round trips on generated videos, shared clips, bad input, Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from streamcam.apps.analyze import AnalyzeOptions, analyze, expected_frames
from streamcam.cli import app

from conftest import REPO, shared_file
from ctrl_c import self_interrupts
from videos import make_audio_only, make_video

pd = pytest.importorskip("pandas")
runner = CliRunner()
CSV_COLUMNS = ["frame_index", "pts", "time_s", "rank", "class_id", "class_name", "probability"]
FRAME_COLUMNS = ["frame_index", "pts", "time_s", "class_id", "class_name", "probability"]
# temporal smoothing, on by default: the smoothed probability of each ranked class, and per frame:
TRUST_COLUMNS = ["probability_smoothed", "peak_x", "peak_y", "top1_changed", "cam_r_prev"]


def kinds(table) -> dict[str, str]:
    """Each column's kind as pandas read it: 'int', 'float' (empty cells are NaN) or 'str'."""
    types = pd.api.types
    return {
        c: "int" if types.is_integer_dtype(t) else "float" if types.is_float_dtype(t) else "str" if types.is_string_dtype(t) else str(t)
        for c, t in table.dtypes.items()
    }


def decoded(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(s)]
        return frames, [st.type for st in c.streams]


def test_round_trip_keeps_frames_timestamps_and_size(default_engine, tmp_path):
    src = tmp_path / "vfr.mp4"
    times = make_video(src, 24, size=(160, 120), vfr_durations=[0.04, 0.08, 0.05])
    # --smooth 0: each frame's rows as the engine gives them (the smoothed layout: test_analyze_smoothing.py)
    summary = analyze(src, default_engine, AnalyzeOptions(top_n=3, out_dir=tmp_path / "out", batch_size=5, smooth=0))
    assert summary.status == "complete" and summary.frames_analysed == 24
    frames, _ = decoded(tmp_path / "out" / "vfr.gradcam.mp4")
    assert len(frames) == 24
    np.testing.assert_allclose([t for t, _ in frames], np.array(times) - times[0], atol=1e-3)
    assert frames[0][1].shape == (120, 160, 3)
    table = pd.read_csv(tmp_path / "out" / "vfr.predictions.csv")
    assert list(table.columns) == CSV_COLUMNS
    assert len(table) == 24 * 3
    per_frame = pd.read_csv(tmp_path / "out" / "vfr.frames.csv")
    assert list(per_frame.columns) == [*FRAME_COLUMNS, "peak_x", "peak_y"] and len(per_frame) == 24
    assert per_frame["peak_x"].between(0, 1).all() and per_frame["peak_y"].between(0, 1).all()  # the explained class's map
    rank0 = table[table["rank"] == 0].reset_index(drop=True)
    assert (per_frame[["frame_index", "class_id", "probability"]] == rank0[["frame_index", "class_id", "probability"]]).all().all()
    assert table.groupby("frame_index")["rank"].apply(list).tolist() == [[0, 1, 2]] * 24
    np.testing.assert_allclose(table.drop_duplicates("frame_index")["time_s"], times, atol=1e-5)
    assert (table.groupby("frame_index")["probability"].apply(lambda p: p.is_monotonic_decreasing)).all()
    info = json.loads((tmp_path / "out" / "vfr.summary.json").read_text())
    assert info["frames_analysed"] == 24 and info["input"]["width"] == 160 and info["status"] == "complete"
    assert not list((tmp_path / "out").glob(".*partial*"))


def test_tracked_classes_get_csv_columns_and_extra_videos(default_engine, tmp_path):
    src = tmp_path / "clip.mp4"
    make_video(src, 10, size=(96, 64), with_audio=True)
    options = AnalyzeOptions(
        top_n=2,
        cam_classes="traffic_light,bicycle-built-for-two",
        out_dir=tmp_path,
        heatmap_video=True,
        segmented_video=True,
        save_frames=["0.2"],
    )
    summary = analyze(src, default_engine, options)
    table = pd.read_csv(tmp_path / "clip.predictions.csv")
    assert list(table.columns) == [*CSV_COLUMNS, "probability_smoothed"] and len(table) == 10 * 2
    assert kinds(table) == {
        **dict.fromkeys(["frame_index", "pts", "rank", "class_id"], "int"),
        **dict.fromkeys(["time_s", "probability", "probability_smoothed"], "float"),
        "class_name": "str",
    }
    per_frame = pd.read_csv(tmp_path / "clip.frames.csv")
    tracked = [f"{kind}_{name}" for kind in ("p", "plocal", "peak_x", "peak_y") for name in ("traffic_light", "bicycle_built_for_two")]
    assert list(per_frame.columns) == FRAME_COLUMNS + TRUST_COLUMNS + tracked and len(per_frame) == 10
    assert kinds(per_frame) == {
        **dict.fromkeys(["frame_index", "pts", "class_id", "top1_changed"], "int"),
        **dict.fromkeys(["time_s", "probability", "probability_smoothed", "peak_x", "peak_y", "cam_r_prev", *tracked], "float"),
        "class_name": "str",
    }
    assert np.isnan(per_frame["cam_r_prev"][0])  # no previous map: an empty cell, read as NaN
    assert per_frame["p_traffic_light"].between(0, 1).all() and per_frame["peak_x_traffic_light"].between(0, 1).all()
    assert per_frame["peak_x"].isna().all()  # the top class has no map: --cam-classes names classes only
    rank0 = table[table["rank"] == 0].reset_index(drop=True)
    assert (per_frame["class_id"] == rank0["class_id"]).all()  # the explained class, the heatmap's
    assert [n["class_name"] for n in summary.seen["named"]] == ["traffic_light", "bicycle-built-for-two"]
    top1 = summary.seen["top1"]
    assert top1["of"] == "smoothed" and sum(c["frames"] for c in top1["classes"]) <= 10
    assert top1["classes"][0]["class_id"] == per_frame["class_id"].mode()[0]
    for name in ("clip.gradcam.mp4", "clip.heatmap.mp4", "clip.segmented.mp4"):
        assert len(decoded(tmp_path / name)[0]) == 10
    assert "audio" in decoded(tmp_path / "clip.gradcam.mp4")[1]
    pictures = summary.outputs["frames"]
    assert len(pictures) == 2 * 3 and all("_f000005_" in p for p in pictures)  # 0.2 s = frame 5 at 25 fps
    assert any("_920_traffic_light_" in p for p in pictures)


def test_no_audio_every_start_end_and_fps(default_engine, tmp_path):
    src = tmp_path / "clip.mp4"
    make_video(src, 50, size=(96, 64), with_audio=True, gop=10)
    s = analyze(src, default_engine, AnalyzeOptions(out_dir=tmp_path / "a", audio=False, start="0.4", end="00:01.2"))
    assert s.frames_analysed == 20
    frames, kinds = decoded(tmp_path / "a" / "clip.gradcam.mp4")
    assert len(frames) == 20 and "audio" not in kinds
    table = pd.read_csv(tmp_path / "a" / "clip.predictions.csv")
    assert table["time_s"].min() == pytest.approx(0.4) and table["time_s"].max() == pytest.approx(1.16)
    assert analyze(src, default_engine, AnalyzeOptions(out_dir=tmp_path / "b", every=3, video=False)).frames_analysed == 17
    assert analyze(src, default_engine, AnalyzeOptions(out_dir=tmp_path / "c", fps=5, video=False)).frames_analysed == 10
    assert not (tmp_path / "b" / "clip.gradcam.mp4").exists()


def test_flat_video_gives_finite_zero_heatmaps(default_engine, tmp_path):
    src = tmp_path / "flat.mp4"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for i in range(8):
            frame = av.VideoFrame.from_ndarray(np.full((96, 128, 3), 0 if i < 4 else 100, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    analyze(src, default_engine, AnalyzeOptions(out_dir=tmp_path, heatmap_video=True))
    heat, _ = decoded(tmp_path / "flat.heatmap.mp4")
    assert len(heat) == 8 and max(f.max() for _, f in heat) <= 2  # black: all-zero maps (codec noise aside)
    table = pd.read_csv(tmp_path / "flat.predictions.csv")
    assert np.isfinite(table["probability"]).all()


def test_failure_mid_run_leaves_no_finished_looking_files(default_engine, tmp_path):
    src = tmp_path / "clip.mp4"
    make_video(src, 40, size=(96, 64))

    class Failing:
        classifier, method = default_engine.classifier, default_engine.method
        calls = 0

        def explain(self, *args, **kwargs):
            Failing.calls += 1
            if Failing.calls == 3:
                raise RuntimeError("engine exploded")
            return default_engine.explain(*args, **kwargs)

    with pytest.raises(RuntimeError, match="exploded"):
        analyze(src, Failing(), AnalyzeOptions(out_dir=tmp_path / "out", batch_size=4))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_expected_frames_from_header():
    from fractions import Fraction

    from streamcam.video.source import VideoInfo

    info = VideoInfo("x", "mp4", "h264", 10, 10, 25.0, 250, 10.0, 0, False, Fraction(1, 25))
    assert expected_frames(info, None, None, 1, None) == 250
    assert expected_frames(info, 2.0, 4.0, 1, None) == 50
    assert expected_frames(info, None, None, 3, None) == 84
    assert expected_frames(info, None, None, 1, 5.0) == 50
    unknown = VideoInfo("x", "webm", "vp9", 10, 10, 15.0, None, None, 0, False, Fraction(1, 1000))
    assert expected_frames(unknown, None, None, 1, None) is None


# -- the shared real-world clips ----------------------------------------------------------------

SHARED_CLIPS = {
    "road_highway_dashcam_solidWhiteRight.mp4": (4, 56),
    "road_overhead_cars_car-detection.mp4": (8, 48),
    "everyday_bottles_table.mp4": (24, 50),
    "awkward_rot180_vfr_phone_dog_fireplace.mp4": (1, 25),
    "awkward_vp9_no_duration_dark.webm": (2, 37),
}


@pytest.mark.parametrize("name", sorted(SHARED_CLIPS))
def test_shared_clip_end_to_end(default_engine, tmp_path, name):
    path = shared_file("videos", name)
    every, frames = SHARED_CLIPS[name]
    summary = analyze(path, default_engine, AnalyzeOptions(out_dir=tmp_path, every=every, top_n=5, batch_size=8))
    assert summary.frames_analysed == frames
    stem = path.stem
    out, _ = decoded(tmp_path / f"{stem}.gradcam.mp4")
    assert len(out) == frames
    assert out[0][1].shape[:2] == (summary.input["height"], summary.input["width"])
    assert len(pd.read_csv(tmp_path / f"{stem}.predictions.csv")) == frames * 5


def test_dashcam_clip_picks_video_stream_and_copies_audio(default_engine, tmp_path):
    path = shared_file("videos", "road_highway_dashcam_solidWhiteRight.mp4")
    analyze(path, default_engine, AnalyzeOptions(out_dir=tmp_path, end="1.0"))
    out, kinds = decoded(tmp_path / f"{path.stem}.gradcam.mp4")
    assert len(out) == 25 and out[0][1].shape == (540, 960, 3) and "audio" in kinds


def test_rotated_phone_video_comes_out_upright(default_engine, tmp_path):
    import cv2

    path = shared_file("videos", "awkward_rot180_vfr_phone_dog_fireplace.mp4")
    analyze(path, default_engine, AnalyzeOptions(out_dir=tmp_path, alpha=0.0, end="0.2"))
    out, _ = decoded(tmp_path / f"{path.stem}.gradcam.mp4")
    ok, bgr = cv2.VideoCapture(str(path)).read()  # OpenCV applies the rotation itself
    assert ok
    reference = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(float)
    frame = out[0][1].astype(float)
    assert frame.shape == reference.shape
    lower = slice(frame.shape[0] // 3, None)  # below the label strip
    upright = np.abs(frame[lower] - reference[lower]).mean()
    flipped = np.abs(frame[lower] - reference[::-1, ::-1][lower]).mean()
    assert upright < 6 and flipped > 3 * upright


def test_truncated_file_gives_results_for_what_decodes(tmp_path):
    data = shared_file("videos", "road_highway_dashcam_solidWhiteRight.mp4").read_bytes()
    cut = tmp_path / "half.mp4"
    cut.write_bytes(data[: len(data) // 2])
    result = runner.invoke(app, ["analyze", str(cut), "-o", str(tmp_path / "out"), "--every", "4", "--json", "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert 0 < summary["frames_analysed"] < 56 and summary["decode_errors"] >= 1 and summary["warnings"]
    assert "Traceback" not in result.output


# -- bad input through the CLI ------------------------------------------------------------------


def _bad_inputs(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    audio = tmp_path / "sound.m4a"
    make_audio_only(audio)
    full = tmp_path / "full.mp4"
    make_video(full, 20, size=(96, 64))
    before_index = tmp_path / "cut.mp4"
    before_index.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    no_videos = tmp_path / "no_videos"  # a folder is a batch input (batch.py); one with no video in it is an error
    no_videos.mkdir()
    (no_videos / "readme.txt").write_text("no video here")
    return [tmp_path / "missing.mp4", empty, text, audio, before_index, no_videos]


def test_bad_inputs_exit_2_with_one_line_and_no_outputs(tmp_path):
    out = tmp_path / "out"
    for bad in _bad_inputs(tmp_path):
        result = runner.invoke(app, ["analyze", str(bad), "-o", str(out)])
        assert result.exit_code == 2, (bad, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (bad, result.stderr)
        assert "Traceback" not in result.output
    assert not out.exists() or not list(out.iterdir())


def test_shared_zero_byte_file(tmp_path):
    path = shared_file("videos", "awkward_zero_bytes.webm")
    result = runner.invoke(app, ["analyze", str(path), "-o", str(tmp_path)])
    assert result.exit_code == 2 and "empty" in result.stderr and not list(tmp_path.iterdir())


def test_cli_json_summary_and_usage_errors(tmp_path):
    src = tmp_path / "clip.mp4"
    make_video(src, 6, size=(64, 48))
    result = runner.invoke(app, ["analyze", str(src), "-o", str(tmp_path / "o"), "--json", "--top-n", "2", "--no-video"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["frames_analysed"] == 6 and summary["options"]["top_n"] == 2 and "video" not in summary["outputs"]
    (top,) = summary["seen"]["top1"]["classes"][:1]
    result = runner.invoke(app, ["analyze", str(src), "-o", str(tmp_path / "o"), "--top-n", "2", "--no-video"])
    assert result.exit_code == 0, result.output  # the done report names what was mostly seen
    assert f"  mostly seen: {top['class_name']} {top['share']:.0%} ({top['first_s']:g}-{top['last_s']:g} s)" in result.stdout
    assert "frames_csv: " in result.stdout
    for extra in (["--cam-classes", "zzzz"], ["--start", "abc"], ["--every", "2", "--fps", "3"], ["--start", "5", "--end", "1"]):
        result = runner.invoke(app, ["analyze", str(src), "-o", str(tmp_path / "bad"), *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "bad").exists() or not list((tmp_path / "bad").iterdir())


# -- Ctrl-C -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_finalises_playable_video_and_complete_csv(tmp_path):
    src = tmp_path / "long.mp4"
    make_video(src, 1500, size=(320, 240), gop=25)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamcam", "analyze", str(src), "-o", str(out), "-q", "-n", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    partial = out / ".long.predictions.partial.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if partial.exists() and partial.read_text().count("\n") > 3 * 40:
            break
        if proc.poll() is not None:
            pytest.fail(f"analyze ended early: {proc.stderr.read().decode()}")
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr.decode()
    assert (out / "long.summary.json").exists(), f"outputs not kept: {stderr.decode()[-500:]}"
    summary = json.loads((out / "long.summary.json").read_text())
    assert summary["status"] == "interrupted"
    frames, _ = decoded(out / "long.gradcam.mp4")
    table = pd.read_csv(out / "long.predictions.csv")
    n = summary["frames_analysed"]
    assert 40 <= n < 1500
    assert len(frames) == n
    assert sorted(table["frame_index"].unique()) == list(range(n)) and len(table) == 3 * n
    assert pd.read_csv(out / "long.frames.csv")["frame_index"].tolist() == list(range(n))
    assert not list(out.glob(".*partial*"))


@pytest.mark.slow
def test_a_ctrl_c_while_the_outputs_are_finished_keeps_them_all(default_engine, tmp_path):
    """A press after the last frame, while the files close and the review page is written (shrunk
    to a tiny --review-max-mb, so that takes a while): the run counts as interrupted, and every
    output is finished, the summary included. (A press there once threw the whole run away.)"""
    src, out = tmp_path / "clip.mp4", tmp_path / "out"
    make_video(src, 150, size=(320, 240))
    closing, stop_watching = threading.Event(), threading.Event()

    def watch():  # the first file under its final name: outputs.close() has begun
        while not stop_watching.is_set():
            if any(not p.name.startswith(".") and p.suffix in (".csv", ".mp4") for p in out.glob("clip.*")):
                closing.set()
                return
            time.sleep(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with self_interrupts() as ctrl_c:
            ctrl_c.send(0.0, once=(closing,), wait_s=120)
            summary = analyze(str(src), default_engine, AnalyzeOptions(out_dir=out, review=True, review_max_mb=0.05))
    finally:
        stop_watching.set()
    assert ctrl_c.sent == 1 and ctrl_c.late == 0  # it landed inside analyze
    assert summary.status == "interrupted" and summary.frames_analysed == 150
    saved = json.loads((out / "clip.summary.json").read_text())
    assert saved["status"] == "interrupted" and saved["frames_analysed"] == 150
    for key in ("video", "predictions", "frames_csv", "review"):
        assert Path(summary.outputs[key]).stat().st_size > 0, key
    assert len(decoded(out / "clip.gradcam.mp4")[0]) == 150
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # nothing half-written left


def test_http_url_input(default_engine, tmp_path):
    """A URL goes through the same pipeline: served from a local HTTP server on the loopback."""
    import functools
    import http.server
    import threading

    make_video(tmp_path / "clip.mp4", 12, size=(96, 64), faststart=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"
        summary = analyze(url, default_engine, AnalyzeOptions(out_dir=tmp_path / "out", top_n=2))
    finally:
        server.shutdown()
    assert summary.frames_analysed == 12
    assert len(pd.read_csv(tmp_path / "out" / "clip.predictions.csv")) == 24
    assert len(decoded(tmp_path / "out" / "clip.gradcam.mp4")[0]) == 12
