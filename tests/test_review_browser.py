"""The review page in a real headless Chromium (fixture `browser_page`, conftest.py): offline,
keys, class switching, timeline seeking, peaks, and variable-rate time codes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from streamcam.apps.analyze import AnalyzeOptions, analyze
from streamcam.core.labels import Labels
from streamcam.outputs.review import ReviewCollector, find_peaks, write_review
from streamcam.video.timecode import format_timecode

from videos import make_video

_CANVAS_SUM = """() => {
  const c = document.querySelector('[data-testid="frame-canvas"]');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let s = 0; for (let i = 0; i < d.length; i += 7) s = (s * 31 + d[i]) % 1000000007;
  return s;
}"""


class _Frame:
    def __init__(self, i, rgb):
        self.index, self.pts, self.time_s, self.rgb = i, i * 2, i / 25, rgb


class _Labels(Labels):
    """The real labels of a 10-class model, with short names the page tests look for."""

    def __init__(self):
        super().__init__(10)

    def name(self, c):
        return f"class{c}"


def synthetic_page(tmp_path, source="synthetic.mp4", n=40):
    """40 frames of changing brightness; class 3 looks top-left, class 5 bottom-right; class 3's
    probability has two bumps (peaks at 10 and 30)."""
    collector = ReviewCollector(tracked=[3, 5], top_n=3)
    t = np.arange(n)
    p3 = 0.8 * np.exp(-(((t - 10) / 2.0) ** 2)) + 0.6 * np.exp(-(((t - 30) / 2.0) ** 2))
    left, right = np.zeros((7, 7), np.float32), np.zeros((7, 7), np.float32)
    left[:3, :3], right[4:, 4:] = 1, 1
    for i in range(n):
        probs = np.full(10, 0.01, np.float32)
        probs[3], probs[5] = p3[i], 0.4
        rgb = np.full((90, 160, 3), 40 + 4 * i, np.uint8)
        collector.add(_Frame(i, rgb), probs, np.array([5, 3, 5]), np.stack([right, left, right]), np.array([0.5, 0.9, 0.5]))
    path = write_review(tmp_path / "synthetic.review.html", collector, _Labels(), source).path
    return path, p3


def _open(page, path):
    page.goto(path.as_uri())
    page.wait_for_function("() => window.streamcamReview && document.querySelector('[data-testid=frame-index]').textContent !== ''")


def _frame_index(page) -> int:
    return int(page.inner_text('[data-testid="frame-index"]'))


def _wait_index(page, value: int):
    page.wait_for_function(f"() => document.querySelector('[data-testid=frame-index]').textContent === '{value}'")


def test_page_is_offline_and_responds_to_keys_classes_and_timeline(browser_page, tmp_path):
    page = browser_page
    path, p3 = synthetic_page(tmp_path)
    _open(page, path)
    assert _frame_index(page) == 0
    page.wait_for_timeout(100)
    before = page.evaluate(_CANVAS_SUM)

    page.keyboard.press("ArrowRight")
    _wait_index(page, 1)
    page.wait_for_timeout(100)
    assert page.evaluate(_CANVAS_SUM) != before
    page.keyboard.press("Shift+ArrowRight")
    _wait_index(page, 11)

    # class 3 (top-left map) then class 5 (bottom-right map): the heatmap moves
    page.select_option('[data-testid="class-select"]', "3")
    page.wait_for_function("() => document.querySelector('[data-testid=frame-canvas]').dataset.camClass === '3'")
    with_3 = page.evaluate(_CANVAS_SUM)
    page.select_option('[data-testid="class-select"]', "5")
    page.wait_for_function("() => document.querySelector('[data-testid=frame-canvas]').dataset.camClass === '5'")
    assert page.evaluate(_CANVAS_SUM) != with_3

    # the peaks the page marks are Python's
    page.select_option('[data-testid="class-select"]', "3")
    expected = find_peaks(p3.astype(np.float16).astype(np.float32))
    assert expected == [10, 30]
    assert page.evaluate("() => window.streamcamReview.peaks['3']") == expected
    assert page.evaluate("() => window.streamcamReview.markedPeaks()") == expected
    page.keyboard.press("Home")
    _wait_index(page, 0)
    page.keyboard.press("k")
    _wait_index(page, 10)
    page.keyboard.press("k")
    _wait_index(page, 30)
    page.keyboard.press("j")
    _wait_index(page, 10)

    # clicking near the right end of the timeline seeks later
    box = page.locator('[data-testid="timeline"] .u-over').bounding_box()
    page.mouse.click(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    page.wait_for_function("() => Number(document.querySelector('[data-testid=frame-index]').textContent) >= 35")
    page.keyboard.press("End")
    _wait_index(page, 39)

    assert page.console_errors == []
    assert page.external_requests == []


def test_variable_rate_clip_shows_each_frames_own_time(browser_page, default_engine, tmp_path):
    clip = tmp_path / "vfr.mp4"
    times = make_video(clip, 10, size=(96, 64), vfr_durations=[0.04, 0.1, 0.02])
    analyze(clip, default_engine, AnalyzeOptions(out_dir=tmp_path, video=False, review=True))
    page = browser_page
    _open(page, tmp_path / "vfr.review.html")
    shown = []
    for i in range(len(times)):
        _wait_index(page, i)
        shown.append((page.inner_text('[data-testid="time-code"]'), float(page.get_attribute('[data-testid="time-code"]', "data-seconds"))))
        page.keyboard.press("ArrowRight")
    assert [s[0] for s in shown] == [format_timecode(t) for t in times]
    assert [s[1] for s in shown] == [round(t, 6) for t in times]
    assert page.evaluate("() => document.querySelectorAll('[data-testid=top-table] tbody tr').length") == 5
    assert page.console_errors == [] and page.external_requests == []


def test_trust_strip_marks_low_trust_frames_and_seeks(browser_page, tmp_path):
    """Faithfulness scores on every 4th frame, two of them low: the strip shows them, the class
    line gives the score, and a click on the strip goes to that frame."""
    from streamcam.explain.trust.faithfulness import FAITH_LOW
    from streamcam.outputs.files import FrameTrust

    collector = ReviewCollector(tracked=[], top_n=3)
    cam = np.zeros((7, 7), np.float32)
    cam[2:5, 2:5] = 1
    low = {8, 20}
    for i in range(40):
        probs = np.full(10, 0.01, np.float32)
        probs[4] = 0.7
        scored = i % 4 == 0
        faith = np.array([0.005 if i in low else 0.25]) if scored else np.array([np.nan])
        trust = FrameTrust(None, [4], 0, float("nan"), None, faith, faith)
        collector.add(_Frame(i, np.full((90, 160, 3), 60, np.uint8)), probs, np.array([4]), cam[None], None, trust=trust)
    path = write_review(tmp_path / "trust.review.html", collector, _Labels(), "trust.mp4").path
    page = browser_page
    _open(page, path)
    assert page.is_visible('[data-testid="trust-strip"]')
    assert page.evaluate("window.streamcamReview.scoredFrames()") == list(range(0, 40, 4))
    assert page.evaluate("window.streamcamReview.lowTrustFrames()") == sorted(low)
    assert page.evaluate("window.streamcamReview.data.faith_low") == FAITH_LOW
    assert "faith 0.250" in page.inner_text("#class-info")
    strip = page.locator('[data-testid="trust-strip"]')
    box = strip.bounding_box()
    strip.click(position={"x": box["width"] * (20.5 / 40), "y": box["height"] / 2})  # scrolled into view first
    _wait_index(page, 20)
    assert page.inner_text('[data-testid="faith"]') == "faith 0.005"
    assert page.get_attribute('[data-testid="faith"]', "class") == "low"
    colour = page.evaluate(
        """() => { const c = document.querySelector('[data-testid="trust-strip"]');
                 const x = Math.floor(c.width * 8.5 / 40); return Array.from(c.getContext('2d').getImageData(x, c.height / 2, 1, 1).data); }"""
    )
    assert colour[0] > 200 and colour[1] < 120  # the low frame's cell is red
    page.screenshot(path=str(tmp_path / "trust_strip.png"))
    assert page.console_errors == [] and page.external_requests == []


def test_a_page_without_scores_has_no_trust_strip(browser_page, tmp_path):
    path, _ = synthetic_page(tmp_path)
    _open(browser_page, path)
    assert not browser_page.is_visible('[data-testid="trust"]')


def test_heat_follows_the_evidence_and_can_be_switched_off(browser_page, tmp_path):
    """A class with plocal 0.02 draws nothing (the canvas is the original frame) until 'heat by
    evidence' is unchecked; a class with plocal 0.9 is drawn either way."""
    collector = ReviewCollector(tracked=[3, 5], top_n=3)
    cam = np.zeros((7, 7), np.float32)
    cam[2:5, 2:5] = 1
    for i in range(4):
        probs = np.full(10, 0.01, np.float32)
        probs[3], probs[5] = 0.6, 0.02
        rgb = np.random.default_rng(i).integers(0, 255, (90, 160, 3), dtype=np.uint8)
        collector.add(_Frame(i, rgb), probs, np.array([3, 3, 5]), np.stack([cam, cam, cam]), np.array([0.9, 0.9, 0.02]))
    path = write_review(tmp_path / "evidence.review.html", collector, _Labels(), "evidence.mp4").path
    page = browser_page
    _open(page, path)

    def canvas(original: bool) -> int:
        if page.is_checked("#original") != original:
            page.click("#original")
        page.wait_for_timeout(100)
        return page.evaluate(_CANVAS_SUM)

    page.select_option('[data-testid="class-select"]', "5")
    page.wait_for_timeout(100)
    assert canvas(True) == canvas(False)  # nothing drawn for the absent class
    assert "below 0.1" in page.inner_text("#class-info")
    page.click('[data-testid="evidence"]')  # the old look: stretched to full colour
    assert canvas(False) != canvas(True)
    page.click('[data-testid="evidence"]')
    page.select_option('[data-testid="class-select"]', "3")
    assert canvas(False) != canvas(True)  # a present class is drawn
    assert page.console_errors == []


