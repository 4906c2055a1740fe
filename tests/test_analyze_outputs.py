"""What analyze does to the files around it: bad options refused before anything is written,
earlier outputs never overwritten silently, one run per output at a time, a full disk or a
folder that cannot be written reported in one line with everything else finished."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from streamcam.apps.analyze import AnalyzeOptions, analyze, settings_differ
from streamcam.core.errors import UsageError
from streamcam.core.locks import folder_lock

from videos import make_video

REPO = Path(__file__).resolve().parents[1]


def cli(*args, cwd, timeout=300, **popen):
    # PYTHONDONTWRITEBYTECODE: a child under a file-size limit would leave truncated .pyc files (Python
    # does not check the short write) that break every later import in the repository.
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "streamcam", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout, **popen
    )


def one_error_line(result, code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], result.stderr


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.mp4"
    make_video(path, 6, size=(96, 64))
    return path


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("--preset", "nosuch"), "--preset 'nosuch' is not a preset"),
        (("--codec", "libvpx-vp9", "--crf", "63", "--preset", "nosuch"), "is not a preset"),
        (("--cam-classes", "top2000"), "at most top10"),
    ],
)
def test_bad_options_exit_2_in_one_line_before_anything_is_written(clip, tmp_path, args, text):
    out = tmp_path / "out"
    one_error_line(cli("analyze", str(clip), "-o", str(out), *args, cwd=tmp_path), 2, text)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_live_refuses_too_many_cam_classes_before_the_model_loads(tmp_path, clip):
    result = cli("live", str(clip), "--no-window", "--record", str(tmp_path / "rec"), "--cam-classes", "top11", cwd=tmp_path)
    one_error_line(result, 2, "at most top10")


# --- earlier outputs are never replaced silently (item 5) ---------------------------------------


def test_the_same_command_reruns_and_another_one_is_refused_without_overwrite(default_engine, clip, tmp_path):
    out = tmp_path / "out"
    first = analyze(str(clip), default_engine, AnalyzeOptions(video=False, out_dir=out))
    again = analyze(str(clip), default_engine, AnalyzeOptions(video=False, out_dir=out))  # the same command: replaced
    assert again.status == first.status == "complete" and again.source_sha256 == first.source_sha256
    csv = out / "clip.predictions.csv"
    before = csv.read_bytes()
    with pytest.raises(UsageError, match=r"different run \(top_n 5 -> 3\).*--overwrite"):
        analyze(str(clip), default_engine, AnalyzeOptions(video=False, out_dir=out, top_n=3))
    # Another input with the same name (clip.mov beside clip.mp4) would land on the same files.
    other = tmp_path / "other" / "clip.mp4"
    other.parent.mkdir()
    make_video(other, 4, size=(96, 64))
    with pytest.raises(UsageError, match="another input"):
        analyze(str(other), default_engine, AnalyzeOptions(video=False, out_dir=out))
    assert csv.read_bytes() == before
    analyze(str(clip), default_engine, AnalyzeOptions(video=False, out_dir=out, top_n=3, overwrite=True))
    assert csv.read_bytes() != before
    # Files no summary accounts for are not replaced either.
    (tmp_path / "lone").mkdir()
    (tmp_path / "lone" / "clip.predictions.csv").write_text("someone's table\n")
    with pytest.raises(UsageError, match="no summary says which run wrote it"):
        analyze(str(clip), default_engine, AnalyzeOptions(video=False, out_dir=tmp_path / "lone"))
    assert (tmp_path / "lone" / "clip.predictions.csv").read_text() == "someone's table\n"


def test_settings_differ_reads_a_summary_and_a_batch_manifest_entry_alike():
    summary = {"source_sha256": "a", "model": "m", "method": "gradcam", "options": {"top_n": 5, "out_dir": "x"}}
    now = {"source_sha256": "a", "model": "m", "method": "layercam", "options": {"top_n": 3}}
    assert settings_differ(summary, now) == ["method 'gradcam' -> 'layercam'", "top_n 5 -> 3"]  # an old out_dir is no setting
    entry = {"source_sha256": "a", "engine": {"model": "m", "method": "gradcam"}, "options": {"top_n": 5}}
    assert settings_differ(entry, entry) == []
    assert settings_differ(entry, {**entry, "engine": {"model": "m", "method": "eigencam"}}) == ["method 'gradcam' -> 'eigencam'"]
    assert settings_differ(entry, {**entry, "source_sha256": "b"}) == ["another input"]


def test_the_cli_refuses_another_commands_outputs_before_the_model_loads(default_engine, clip, tmp_path):
    out = tmp_path / "out"
    analyze(str(clip), default_engine, AnalyzeOptions(video=False, out_dir=out))
    result = cli("analyze", str(clip), "-o", str(out), "--no-video", "--top-n", "2", cwd=tmp_path)
    one_error_line(result, 2, "--overwrite")
    assert "loading model" not in result.stderr


# --- one run per output folder (item 6) ---------------------------------------------------------


def test_a_second_run_on_a_busy_folder_exits_2(clip, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with folder_lock(out):  # this process is the first run
        one_error_line(
            cli("analyze", str(clip), "-o", str(out), cwd=tmp_path), 2, f"another streamcam run (process {os.getpid()}) is writing to"
        )
        batch = cli("analyze", str(clip), str(clip.parent), "-o", str(out), cwd=tmp_path)
        one_error_line(batch, 2, "is writing to")
    assert not list(out.iterdir())


def test_the_lock_is_reentrant_in_one_process_and_gone_after(tmp_path):
    with folder_lock(tmp_path), folder_lock(tmp_path):
        assert (tmp_path / ".streamcam.lock").read_text() == str(os.getpid())
    assert not list(tmp_path.iterdir())
    with folder_lock(tmp_path):  # taken again: the first holder let go
        pass


# --- a full disk, a read-only folder, a file where a folder should be (item 4) -----------------


@pytest.fixture
def noisy_clip(tmp_path):
    """30 frames of noise: an overlay video of about 1 MB beside a CSV of about 9 KB."""
    path = tmp_path / "noise.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for _ in range(30):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def assert_video_dropped_rest_complete(result, out: Path, stem: str, reason: str) -> None:
    one_error_line(result, 1, f"could not write {out / stem}.gradcam.mp4: {reason}")
    assert "Traceback" not in result.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{stem}.frames.csv", f"{stem}.predictions.csv", f"{stem}.summary.json"], names  # no partial files, no lock
    summary = json.loads((out / f"{stem}.summary.json").read_text())
    assert summary["status"] == "complete" and summary["frames_analysed"] == 30
    assert "video" not in summary["outputs"] and summary["errors"] == [f"could not write {out / stem}.gradcam.mp4: {reason}"]
    assert len((out / f"{stem}.predictions.csv").read_text().splitlines()) == 1 + 30 * 5
    assert len((out / f"{stem}.frames.csv").read_text().splitlines()) == 1 + 30


@pytest.mark.slow
def test_a_file_size_limit_drops_the_file_that_outgrows_it_alone(default_classifier, noisy_clip, tmp_path):
    out = tmp_path / "out"  # default_classifier: the model's cache is written here, before the limit

    def limit_file_size():  # in the child only: 64 KB per file, as a nearly full disk would allow
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    # --runtime keras: this test is about the run's own files; OpenVINO's model cache (written on
    # first use) would hit the limit first, which test_openvino_runtime covers (a warning, no stop).
    result = cli("analyze", str(noisy_clip), "-o", str(out), "-q", "--runtime", "keras", cwd=tmp_path, preexec_fn=limit_file_size)
    assert_video_dropped_rest_complete(result, out, "noise", "File too large")


@pytest.fixture
def small_mount(tmp_path):
    """A 128 KB tmpfs (needs root; where it cannot be mounted the size-limit test above stands in)."""
    where = tmp_path / "mnt"
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(where)]).returncode:
        pytest.skip("cannot mount a tmpfs here (not root): test_a_file_size_limit_... covers a full disk")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.slow
def test_a_full_disk_drops_the_file_that_does_not_fit_alone(noisy_clip, small_mount, tmp_path):
    out = small_mount / "out"
    result = cli("analyze", str(noisy_clip), "-o", str(out), "-q", cwd=tmp_path)
    assert_video_dropped_rest_complete(result, out, "noise", "No space left on device")


def test_a_read_only_folder_fails_in_one_line_before_the_model_loads(clip, small_mount, tmp_path):
    subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    for args in (("analyze", str(clip), "-o", str(small_mount / "out")), ("live", str(clip), "--no-window", "--record", str(small_mount))):
        one_error_line(cli(*args, cwd=tmp_path), 1, "Read-only file system")


def test_a_file_where_the_folder_should_be(clip, tmp_path):
    for args in (("analyze", str(clip), "-o", str(clip)), ("live", str(clip), "--no-window", "--record", str(clip / "rec"))):
        one_error_line(cli(*args, cwd=tmp_path), 1, f"{clip} is a file, not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_without_out_dir_the_files_go_to_streamcam_out_and_the_last_line_says_so(tmp_path):
    """Never beside the input (a source tree, a read-only card): ./streamcam_out of the working folder."""
    clips = tmp_path / "card"
    clips.mkdir()
    make_video(clips / "clip.mp4", 6, size=(64, 48))
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "streamcam", "analyze", str(clips / "clip.mp4"), "--no-video"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (work / "streamcam_out").iterdir()) == ["clip.frames.csv", "clip.predictions.csv", "clip.summary.json"]
    assert sorted(p.name for p in clips.iterdir()) == ["clip.mp4"]  # nothing written beside the input
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("done: 6 frames analysed in ") and last.endswith("; outputs in streamcam_out/"), last
