"""The review page: one HTML file with the frames, CAM grids, uPlot and the viewer script inline.

Nothing is fetched when it opens (no CDN, no fonts), so it works offline and can be mailed.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import cv2
import numpy as np

from streamcam.core.ranking import ranking
from streamcam.explain.trust.faithfulness import FAITH_LOW
from streamcam.outputs.files import write_bytes_atomic
from streamcam.outputs.peaks import curve_prominence, find_peaks
from streamcam.outputs.render import COLORMAPS, EVIDENCE_FADE, EVIDENCE_FULL
from streamcam.video.timecode import format_timecode

from .collect import ReviewCollector, encode_jpeg

PAGE_COLORMAPS = ("jet", "turbo", "inferno", "viridis")
# Shrinking steps when over --max-mb: (max width, JPEG quality); frames are dropped only after these.
SHRINK_STEPS = ((960, 70), (640, 60), (480, 50))
PEAK_NEIGHBOURS = 2  # frames kept on each side of a peak when thinning
WINDOW_CLASSES = 8
ASSETS = (
    "template.html",
    "review.js",
    "review.css",
    "vendor/uPlot.iife.min.js",
    "vendor/uPlot.min.css",
)  # at most this many of the window's top classes in the selector


@dataclass
class ReviewResult:
    path: Path
    frames: int  # frames in the page
    frames_analysed: int
    size_bytes: int
    warnings: list


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _lut(name: str) -> str:
    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], COLORMAPS[name])
    return _b64(np.ascontiguousarray(bgr[:, 0, ::-1]).tobytes())  # 256 RGB triples, as render uses


def _selector_classes(collector: ReviewCollector, labels) -> list[int]:
    top = ranking(labels.model_part(collector.max_probabilities), n=min(max(collector.top_n, 1), WINDOW_CLASSES))
    return list(dict.fromkeys(collector.tracked + top))


def _reencode(collector: ReviewCollector, width: int, quality: int) -> None:
    """Every frame's JPEG at most `width` wide at `quality`, one frame in memory at a time."""
    for n in range(len(collector)):
        f = collector.frame(n)
        rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        f.jpeg = encode_jpeg(rgb, width, quality)
        collector.replace(n, f)


def _shrink(collector: ReviewCollector, budget: int, keep_always: set[int]) -> tuple[list[int], list[str]]:
    """The frame numbers to keep, and notes: JPEG size and quality first; then every k-th frame
    plus the frames near peaks."""
    n_frames = len(collector)
    everything = list(range(n_frames))
    notes: list[str] = []

    def total(kept) -> int:
        return sum(collector.cost(n) for n in kept)

    if total(everything) <= budget:
        return everything, notes
    for width, quality in SHRINK_STEPS:
        _reencode(collector, width, quality)
        notes.append(f"frames stored at most {width} px wide, JPEG quality {quality}")
        if total(everything) <= budget:
            return everything, notes[-1:]
    notes = notes[-1:]
    k = 2
    while True:
        kept = [n for n in everything if n % k == 0 or n in keep_always]
        if total(kept) <= budget or len(kept) <= len(keep_always) + 1:
            break
        k += 1
    notes.append(f"only every {k}th frame kept, plus the frames within {PEAK_NEIGHBOURS} of each peak ({len(kept)} of {n_frames} frames)")
    return kept, notes


