"""`streamcam live`: the overlay as frames arrive, in a window and/or a browser, optionally recorded.
An app: may import the other apps (analyze's options and summary) and every layer below.

reader.py keeps the newest frame and reconnects live sources; session.py runs the loop;
window.py and server.py are the two views; stats.py measures frame age and rates.
"""

from .reader import Backoff, LiveReader
from .session import STOP_WAIT_S, Viewer, is_live_source, live
from .stats import LiveStats
from .window import WindowViewer, has_display

__all__ = ["STOP_WAIT_S", "Backoff", "LiveReader", "LiveStats", "Viewer", "WindowViewer", "has_display", "is_live_source", "live"]
