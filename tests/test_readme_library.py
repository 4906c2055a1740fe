"""The README's library section runs as written: its python blocks, in order, in one namespace."""

import os
import re

import pytest

from conftest import REPO


def library_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## As a library\n") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_has_a_library_example():
    blocks = library_blocks()
    assert len(blocks) >= 2 and "explain_video" in blocks[0] and "streamcam.overlay" in blocks[0]


@pytest.mark.slow
def test_the_readme_library_example_runs(tmp_path, monkeypatch, capsys):
    # The example's paths are the repository's (sample_videos/...); its outputs land in tmp_path.
    os.symlink(REPO / "sample_videos", tmp_path / "sample_videos")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in library_blocks():
        exec(compile(block, "README.md", "exec"), namespace)  # the README's own code, run as a user would
    assert namespace["picture"].shape == namespace["photo"].shape and namespace["picture"].dtype.name == "uint8"
    assert namespace["wide"].cams.shape == (2, 1, 11, 20)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("0 0.00s [(285, 'Egyptian_cat'")  # the loop ran on the sample's cat
    assert namespace["r"].frame.time_s <= 0.55  # and stopped where it broke off
    summary = namespace["summary"]
    assert summary.status == "complete" and summary.frames_analysed == 25
    assert (tmp_path / "streamcam_out" / "sample.predictions.csv").is_file()
    assert 0.0 < namespace["peaks"].best < 0.1
