"""Which decoded frames a VideoSource keeps (every Nth, or on an fps grid) and their numbers in the source.

Pure bookkeeping on timestamps, kept apart from the decoding in source.py.
"""

from __future__ import annotations

import math
import sys

from streamcam.core.errors import UsageError

_EPS = 1e-6  # seconds; absorbs float error when comparing timestamps to instants


def variable_rate(stream) -> bool:
    """The header's average rate and FFmpeg's base rate (r_frame_rate) disagree: frame times vary."""
    avg, base = stream.average_rate, stream.base_rate
    return bool(avg and base and abs(float(avg) / float(base) - 1) > 0.01)


class FrameNumbers:
    """Each frame's number in the source, counted from the file's first frame.

    While every frame since the first was decoded, a count (exact, variable rate too).
    After a seek, or once packets were lost, round((t - t_first) * fps): exact on a
    constant-rate grid, an estimate (`estimated`) for variable-rate files or times off
    the grid; a variable-rate file that lost packets keeps counting, also an estimate.
    Numbers always increase, whatever the timestamps do.
    """

    def __init__(self, t_first: float, fps: float | None, variable: bool):
        self.t_first, self.fps, self.variable = t_first, fps, variable
        self.count, self.last, self.estimated = -1, -1, False

    def number(self, t: float, by_time: bool, lost: bool) -> int:
        self.count += 1
        if by_time or (lost and not self.variable and self.fps):
            x = (t - self.t_first) * (self.fps or 25.0)
            n = round(x)
            self.estimated |= self.variable or not self.fps or abs(x - n) > 0.25
        else:
            n = self.count
            self.estimated |= lost  # frames lost from a variable-rate file: the count may be short
        if n <= self.last:
            n, self.estimated = self.last + 1, True
        self.last = n
        return n


def check_sampling(start, end, every, fps) -> None:
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise UsageError(f"every must be a whole number >= 1, got {every!r}")
    if fps is not None and every != 1:
        raise UsageError("use either every=N or fps=F, not both")
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise UsageError(f"fps must be a positive number, got {fps!r}")
    if start is not None and start < 0:
        raise UsageError(f"start must be >= 0 seconds, got {start!r}")
    if start is not None and end is not None and end <= start:
        raise UsageError(f"end ({end:g}s) must be after start ({start:g}s)")


def sampler(every: int, fps: float | None, origin: float | None):
    """A predicate keep(time_s) for the frames that survive sampling."""
    if fps is not None:
        return _RateSampler(fps, origin).keep
    count = iter(range(sys.maxsize))
    return lambda _t: next(count) % every == 0


class _RateSampler:
    """Keeps the first frame at or after each instant of an fps grid anchored at `origin`."""

    def __init__(self, fps: float, origin: float | None):
        self.period, self.origin, self.next = 1.0 / fps, origin, None

    def keep(self, t: float) -> bool:
        if self.origin is None:
            self.origin = t
        if self.next is not None and t < self.next - _EPS:
            return False
        # Next grid instant strictly after t: no bursts after gaps, no drift.
        self.next = self.origin + (math.floor((t - self.origin) / self.period + _EPS) + 1) * self.period
        return True
