"""Progress for frame-by-frame work: a rich bar with ETA on a terminal (a counter when the length is
unknown); elsewhere (a log file, a pipe, CI) a few plain lines, so nothing is cut mid-line.

Frames per second has one definition, shared with the run's summary: frames done divided by the
seconds since the analysis began (model loading excluded, the first call's tracing included), not
a recent-window rate; finish() puts the summary's own figure on the bar's last state.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

PLAIN_MARKS = (0.25, 0.5, 0.75)  # without a terminal: a line at these shares of a known length
PLAIN_EVERY_S = 60.0  # ... or, the length unknown, a line this often


def average_fps(frames: int, seconds: float) -> float:
    """The one definition of frames per second: frames over the seconds they took."""
    return frames / seconds if seconds > 0 else 0.0


class FrameProgress:
    def __init__(self, console: Console, enabled: bool = True):
        self.console = console
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = None
        self._plain: dict | None = None  # without a terminal: name, expected, done, began, next mark

    def status(self, text: str):
        return self.console.status(text) if self.enabled and self.console.is_terminal else contextlib.nullcontext()

    def track(self, items: list, description: str):
        """Iterate items with a bar on an interactive terminal when there are several."""
        from rich.progress import track

        show = self.enabled and self.console.is_terminal and len(items) > 1
        return track(items, description=description, console=self.console, transient=True) if show else items

    def start(self, info, expected: int | None) -> None:
        if not self.enabled:
            return
        name = Path(str(info.source)).name or str(info.source)
        if not self.console.is_terminal:
            self._plain = {
                "name": name,
                "expected": expected,
                "done": 0,
                "began": time.perf_counter(),
                "mark": 0,
                "last": time.perf_counter(),
            }
            return
        columns = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn() if expected else TextColumn("{task.completed} frames"),
            TextColumn("{task.fields[fps]} fps"),
            TimeElapsedColumn(),
        ]
        if expected:
            columns.append(TimeRemainingColumn())
        self._progress = Progress(*columns, console=self.console, transient=False)
        self._progress.start()
        self._task = self._progress.add_task(f"{name} {info.width}x{info.height}", total=expected, fps="-")

    def advance(self, frame) -> None:
        if self._plain is not None:
            self._plain_advance()
        elif self._progress is not None:
            task = self._progress.tasks[0]
            fps = average_fps(task.completed + 1, task.elapsed or 0.0)
            self._progress.update(self._task, advance=1, fps=f"{fps:.1f}" if fps else "-")

    def _plain_advance(self) -> None:
        state = self._plain
        state["done"] += 1
        now = time.perf_counter()
        if state["expected"]:
            due = state["mark"] < len(PLAIN_MARKS) and state["done"] >= PLAIN_MARKS[state["mark"]] * state["expected"]
        else:
            due = now - state["last"] >= PLAIN_EVERY_S
        if due:
            state["mark"] += 1
            state["last"] = now
            of = f"/{state['expected']}" if state["expected"] else ""
            fps = average_fps(state["done"], now - state["began"])
            self.console.print(f"{state['name']}: {state['done']}{of} frames, {fps:.1f} fps", soft_wrap=True, highlight=False)

    def finish(self, frames: int, fps: float) -> None:
        """The run's own figures (its summary) on the bar's last state, so the two agree."""
        if self._progress is not None:
            self._progress.update(self._task, completed=frames, fps=f"{fps:.1f}")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._plain = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class BatchProgress:
    """Two bars for a batch: videos done of all, and the frames of the video in hand."""

    def __init__(self, console: Console, total_videos: int, enabled: bool = True):
        self.console, self.enabled = console, enabled
        self._progress: Progress | None = None
        self._total = total_videos
        self._videos = self._frames = None

    def __enter__(self):
        if self.enabled and self.console.is_terminal:  # elsewhere: one plain line per video (video_done)
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"),
                TimeElapsedColumn(),
                console=self.console,
            )
            self._progress.start()
            self._videos = self._progress.add_task("videos", total=self._total, note="")
        return self

    def start(self, info, expected: int | None) -> None:
        """analyze's on_start: a fresh frame bar for this video."""
        if self._progress is None:
            return
        if self._frames is not None:
            self._progress.remove_task(self._frames)
        name = Path(str(info.source)).name or str(info.source)
        self._frames = self._progress.add_task(f"  {name}", total=expected, note="frames")

    def advance(self, frame) -> None:
        if self._progress is not None and self._frames is not None:
            self._progress.update(self._frames, advance=1)

    def video_done(self, entry: dict) -> None:
        self._done = getattr(self, "_done", 0) + 1
        if self._progress is not None:
            self._progress.update(self._videos, advance=1, note=f"last: {entry['status']}")
        elif self.enabled:
            name = Path(str(entry.get("path", ""))).name
            self.console.print(f"videos {self._done}/{self._total}: {name} {entry['status']}", soft_wrap=True, highlight=False)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