def _read_probabilities(
    collector: ReviewCollector, classes: list[int], kept: list[int], model_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """(every frame's probability of each of `classes` (frames, len(classes)), every frame's top-1
    probability (frames,) among the model's classes (the first model_classes columns; a named
    group's after them is not one), each kept frame's whole probability row), read back in chunks."""
    series = np.empty((len(collector), len(classes)), np.float32)
    top1 = np.empty(len(collector), np.float32)
    wanted, rows = set(kept), {}
    for start, block in collector.probability_rows():
        series[start : start + len(block)] = block[:, classes]
        top1[start : start + len(block)] = block[:, :model_classes].max(axis=1)
        rows |= {start + i: block[i] for i in range(len(block)) if start + i in wanted}
    return series, top1, rows


def _curve_peaks(series) -> list[int]:
    """Peaks of a curve as the page shows it, each standing out by a share of that curve's range."""
    return find_peaks(series, curve_prominence(series))


def build_data(
    collector: ReviewCollector, labels, source: str, max_mb: float = 50.0, heat: str = "evidence", around: float | None = None
) -> tuple[dict, list[str]]:
    """The page's data. Peaks are found on each curve the timeline draws for a class (p, and plocal
    for a named class), and for the default view on the top-1 curve. around: the moment the page
    opens on (review --around), in seconds."""
    n_frames = len(collector)
    classes = _selector_classes(collector, labels)
    series, top1, _ = _read_probabilities(collector, classes, [], labels.num_classes)
    curve_peaks = {c: {"p": _curve_peaks(series[:, j])} for j, c in enumerate(classes)}
    for j, c in enumerate(classes):
        if c in collector.tracked:
            plocal_curve = collector.plocal_series(c)
            curve_peaks[c]["plocal"] = _curve_peaks(np.where(np.isfinite(plocal_curve), plocal_curve, series[:, j]))
    peaks = {c: sorted({p for ps in curves.values() for p in ps}) for c, curves in curve_peaks.items()}
    top1_peaks = _curve_peaks(top1)
    every_peak = [p for ps in peaks.values() for p in ps] + top1_peaks
    near = {n for p in every_peak for n in range(max(0, p - PEAK_NEIGHBOURS), min(n_frames, p + PEAK_NEIGHBOURS + 1))}
    # What does not shrink: the scripts and styles, colour tables, the probability series.
    fixed = sum(len(_asset(n)) for n in ASSETS) + 4096 + 12 * n_frames * (len(classes) + 2)
    kept, notes = _shrink(collector, int(max_mb * 1024 * 1024) - fixed, near)
    _, _, rows = _read_probabilities(collector, [], kept)
    frames, top_seen = [], set()
    plocal = {c: [] for c in classes if c in collector.tracked}
    for n in kept:  # one frame at a time from the spill file: only the page's share is in memory
        f, p = collector.frame(n), rows[n]
        top = ranking(labels.model_part(p), n=collector.top_n)
        top_seen.update(top)
        for c in plocal:
            plocal[c].append(f.plocal.get(c))
        frames.append(
            {
                "i": f.index,
                "pts": f.pts,
                "t": round(f.time_s, 6),
                "tc": format_timecode(f.time_s),
                "img": _b64(f.jpeg),
                "top": [[c, round(float(p[c]), 5)] for c in top],
                "cams": {str(c): [int(g.shape[0]), int(g.shape[1]), _b64(g.tobytes())] for c, g in f.cams.items()},
                "pl": {str(c): round(v, 5) for c, v in f.plocal.items()},
                "fa": {str(c): round(v, 4) for c, v in f.faith.items()},
            }
        )
    indices = {n: collector.frame(n).index for n in every_peak}
    data = {
        "source": source,
        "size": list(collector.size or (0, 0)),
        "notice": "; ".join(notes) or None,
        "around": around,
        "top1_peaks": [indices[p] for p in top1_peaks],
        "frames_analysed": n_frames,
        "frames": frames,
        "classes": [
            {
                "id": c,
                "name": labels.name(c),
                "tracked": c in collector.tracked,
                "p": [round(float(v), 5) for v in series[kept, j]],
                "plocal": plocal.get(c),
                "peaks": [indices[p] for p in peaks[c]],  # frame indices in the video, of either curve
                "curve_peaks": {curve: [indices[p] for p in ps] for curve, ps in curve_peaks[c].items()},
            }
            for j, c in enumerate(classes)
        ],
        "names": {str(c): labels.name(int(c)) for c in sorted(top_seen)},
        "colormaps": {name: _lut(name) for name in PAGE_COLORMAPS},
        "faith_low": FAITH_LOW,
        "evidence": {"fade": EVIDENCE_FADE, "full": EVIDENCE_FULL, "local": heat == "local"},
        "faith_scored": collector.faith_scored,
    }
    return data, notes


def _asset(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


# Inside the inline JSON: '<', '>' and '&' as JSON escapes, so no file name (`</script>`,
# `<!--<script>`) can end the script element or switch the HTML parser into another state.
_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def shown_text(text: str) -> str:
    """A file name as the page shows it: bytes that are not UTF-8 (kept by Python as lone
    surrogates) become U+FFFD instead of failing the page's encoding."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def script_json(data: dict) -> str:
    """JSON that is safe inside <script type="application/json">."""
    return json.dumps(data, separators=(",", ":")).translate(_JSON_ESCAPES)


def render_html(data: dict) -> str:
    data = {**data, "source": shown_text(str(data["source"]))}
    title = f"streamcam review: {Path(data['source']).name}"
    parts = {
        "TITLE": title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
        "UPLOT_CSS": _asset("vendor/uPlot.min.css"),
        "REVIEW_CSS": _asset("review.css"),
        "UPLOT_JS": _asset("vendor/uPlot.iife.min.js"),
        "REVIEW_JS": _asset("review.js"),
        "DATA": script_json(data),
    }
    # One pass over the template: what goes in is never searched for placeholders again, so a
    # file named `{{DATA}}.mp4` stays a title.
    return _PLACEHOLDER.sub(lambda m: parts.get(m.group(1), m.group(0)), _asset("template.html"))


def write_review(
    path: Path, collector: ReviewCollector, labels, source: str, max_mb: float = 50.0, heat: str = "evidence", around: float | None = None
) -> ReviewResult:
    """Write the page under a temporary name, then rename; returns what went in and the warnings."""
    if not len(collector):
        raise ValueError("no frames to review")
    data, notes = build_data(collector, labels, source, max_mb, heat=heat, around=around)
    html = render_html(data).encode("utf-8")
    path = write_bytes_atomic(path, html)
    warnings = [f"review page over --max-mb {max_mb:g}: {n}" for n in notes]
    return ReviewResult(path, len(data["frames"]), len(collector), len(html), warnings)
