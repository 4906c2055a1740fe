"""`streamcam review`: frame-by-frame incident review in one self-contained offline HTML page."""

from .collect import ReviewCollector
from .page import write_review
from .peaks import find_peaks

__all__ = ["ReviewCollector", "find_peaks", "write_review"]
