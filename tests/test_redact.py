"""Credentials never leave in a source's name: the shared redaction, then a real analyze of a real
HTTP URL carrying a password and a token, whose summary, review page and error lines are read back."""

from __future__ import annotations

import json

import pytest

from streamcam.apps.analyze import AnalyzeOptions, analyze
from streamcam.apps.batch import Manifest, unfinished_entry
from streamcam.core.errors import InputError
from streamcam.core.redact import redact_source
from streamcam.video.source import VideoSource

from stall_server import StallingServer
from videos import make_video


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("rtsp://admin:secret@cam/main", "rtsp://***@cam/main"),
        ("rtsp://admin@cam:554/main", "rtsp://***@cam:554/main"),
        ("rtsp://ad@min:p@ss@cam/main", "rtsp://***@cam/main"),  # FFmpeg splits at the last '@'
        ("http://cam/x?user=a&password=b&fps=5", "http://cam/x?user=a&password=***&fps=5"),
        ("https://h/v.m3u8?X-Amz-Signature=abc&X-Amz-Credential=k&t=1", "https://h/v.m3u8?X-Amz-Signature=***&X-Amz-Credential=***&t=1"),
        ("http://u:p@h/a?token=t#frag", "http://***@h/a?token=***#frag"),
        ("http://h/a?api_key=&pwd", "http://h/a?api_key=&pwd"),  # nothing to hide
        ("http://h/p@th/clip.mp4", "http://h/p@th/clip.mp4"),  # an '@' in the path is not userinfo
        ("udp://239.0.0.1:1234", "udp://239.0.0.1:1234"),
        ("videos/a:b@c.mp4", "videos/a:b@c.mp4"),  # a local path is shown as it is
        (0, "0"),
    ],
)
def test_redact_source(source, shown):
    assert redact_source(source) == shown


def test_an_error_line_names_the_url_without_its_password():
    with pytest.raises(InputError) as caught:
        VideoSource("http://admin:secret@127.0.0.1:1/clip.mp4?token=abc", timeout=2)  # nothing listens on port 1
    assert "secret" not in str(caught.value) and "abc" not in str(caught.value)
    assert "http://***@127.0.0.1:1/clip.mp4?token=***" in str(caught.value)


def test_a_batch_manifest_keeps_the_url_without_credentials_and_finds_it_again(tmp_path):
    url = "rtsp://admin:secret@cam/main?token=abc"
    manifest = Manifest(tmp_path)
    settings = {"source_sha256": "0" * 64, "engine": {"model": "efficientnet-lite0"}, "options": {"top_n": 5}}
    manifest.record({**unfinished_entry(url, tmp_path / "main", "complete", ""), "outputs": {}, "settings": settings, "files": {}})
    assert "secret" not in manifest.path.read_text() and "abc" not in manifest.path.read_text()
    assert Manifest(tmp_path).done(url, settings)  # the next run matches the same camera


@pytest.mark.slow
def test_summary_and_review_page_of_a_url_with_credentials(default_engine, tmp_path):
    clip = tmp_path / "clip.mp4"
    make_video(clip, 10, size=(96, 64), faststart=True)
    out = tmp_path / "out"
    with StallingServer(clip, clip.stat().st_size) as server:  # sends the whole file
        url = server.url.replace("http://", "http://admin:secret@") + "?token=abc"
        summary = analyze(url, default_engine, AnalyzeOptions(out_dir=out, top_n=2, review=True))
    assert summary.frames_analysed == 10 and "review" in summary.outputs
    assert summary.input["source"] == server.url.replace("http://", "http://***@") + "?token=***"
    for written in out.iterdir():
        if written.suffix in (".json", ".html", ".csv"):
            text = written.read_text(encoding="utf-8", errors="replace")
            assert "secret" not in text and "token=abc" not in text, written.name
    assert json.loads((out / "clip.summary.json").read_text())["input"]["source"] == summary.input["source"]
