"""The review page: frame-by-frame incident review in one self-contained offline HTML page
(collected during a run, written at its end; the `review` command is streamcam.apps.review).

Part of streamcam.outputs: may import streamcam.video and streamcam.core.
"""

from streamcam.outputs.peaks import find_peaks

from .collect import ReviewCollector
from .page import write_review

__all__ = ["ReviewCollector", "find_peaks", "write_review"]
