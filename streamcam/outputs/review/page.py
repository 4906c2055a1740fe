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

from streamcam.explain.trust.faithfulness import FAITH_LOW
from streamcam.outputs.files import write_bytes_atomic
from streamcam.outputs.render import COLORMAPS, EVIDENCE_FADE, EVIDENCE_FULL
from streamcam.video.timecode import format_timecode

from .collect import ReviewCollector, ReviewFrame, encode_jpeg
from .peaks import DEFAULT_PROMINENCE, find_peaks

PAGE_COLORMAPS = ("jet", "turbo", "inferno", "viridis")
# Shrinking steps when over --max-mb: (max width, JPEG quality); frames are dropped only after these.
SHRINK_STEPS = ((960, 70), (640, 60), (480, 50))
PEAK_NEIGHBOURS = 2  # frames kept on each side of a peak when thinning
OVERHEAD_PER_FRAME = 200  # JSON keys, numbers, top-n
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


def _selector_classes(collector: ReviewCollector, probs: np.ndarray) -> list[int]:
    top = [int(c) for c in np.argsort(-probs.max(axis=0), kind="stable")[: max(collector.top_n, 1)]][:WINDOW_CLASSES]
    return list(dict.fromkeys(collector.tracked + top))


def _frame_bytes(f: ReviewFrame) -> int:
    return 4 * len(f.jpeg) // 3 + sum(4 * g.size // 3 for g in f.cams.values()) + OVERHEAD_PER_FRAME


def _shrink(frames: list[ReviewFrame], budget: int, keep_always: set[int]) -> tuple[list[ReviewFrame], list[str]]:
    """JPEG size and quality first; then every k-th frame plus the frames near peaks."""
    notes: list[str] = []
    total = sum(_frame_bytes(f) for f in frames)
    if total <= budget:
        return frames, notes
    for width, quality in SHRINK_STEPS:
        for f in frames:
            rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            f.jpeg = encode_jpeg(rgb, width, quality)
        total = sum(_frame_bytes(f) for f in frames)
        notes.append(f"frames stored at most {width} px wide, JPEG quality {quality}")
        if total <= budget:
            return frames, notes[-1:]
    notes = notes[-1:]
    k = 2
    while True:
        kept = [f for n, f in enumerate(frames) if n % k == 0 or n in keep_always]
        if sum(_frame_bytes(f) for f in kept) <= budget or len(kept) <= len(keep_always) + 1:
            break
        k += 1
    notes.append(
        f"only every {k}th frame kept, plus the frames within {PEAK_NEIGHBOURS} of each peak ({len(kept)} of {len(frames)} frames)"
    )
    return kept, notes


def build_data(
    collector: ReviewCollector, labels, source: str, max_mb: float = 50.0, prominence: float = DEFAULT_PROMINENCE, heat: str = "evidence"
) -> tuple[dict, list[str]]:
    frames = collector.frames
    probs = np.stack([f.probabilities for f in frames]).astype(np.float32)
    classes = _selector_classes(collector, probs)
    peaks = {c: find_peaks(probs[:, c], prominence) for c in classes}
    near = {n for ps in peaks.values() for p in ps for n in range(max(0, p - PEAK_NEIGHBOURS), min(len(frames), p + PEAK_NEIGHBOURS + 1))}
    # What does not shrink: the scripts and styles, colour tables, the probability series.
    fixed = sum(len(_asset(n)) for n in ASSETS) + 4096 + 12 * len(frames) * (len(classes) + 2)
    kept, notes = _shrink(frames, int(max_mb * 1024 * 1024) - fixed, near)
    where = {id(f): n for n, f in enumerate(frames)}
    positions = [where[id(f)] for f in kept]
    kp = probs[positions]
    top_ids = np.argsort(-kp, axis=1, kind="stable")[:, : collector.top_n]
    data = {
        "source": source,
        "size": list(collector.size or (0, 0)),
        "notice": "; ".join(notes) or None,
        "prominence": prominence,
        "frames_analysed": len(frames),
        "frames": [
            {
                "i": f.index,
                "pts": f.pts,
                "t": round(f.time_s, 6),
                "tc": format_timecode(f.time_s),
                "img": _b64(f.jpeg),
                "top": [[int(c), round(float(kp[n, c]), 5)] for c in top_ids[n]],
                "cams": {str(c): [int(g.shape[0]), int(g.shape[1]), _b64(g.tobytes())] for c, g in f.cams.items()},
                "pl": {str(c): round(p, 5) for c, p in f.plocal.items()},
                "fa": {str(c): round(v, 4) for c, v in f.faith.items()},
            }
            for n, f in enumerate(kept)
        ],
        "classes": [
            {
                "id": c,
                "name": labels.name(c),
                "tracked": c in collector.tracked,
                "p": [round(float(v), 5) for v in kp[:, c]],
                "plocal": [f.plocal.get(c) for f in kept] if c in collector.tracked else None,
                "peaks": [frames[p].index for p in peaks[c]],
            }  # frame indices in the video
            for c in classes
        ],
        "names": {str(c): labels.name(int(c)) for c in np.unique(top_ids)},
        "colormaps": {name: _lut(name) for name in PAGE_COLORMAPS},
        "faith_low": FAITH_LOW,
        "evidence": {"fade": EVIDENCE_FADE, "full": EVIDENCE_FULL, "local": heat == "local"},
        "faith_scored": any(f.faith for f in frames),
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


def write_review(path: Path, collector: ReviewCollector, labels, source: str, max_mb: float = 50.0, heat: str = "evidence") -> ReviewResult:
    """Write the page under a temporary name, then rename; returns what went in and the warnings."""
    if not collector.frames:
        raise ValueError("no frames to review")
    data, notes = build_data(collector, labels, source, max_mb, heat=heat)
    html = render_html(data).encode("utf-8")
    path = write_bytes_atomic(path, html)
    warnings = [f"review page over --max-mb {max_mb:g}: {n}" for n in notes]
    return ReviewResult(path, len(data["frames"]), len(collector.frames), len(html), warnings)
