"""Human time values for --start/--end: "12.4", "00:31", "1:02:03.5" <-> seconds."""

from __future__ import annotations

import math
import re

from streamcam.core.errors import UsageError

# One to three colon-separated fields; only the last may have a fraction.
_TIMECODE = re.compile(r"^(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?|\.\d+)$")


def parse_timecode(text: str | float | int) -> float:
    """Return seconds for "SS[.f]", "MM:SS[.f]" or "HH:MM:SS[.f]".

    The first field may exceed 59 ("90", "75:00"); later fields may not.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if not math.isfinite(text) or text < 0:
            raise UsageError(f"invalid time {text!r}: expected a non-negative number of seconds")
        return float(text)
    raw = str(text).strip()
    match = _TIMECODE.match(raw)
    if not match:
        raise UsageError(f"invalid time {text!r}: expected seconds (12.4), MM:SS (00:31) or HH:MM:SS (1:02:03.5)")
    fields = [f for f in match.groups() if f is not None]
    head, *rest = fields
    seconds = float(head)
    for field in rest:
        value = float(field)
        if value >= 60:
            raise UsageError(f"invalid time {text!r}: minutes and seconds after a colon must be below 60")
        seconds = seconds * 60 + value
    return seconds


def format_timecode(seconds: float) -> str:
    """Format seconds as "mm:ss.mmm" (minutes grow past 59 rather than adding hours)."""
    millis = round(abs(seconds) * 1000)  # round once, so 59.9996 never prints as "00:60.000"
    minutes, millis = divmod(millis, 60_000)
    sign = "-" if seconds < 0 and millis + minutes else ""
    return f"{sign}{minutes:02d}:{millis // 1000:02d}.{millis % 1000:03d}"
