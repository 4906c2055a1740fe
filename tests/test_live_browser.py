"""`streamcam live --serve` in a real headless Chromium: a real CLI process reading a live MJPEG
stream on 127.0.0.1, its page showing the moving overlay, the top classes and stats that update,
a stalled source shown as such, and Ctrl-C ending it with exit 130."""

from __future__ import annotations

import re
import shutil
import time

import pandas as pd
import pytest

from live_process import LiveProcess
from stream_sources import MjpegSource

SIZE = (320, 180)
SCREENSHOT_COPY = "/tmp/live_page.png"


class GrayMjpegSource(MjpegSource):
    """MjpegSource with the colour taken out (hue=s=0): any saturated colour on the page's picture
    then comes from the Grad-CAM heatmap, not from ffmpeg's colourful test pattern."""

    def _command(self) -> list[str]:
        cmd = super()._command()
        i = cmd.index("-f", cmd.index("-i"))  # the output format, after the input
        return [*cmd[:i], "-vf", "hue=s=0", *cmd[i:]]


# The picture in the <img>: drawn to a canvas (same origin, so readable), hashed, and measured.
_IMAGE_FIGURES = """() => {
  const img = document.getElementById("stream");
  const w = img.naturalWidth, h = img.naturalHeight;
  if (!w || !h) return null;
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, w, h).data;
  let hash = 0, colourful = 0, counted = 0;
  const bandRows = Math.round(h * 0.3);  // below the label strip at the top
  for (let i = 0; i < d.length; i += 4) {
    hash = (hash * 31 + d[i] + 7 * d[i + 1] + 13 * d[i + 2]) % 1000000007;
    if ((i / 4) / w >= bandRows) {
      counted++;
      const mx = Math.max(d[i], d[i + 1], d[i + 2]), mn = Math.min(d[i], d[i + 1], d[i + 2]);
      if (mx - mn > 60) colourful++;  // strongly saturated: heatmap colour on a gray picture
    }
  }
  return {w, h, hash, colourful: colourful / counted};
}"""


_SHOWN_TABLE = """() => {
  const rows = [...document.querySelectorAll('#top tbody tr')].map((r) => [r.cells[0].firstChild.textContent, Number(r.cells[1].textContent)]);
  return [Number(document.getElementById('stream').dataset.frame), rows];
}"""


def _frames_shown(text: str) -> int:
    found = re.search(r"frames shown (\d+)", text)
    assert found, f"no 'frames shown N' in the stats text: {text!r}"
    return int(found.group(1))


@pytest.mark.slow
def test_live_page_shows_the_moving_overlay_stats_and_a_stall(browser_page, tmp_path):
    page = browser_page
    screenshot = tmp_path / "live_page.png"
    live = None
    with GrayMjpegSource(size=SIZE, rate=15) as source:
        try:
            # --heat minmax: this test is about the page (frames, stats, stall), and a flat gray frame
            # gives the model little evidence, so the default 'evidence' heat would rightly fade out.
            record = tmp_path / "rec"
            live = LiveProcess(
                source.url,
                "--no-window",
                "--serve",
                "127.0.0.1:0",
                "--timeout",
                "2",
                "--heat",
                "minmax",
                "--record",
                str(record),
                "--top-n",
                "5",
            )
            url = live.wait_for_url()
            origin = url.rstrip("/")

            # conftest's recorder aborts every http request; here only the session's server is local.
            page.context.unroute_all(behavior="ignoreErrors")
            page.context.route(lambda u: not u.startswith(origin + "/"), lambda route: route.abort())
            page.goto(url, wait_until="domcontentloaded")

            # playing, with frames and top classes (the model traces before the first frame)
            page.wait_for_function(
                "() => document.getElementById('state').textContent === 'playing'"
                " && document.getElementById('stream').naturalWidth > 0"
                " && /frames shown [1-9]/.test(document.getElementById('stats').textContent)",
                timeout=60_000,
                polling=200,
            )
            page.wait_for_function("() => document.querySelectorAll('#top tbody tr').length > 0", timeout=5_000)
            assert page.locator("#top tbody tr").count() >= 1
            assert page.inner_text("#top tbody tr >> nth=0").strip()

            # the side table is the shown picture's own: sampled with the picture's frame number,
            # it matches that frame's row in the recording's CSV (not whichever frame was newest)
            shown = []
            for _ in range(6):
                shown.append(page.evaluate(_SHOWN_TABLE))
                page.wait_for_timeout(150)

            # the overlay: the source's size, gray input with heatmap colours on it, and it moves
            first = page.evaluate(_IMAGE_FIGURES)
            stats_before = page.inner_text("#stats")
            page.wait_for_timeout(1200)  # > two 500 ms polls
            second = page.evaluate(_IMAGE_FIGURES)
            stats_after = page.inner_text("#stats")
            assert (first["w"], first["h"]) == SIZE and (second["w"], second["h"]) == SIZE
            assert first["hash"] != second["hash"], "the <img> did not change in 1.2 s"
            assert max(first["colourful"], second["colourful"]) > 0.05, (first, second)
            assert stats_after != stats_before
            assert _frames_shown(stats_after) > _frames_shown(stats_before)
            assert page.inner_text("#state") == "playing"
            assert page.evaluate("() => document.getElementById('banner').classList.contains('shown')") is False

            page.screenshot(path=str(screenshot), full_page=True)
            shutil.copyfile(screenshot, SCREENSHOT_COPY)

            # the source goes silent: stalled after 2 s without a frame, then reconnecting
            source.pause()
            paused = time.monotonic()
            page.wait_for_function(
                "() => ['stalled', 'reconnecting'].includes(document.getElementById('state').textContent)", timeout=15_000, polling=100
            )
            assert time.monotonic() - paused < 15
            assert page.evaluate("() => document.getElementById('banner').classList.contains('shown')") is True

            assert page.console_errors == []
            assert [u for u in page.external_requests if not u.startswith(origin + "/")] == []

            code, stdout, took = live.interrupt(seconds=30)
            assert code == 130, live.stderr
            assert took < 30
            assert re.search(r"^\d+ frames shown at [\d.]+ fps, \d+ skipped, \d+ reconnects", stdout, re.M), stdout
            assert "Traceback" not in live.stderr
            table = pd.read_csv(next(record.glob("*.predictions.csv")))
            for frame, rows in shown:
                expected = table[table["frame_index"] == frame].sort_values("rank")
                assert [name for name, _ in rows] == expected["class_name"].tolist()[: len(rows)], (frame, rows)
                smoothed = expected["probability_smoothed"].tolist()[: len(rows)]  # the page shows 3 decimals
                assert all(abs(p - q) <= 6e-4 for (_, p), q in zip(rows, smoothed, strict=True)), (frame, rows, smoothed)
        finally:
            if live is not None:
                live.kill()
    assert screenshot.exists() and screenshot.stat().st_size > 0