def question_page(tmp_path, around: float | None = 1.0):
    """60 frames at 1280x720 (25 fps): named class 3 stays below p 0.07 while its plocal spikes at
    frames 15 and 45; class 5 is flat (no peaks anywhere)."""
    collector = ReviewCollector(tracked=[3, 5], top_n=3)
    t = np.arange(60)
    plocal3 = 0.05 + 0.74 * np.exp(-(((t - 15) / 2.0) ** 2)) + 0.6 * np.exp(-(((t - 45) / 2.0) ** 2))
    cam = np.zeros((7, 7), np.float32)
    cam[2:5, 2:5] = 1
    for i in range(60):
        probs = np.full(10, 0.01, np.float32)
        probs[3], probs[5], probs[7] = 0.04 + 0.02 * (i % 2), 0.3, 0.5
        rgb = np.full((720, 1280, 3), 60, np.uint8)
        collector.add(_Frame(i, rgb), probs, np.array([7, 3, 5]), np.stack([cam] * 3), np.array([0.6, plocal3[i], 0.3]))
    return write_review(tmp_path / "question.review.html", collector, _Labels(), "question.mp4", around=around).path


def test_the_page_follows_the_question(browser_page, tmp_path):
    """Peaks on the curve shown (plocal of a named class whose p stays low), a note where a view has
    none, shortcuts right after a control is used, the --around frame opened and marked, the chart's
    legend on a 1400x900 screen, and class entries that fit their box."""
    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 900})
    _open(page, question_page(tmp_path, around=1.0))
    assert _frame_index(page) == 25 and page.evaluate("() => window.streamcamReview.aroundPos") == 25  # --around 1.0 s

    # the legend (which line is p, which plocal) is on screen without scrolling
    legend = page.locator("#timeline .u-legend").bounding_box()
    assert legend["y"] + legend["height"] <= 900, legend

    # no entry of the class list is cut off: each text fits the select's box (less its arrow)
    widths = page.evaluate("""() => {
      const s = document.querySelector('[data-testid=class-select]'), c = document.createElement('canvas').getContext('2d');
      c.font = getComputedStyle(s).font;
      return { box: s.clientWidth, texts: [...s.options].map((o) => c.measureText(o.text).width) };
    }""")
    assert max(widths["texts"]) <= widths["box"] - 24, widths

    # a named class with p below 0.07: its peaks are on plocal; the select keeps no focus
    page.focus('[data-testid="class-select"]')
    page.select_option('[data-testid="class-select"]', "3")
    page.wait_for_function("() => window.streamcamReview.state.cls === '3'")
    assert page.evaluate("() => window.streamcamReview.markedPeaks()") == [15, 45]
    assert page.evaluate("() => document.activeElement.tagName") == "BODY"
    page.keyboard.press("k")  # straight after the select: the shortcut works
    _wait_index(page, 45)
    page.keyboard.press("j")
    _wait_index(page, 15)
    assert page.is_hidden('[data-testid="peak-note"]')

    # a flat class: no peaks, and the page says so (J/K too)
    page.select_option('[data-testid="class-select"]', "5")
    page.wait_for_function("() => window.streamcamReview.state.cls === '5'")
    assert page.evaluate("() => window.streamcamReview.markedPeaks()") == []
    assert "no peaks" in page.inner_text('[data-testid="peak-note"]')
    page.keyboard.press("k")
    assert _frame_index(page) == 15 and "no peaks" in page.inner_text('[data-testid="peak-note"]')

    # a checkbox and a button leave the focus on the page too
    page.click("#original")
    page.click("#next")
    assert page.evaluate("() => document.activeElement.tagName") == "BODY"
    page.keyboard.press("ArrowRight")
    _wait_index(page, 17)
    page.screenshot(path=str(tmp_path / "question.png"))
    assert page.console_errors == [] and page.external_requests == []


