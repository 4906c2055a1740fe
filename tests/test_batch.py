"""Many videos in one run (batch.py): inputs, output folders, the manifest, skips and exit codes."""

from __future__ import annotations

import _thread
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from streamcam.apps.analyze import AnalyzeOptions
from streamcam.apps.batch import (
    COMPLETE,
    FAILED,
    INTERRUPTED,
    SKIPPED,
    Manifest,
    engine_key_of,
    exit_code,
    expand_inputs,
    output_folders,
    run_local,
    settings_of,
)
from streamcam.core.errors import UsageError

from ctrl_c import self_interrupts
from videos import make_video

REPO = Path(__file__).resolve().parents[1]


def settings(video, options, engine):
    return settings_of(video, options, engine_key_of(engine))


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
    assert folders[videos[0]] == tmp_path / "out" / "a" / "clip.mp4"
    assert folders[videos[2]] == tmp_path / "out" / "b" / "deeper" / "clip.mp4"


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
    manifest = Manifest(out)
    assert all(
        manifest.done(v, settings(v, options, default_engine)) for v in videos if not v.endswith("broken.mp4")
    )  # and a third run skips too
    # A complete video whose outputs went missing is redone.
    (out / "a" / "clip.mp4" / "clip.predictions.csv").unlink()
    third = run_local(videos, default_engine, options, out, Manifest(out))
    assert {Path(e["path"]).relative_to(clips).as_posix(): e["status"] for e in third}["a/clip.mp4"] == COMPLETE
    (out / "a" / "clip.mp4" / "clip.frames.csv").unlink()  # the per-frame table too
    fourth = run_local(videos, default_engine, options, out, Manifest(out))
    assert {Path(e["path"]).relative_to(clips).as_posix(): e["status"] for e in fourth}["a/clip.mp4"] == COMPLETE


def test_a_ctrl_c_between_two_videos_stops_the_batch_with_every_video_recorded(default_engine, clips, tmp_path):
    """The press lands as the first video is reported, before the second starts (Python runs the
    handler at its next bytecode check): the batch stops there, nothing escapes run_local, and the
    manifest names every video."""
    out = tmp_path / "out"
    videos = expand_inputs([str(clips / "b"), str(clips / "a" / "clip.mp4")], recursive=True)
    reported = []

    def on_video(entry):
        reported.append(entry["status"])
        if len(reported) == 1:
            _thread.interrupt_main(signal.SIGINT)

    with self_interrupts():
        entries = run_local(videos, default_engine, AnalyzeOptions(video=False), out, Manifest(out), on_video=on_video)
    assert [e["status"] for e in entries] == reported == [COMPLETE, INTERRUPTED, INTERRUPTED]
    assert all("not started" in e["error"] for e in entries[1:])
    assert [json.loads(line)["status"] for line in (out / "manifest.jsonl").read_text().splitlines()] == reported
    assert exit_code(entries) == 130


