"""What a live session measures: frames shown and dropped, reconnects, frame age, rate, source state.

Frame age is the time from capture (the moment the reader had the decoded frame) to shown (the
overlay handed to the window and the browser view). The reader keeps only the newest frame, so
the age is one engine call plus at most one frame interval, whatever the engine's speed.

Thread-safe: the reader thread sets the source state, the live loop records frames, and the web
server reads snapshots. Memory is flat: a recent window for the live figures, and a fixed 1 ms
histogram for the whole session's percentiles.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

RECENT_FRAMES = 150  # the window of /stats.json's frame-age percentiles (10 s at 15 fps)
RATE_WINDOW_S = 2.0  # the window of /stats.json's fps
_HISTOGRAM_MS = 60_000  # ages above a minute land in the last bin

# source_state values
CONNECTING, PLAYING, STALLED, RECONNECTING, ENDED = "connecting", "playing", "stalled", "reconnecting", "ended"


def rate_text(snapshot: dict) -> str:
    """The rate for the picture's label strip: '-- fps' until two frames have been shown (one frame
    gives no rate, and '0.0 fps' would read as a stopped stream)."""
    return "-- fps" if snapshot["frames_shown"] < 2 else f"{snapshot['fps']:.1f} fps"


def _percentile_ms(counts: np.ndarray, q: float) -> float | None:
    total = int(counts.sum())
    if total == 0:
        return None
    return float(np.searchsorted(np.cumsum(counts), q * total, side="left"))


class LiveStats:
    """Counters and frame ages of one live session; snapshot() is the /stats.json body."""

    def __init__(self, stall_after_s: float = 2.0, clock=time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self._stall_after = stall_after_s  # no frame for this long while playing: 'stalled'
        self.began = clock()
        self.frames_shown = 0
        self.frames_dropped = 0
        self.reconnects = 0
        self._state = CONNECTING
        self._last_frame_at: float | None = None
        self._recent_ages: deque[float] = deque(maxlen=RECENT_FRAMES)
        self._shown_at: deque[float] = deque()
        self._ages_ms = np.zeros(_HISTOGRAM_MS + 1, dtype=np.int64)
        self._top: list[dict] = []
        self._time_s: float | None = None

    # -- writers ---------------------------------------------------------------------------------
    def start(self) -> None:
        """The session begins now (after the model loaded and traced): the clock of wall time and fps."""
        with self._lock:
            self.began = self._clock()

    def set_state(self, state: str) -> None:
        with self._lock:
            self._state = state

    def frame_received(self, dropped_before: bool) -> None:
        """The reader has a new frame; dropped_before: it replaced one that was never shown."""
        with self._lock:
            self._last_frame_at = self._clock()
            self.frames_dropped += dropped_before
            if self._state != ENDED:
                self._state = PLAYING

    def reconnected(self) -> None:
        with self._lock:
            self.reconnects += 1

    def frame_shown(self, captured_at: float, top: list[dict] | None = None, time_s: float | None = None) -> float:
        """Record one shown frame (captured_at: the clock when the reader had it); returns its age in s."""
        with self._lock:
            now = self._clock()
            age = max(0.0, now - captured_at)
            self.frames_shown += 1
            self._recent_ages.append(age)
            self._ages_ms[min(int(age * 1000), _HISTOGRAM_MS)] += 1
            self._shown_at.append(now)
            while self._shown_at and self._shown_at[0] < now - RATE_WINDOW_S:
                self._shown_at.popleft()
            if top is not None:
                self._top = top
            self._time_s = time_s
            return age

    # -- readers ---------------------------------------------------------------------------------
    def source_state(self) -> str:
        with self._lock:
            return self._state_locked(self._clock())

    def _state_locked(self, now: float) -> str:
        if self._state == PLAYING and self._last_frame_at is not None and now - self._last_frame_at > self._stall_after:
            return STALLED
        return self._state

    def snapshot(self) -> dict:
        """The live figures: recent frame ages and rate, totals, the state and the current top classes."""
        with self._lock:
            now = self._clock()
            ages = np.array(self._recent_ages) * 1000
            recent = [s for s in self._shown_at if s >= now - RATE_WINDOW_S]
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
            return {
                "frames_shown": self.frames_shown,
                "frames_dropped": self.frames_dropped,
                "reconnects": self.reconnects,
                "frame_age_ms_p50": round(float(np.percentile(ages, 50)), 1) if len(ages) else None,
                "frame_age_ms_p95": round(float(np.percentile(ages, 95)), 1) if len(ages) else None,
                "source_state": self._state_locked(now),
                "fps": round(fps, 2),
                "seconds_since_frame": None if self._last_frame_at is None else round(now - self._last_frame_at, 2),
                "time_s": None if self._time_s is None else round(self._time_s, 3),
                "top": self._top,
                "uptime_s": round(now - self.began, 1),
            }

    def totals(self) -> dict:
        """The whole session's figures, for the final summary (percentiles to the millisecond)."""
        with self._lock:
            wall = self._clock() - self.began
            return {
                "frames_shown": self.frames_shown,
                "frames_dropped": self.frames_dropped,
                "reconnects": self.reconnects,
                "frame_age_ms_p50": _percentile_ms(self._ages_ms, 0.50),
                "frame_age_ms_p95": _percentile_ms(self._ages_ms, 0.95),
                "wall_time_s": round(wall, 3),
                "frames_per_second": round(self.frames_shown / wall, 2) if wall > 0 else 0.0,
            }