def test_the_default_view_has_peaks_on_the_top1_curve(browser_page, tmp_path):
    path, _ = synthetic_page(tmp_path)  # top-1 p: class 3's bumps at 10 and 30 above class 5's flat 0.4
    page = browser_page
    _open(page, path)
    assert page.evaluate("() => window.streamcamReview.markedPeaks()") == [10, 30]
    page.keyboard.press("k")
    _wait_index(page, 10)


HOSTILE_NAMES = [
    "<!--<script>.mp4",  # the HTML parser's escaped-script state would swallow the scripts after it
    "cams/</script><script>document.title='owned'</script>.mp4",  # a URL path may hold what a file name cannot
    "{{DATA}}.mp4",  # a placeholder filled again would put the JSON into <title>
    'it\'s "quoted" & <b>bold</b>.mp4',
    os.fsdecode(b"caf\xe9 \xff.mp4"),  # bytes that are not UTF-8, as Python keeps them
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=["comment-script", "end-script", "placeholder", "quotes", "not-utf8"])
def test_hostile_file_names_are_shown_as_text_and_break_nothing(browser_page, tmp_path, name):
    page = browser_page
    path, _ = synthetic_page(tmp_path, source=name, n=6)
    html = path.read_text(encoding="utf-8")
    data = html.split('id="review-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data and "&" not in data  # escaped as \u003c \u003e \u0026
    _open(page, path)
    shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    assert page.title() == f"streamcam review: {Path(shown).name}"
    assert page.inner_text("#title").startswith(f"{shown}: 6 frames")
    assert page.evaluate("document.scripts.length") == 3 and page.evaluate("typeof uPlot") == "function"
    page.keyboard.press("ArrowRight")
    _wait_index(page, 1)
    assert not page.console_errors and not page.external_requests


def test_analyze_review_of_a_file_with_a_hostile_name(browser_page, default_engine, tmp_path):
    src = tmp_path / os.fsdecode(b"<!--<script> {{DATA}} \xff.mp4")
    make_video(src, 4, size=(96, 64))
    summary = analyze(str(src), default_engine, AnalyzeOptions(out_dir=tmp_path / "out", video=False, review=True))
    page = browser_page
    _open(page, Path(summary.outputs["review"]))
    assert page.title() == "streamcam review: <!--<script> {{DATA}} \ufffd.mp4"
    assert page.evaluate("document.scripts.length") == 3 and not page.console_errors
