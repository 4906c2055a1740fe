"""Many videos in one run (batch.py): inputs, output folders, the manifest, skips and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamcam.apps.analyze import AnalyzeOptions
from streamcam.apps.batch import COMPLETE, FAILED, SKIPPED, Manifest, exit_code, expand_inputs, output_folders, run_local
from streamcam.core.errors import UsageError

from videos import make_video

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def clips(tmp_path):
    """Two clips with the same name in different folders, one in a sub-folder, a zero-byte file, a text file."""
    root = tmp_path / "clips"
    for sub, n in (("a", 6), ("b", 8), ("b/deeper", 5)):
        (root / sub).mkdir(parents=True)
        make_video(root / sub / "clip.mp4", n, size=(96, 64))
    (root / "a" / "broken.mp4").write_bytes(b"")
    (root / "a" / "notes.txt").write_text("not a video")
    return root


def test_inputs_from_files_folders_and_globs(clips):
    a, b = clips / "a", clips / "b"
    assert expand_inputs([str(a)]) == [str(a / "broken.mp4"), str(a / "clip.mp4")]
    assert expand_inputs([str(b)]) == [str(b / "clip.mp4")]
    assert expand_inputs([str(b)], recursive=True) == [str(b / "clip.mp4"), str(b / "deeper" / "clip.mp4")]
    assert expand_inputs([str(clips / "*" / "clip.mp4")]) == [str(a / "clip.mp4"), str(b / "clip.mp4")]
    assert expand_inputs([str(a / "clip.mp4"), str(a)]) == [str(a / "clip.mp4"), str(a / "broken.mp4")]  # no duplicates
    assert expand_inputs(["rtsp://cam/main", "0"]) == ["rtsp://cam/main", "0"]
    with pytest.raises(UsageError, match="--recursive"):
        expand_inputs([str(clips)])  # only sub-folders below
    with pytest.raises(UsageError, match="no files match"):
        expand_inputs([str(clips / "*.mkv")])


def test_equal_file_names_get_their_own_folders(clips, tmp_path):
    videos = [str(clips / "a" / "clip.mp4"), str(clips / "b" / "clip.mp4"), str(clips / "b" / "deeper" / "clip.mp4")]
    folders = output_folders(videos, tmp_path / "out")
    assert len(set(folders.values())) == 3
    assert folders[videos[0]] == tmp_path / "out" / "a" / "clip"
    assert folders[videos[2]] == tmp_path / "out" / "b" / "deeper" / "clip"


def test_a_failing_video_does_not_stop_the_batch_and_a_rerun_skips_what_is_done(default_engine, clips, tmp_path):
    out = tmp_path / "out"
    videos = expand_inputs([str(clips)], recursive=True)
    options = AnalyzeOptions(video=False)
    first = run_local(videos, default_engine, options, out, Manifest(out))
    status = {Path(e["path"]).relative_to(clips).as_posix(): e["status"] for e in first}
    assert status == {"a/broken.mp4": FAILED, "a/clip.mp4": COMPLETE, "b/clip.mp4": COMPLETE, "b/deeper/clip.mp4": COMPLETE}
    broken = next(e for e in first if e["status"] == FAILED)
    assert broken["error"] and "\n" not in broken["error"]
    assert exit_code(first) == 1
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [line["path"] for line in lines] == videos
    frames = {Path(e["path"]).relative_to(clips).as_posix(): e["frames"] for e in first}
    assert frames == {"a/broken.mp4": 0, "a/clip.mp4": 6, "b/clip.mp4": 8, "b/deeper/clip.mp4": 5}
    for entry in first:
        assert all(Path(p).exists() for p in entry["outputs"].values() if isinstance(p, str))

    # Again: the complete videos are skipped, the failed one is tried again.
    again = run_local(videos, default_engine, options, out, Manifest(out))
    assert sorted(e["status"] for e in again) == [FAILED, SKIPPED, SKIPPED, SKIPPED]
    assert all(Manifest(out).done(v) for v in videos if not v.endswith("broken.mp4"))  # and a third run skips too
    # A complete video whose outputs went missing is redone.
    (out / "a" / "clip" / "clip.predictions.csv").unlink()
    third = run_local(videos, default_engine, options, out, Manifest(out))
    assert {Path(e["path"]).relative_to(clips).as_posix(): e["status"] for e in third}["a/clip.mp4"] == COMPLETE


def test_a_manifest_line_cut_off_by_a_killed_run_is_ignored_and_that_video_redone(default_engine, clips, tmp_path):
    out = tmp_path / "out"
    videos = [str(clips / "a" / "clip.mp4"), str(clips / "b" / "clip.mp4")]
    run_local(videos, default_engine, AnalyzeOptions(video=False), out, Manifest(out))
    text = (out / "manifest.jsonl").read_text()
    first, second = text.splitlines()
    (out / "manifest.jsonl").write_text(first + "\n" + second[: len(second) // 2])  # killed mid-write
    manifest = Manifest(out)
    assert manifest.done(videos[0]) and not manifest.done(videos[1])
    entries = run_local(videos, default_engine, AnalyzeOptions(video=False), out, manifest)
    assert [e["status"] for e in entries] == [SKIPPED, COMPLETE]
    for line in (out / "manifest.jsonl").read_text().splitlines()[2:]:
        json.loads(line)  # every line after the cut one is whole


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "streamcam", "analyze", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@pytest.mark.slow
def test_the_cli_batch_exit_codes_and_out_dir(clips, tmp_path):
    result = _cli(str(clips / "a" / "clip.mp4"), str(clips / "b" / "clip.mp4"), cwd=tmp_path)
    assert result.returncode == 2 and "--out-dir is required" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    out = tmp_path / "out"
    result = _cli(str(clips / "a"), str(clips / "b" / "clip.mp4"), "--out-dir", str(out), "--no-video", "-q", cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # broken.mp4 failed
    assert "failed:" in result.stderr and "broken.mp4" in result.stderr and "Traceback" not in result.stderr
    statuses = [json.loads(line)["status"] for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(statuses) == [COMPLETE, COMPLETE, FAILED]

    result = _cli(str(clips / "b" / "clip.mp4"), str(clips / "a" / "clip.mp4"), "--out-dir", str(out), "--no-video", cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # both complete before: skipped
    assert "2 skipped" in result.stdout
