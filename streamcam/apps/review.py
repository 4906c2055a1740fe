"""`streamcam review`: a window of a video analysed at the full frame rate into one offline HTML
page (streamcam.outputs.review), with the CSV and summary beside it; run through analyze."""

from __future__ import annotations

from pathlib import Path

from streamcam.core.errors import UsageError
from streamcam.explain.trust.smoothing import DEFAULT_SMOOTH_S
from streamcam.video.timecode import parse_timecode

from .analyze import AnalyzeOptions

# Review scores the maps' faithfulness by default (the page's trust strip) on every 8th frame:
# each scored frame takes 24 removals through the model (12 for the map, 12 for its control); on
# the dashcam clip, scoring every frame took 16x a plain analyze's time, every 8th 2.9x.
REVIEW_FAITH_EVERY = 8


def review_window(start: str | None, end: str | None, around: str | None, span: float) -> tuple:
    """--around T --span S as --start/--end (the window centred on T); else start and end as given."""
    if around is None:
        return start, end
    if start is not None or end is not None:
        raise UsageError("give either --around/--span or --start/--end, not both")
    centre = parse_timecode(around)
    return str(max(0.0, centre - span / 2)), str(centre + span / 2)


def review_options(
    start: str | None = None,
    end: str | None = None,
    around: str | None = None,
    span: float = 10.0,
    top_n: int = 5,
    classes: str | None = None,
    out_dir: Path | None = None,
    max_mb: float = 50.0,
    batch_size: int = 8,
    input_size: str = "224x224",
    smooth: float = DEFAULT_SMOOTH_S,
    faithfulness_every: int | None = REVIEW_FAITH_EVERY,
) -> AnalyzeOptions:
    """analyze's options for a review page: top-1 explained (plus `classes` on every frame), no video."""
    start, end = review_window(start, end, around, span)
    return AnalyzeOptions(
        top_n=top_n,
        cam_classes="top1" + (f",{classes}" if classes else ""),
        batch_size=batch_size,
        start=start,
        end=end,
        out_dir=out_dir,
        video=False,
        input_size=input_size,
        review=True,
        review_max_mb=max_mb,
        smooth=smooth,
        faithfulness_every=faithfulness_every,
        review_around=around,
    )