def test_a_manifest_line_cut_off_by_a_killed_run_is_ignored_and_that_video_redone(default_engine, clips, tmp_path):
    out = tmp_path / "out"
    videos = [str(clips / "a" / "clip.mp4"), str(clips / "b" / "clip.mp4")]
    run_local(videos, default_engine, AnalyzeOptions(video=False), out, Manifest(out))
    text = (out / "manifest.jsonl").read_text()
    first, second = text.splitlines()
    (out / "manifest.jsonl").write_text(first + "\n" + second[: len(second) // 2])  # killed mid-write
    manifest = Manifest(out)
    options = AnalyzeOptions(video=False)
    assert manifest.done(videos[0], settings(videos[0], options, default_engine)) and not manifest.done(
        videos[1], settings(videos[1], options, default_engine)
    )
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
    # no --out-dir: ./streamcam_out, a sub-folder per video, and the last line says where
    result = _cli(str(clips / "a" / "clip.mp4"), str(clips / "b" / "clip.mp4"), "--no-video", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    default = tmp_path / "streamcam_out"
    assert (default / "manifest.jsonl").exists() and len(list(default.rglob("*.predictions.csv"))) == 2
    assert result.stdout.strip().splitlines()[-1].endswith(f"manifest: {Path('streamcam_out') / 'manifest.jsonl'}")

    out = tmp_path / "out"
    result = _cli(str(clips / "a"), str(clips / "b" / "clip.mp4"), "--out-dir", str(out), "--no-video", "-q", cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # broken.mp4 failed
    assert "failed:" in result.stderr and "broken.mp4" in result.stderr and "Traceback" not in result.stderr
    statuses = [json.loads(line)["status"] for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(statuses) == [COMPLETE, COMPLETE, FAILED]

    result = _cli(str(clips / "b" / "clip.mp4"), str(clips / "a" / "clip.mp4"), "--out-dir", str(out), "--no-video", cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # both complete before: skipped
    assert "2 skipped" in result.stdout


def test_files_of_one_name_with_other_extensions_and_urls_of_one_path_get_folders_of_their_own(default_engine, tmp_path):
    clips = tmp_path / "in"
    clips.mkdir()
    make_video(clips / "a.mp4", 4, size=(96, 64))
    make_video(clips / "a.mov", 6, size=(96, 64))
    out = tmp_path / "out"
    entries = run_local(expand_inputs([str(clips)]), default_engine, AnalyzeOptions(video=False), out, Manifest(out))
    assert [(Path(e["out_dir"]).relative_to(out).as_posix(), e["status"], e["frames"]) for e in entries] == [
        ("a.mov", COMPLETE, 6),
        ("a.mp4", COMPLETE, 4),
    ]
    for entry in entries:  # each folder holds its own video's results
        assert len((Path(entry["out_dir"]) / "a.predictions.csv").read_text().splitlines()) == 1 + 5 * entry["frames"]
    urls = ["rtsp://cam1/live/main", "rtsp://cam2/live/main", "http://host/x/main.mp4"]
    folders = output_folders(urls, out)
    assert len(set(folders.values())) == 3 and all(f.parent == out / "streams" and f.name.startswith("main-") for f in folders.values())
    assert output_folders(urls, out) == folders  # the same on every run
    # One file by two paths is one video.
    assert expand_inputs([str(clips / "a.mp4"), str(clips / "." / "a.mp4")]) == [str(clips / "a.mp4")]


def test_resume_redoes_damaged_outputs_and_other_settings_only_with_overwrite(default_engine, default_classifier, clips, tmp_path):
    from streamcam.explain.engine import CamEngine

    out = tmp_path / "out"
    videos = [str(clips / "a" / "clip.mp4"), str(clips / "b" / "clip.mp4")]
    options = AnalyzeOptions(video=False)
    first = run_local(videos, default_engine, options, out, Manifest(out))
    entry = first[0]
    assert set(entry["files"]) == {entry["outputs"][key] for key in ("predictions", "frames_csv", "summary")}
    assert all(record["size"] > 0 and len(record["sha256"]) == 64 for record in entry["files"].values())
    assert entry["settings"]["options"]["top_n"] == 5 and entry["settings"]["engine"] == engine_key_of(default_engine)

    def statuses(entries):  # in the order of `videos` (skipped entries come first)
        by_path = {e["path"]: e["status"] for e in entries}
        return [by_path[v] for v in videos]

    csv = Path(first[0]["outputs"]["predictions"])
    csv.write_bytes(b"")  # a complete output emptied
    assert statuses(run_local(videos, default_engine, options, out, Manifest(out))) == [COMPLETE, SKIPPED]
    csv.write_bytes(csv.read_bytes()[:-1] + b"9")  # changed, same size
    assert statuses(run_local(videos, default_engine, options, out, Manifest(out))) == [COMPLETE, SKIPPED]
    assert statuses(run_local(videos, default_engine, options, out, Manifest(out))) == [SKIPPED, SKIPPED]

    # Other options, or another CAM method: the earlier results are not replaced without --overwrite.
    before = csv.read_bytes()
    with pytest.raises(UsageError, match=r"2 of these videos were analysed .* other settings .*top_n 5 -> 3.*--overwrite"):
        run_local(videos, default_engine, AnalyzeOptions(video=False, top_n=3), out, Manifest(out))
    layercam = CamEngine(default_classifier, method="layercam")
    with pytest.raises(UsageError, match="method 'gradcam' -> 'layercam'"):
        run_local(videos, layercam, options, out, Manifest(out))
    assert csv.read_bytes() == before
    redone = run_local(videos, default_engine, AnalyzeOptions(video=False, top_n=3, overwrite=True), out, Manifest(out))
    assert statuses(redone) == [COMPLETE, COMPLETE] and len(csv.read_text().splitlines()) == 1 + 3 * 6
    assert statuses(run_local(videos, default_engine, AnalyzeOptions(video=False, top_n=3), out, Manifest(out))) == [SKIPPED, SKIPPED]


def test_recursive_inputs_never_include_the_output_folder_or_streamcams_outputs(default_engine, clips, tmp_path):
    (clips / "a" / "broken.mp4").unlink()
    make_video(clips / "a" / "clip.gradcam.mp4", 3, size=(96, 64))  # a single analyze's overlay beside its input
    (clips / "a" / ".clip.partial.mp4").write_bytes(b"half")
    out = clips / "results"  # inside the input tree
    options = AnalyzeOptions(heatmap_video=True)  # results/**.mp4 would be picked up otherwise
    expected = [str(clips / "a" / "clip.mp4"), str(clips / "b" / "clip.mp4"), str(clips / "b" / "deeper" / "clip.mp4")]
    for _run in range(2):
        videos = expand_inputs([str(clips)], recursive=True, out_dir=out)
        assert videos == expected
        entries = run_local(videos, default_engine, options, out, Manifest(out))
        assert [e["status"] for e in entries] == [COMPLETE] * 3 if _run == 0 else [SKIPPED] * 3
    assert not list(out.rglob("results"))
    assert len(list(out.rglob("*.gradcam.mp4"))) == 3
