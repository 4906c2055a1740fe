"""A rich progress bar for frame-by-frame work: bar and ETA when the length is known, a counter otherwise."""

from __future__ import annotations

import contextlib
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class FrameProgress:
    def __init__(self, console: Console, enabled: bool = True):
        self.console = console
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = None

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
        name = Path(str(info.source)).name or str(info.source)
        self._task = self._progress.add_task(f"{name} {info.width}x{info.height}", total=expected, fps="-")

    def advance(self, frame) -> None:
        if self._progress is not None:
            task = self._progress.tasks[0]
            speed = task.speed
            self._progress.update(self._task, advance=1, fps=f"{speed:.1f}" if speed else "-")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
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
        if self.enabled:
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
        if self._progress is not None:
            self._progress.update(self._videos, advance=1, note=f"last: {entry['status']}")

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
