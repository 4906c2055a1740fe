"""What analyze does to the files around it: bad options refused before anything is written,
earlier outputs never overwritten silently, one run per output at a time, a full disk or a
folder that cannot be written reported in one line with everything else finished."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from videos import make_video

REPO = Path(__file__).resolve().parents[1]


def cli(*args, cwd, timeout=300, **popen):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
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
