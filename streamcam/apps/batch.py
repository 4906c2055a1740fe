"""Many videos in one run: inputs expanded from files, folders and globs, one output folder per
video, and `<out-dir>/manifest.jsonl` recording each video as it finishes.

A re-run skips every video the manifest shows complete with its outputs present, and redoes the
rest. Locally the model is loaded once for all videos (run_local); batch_ray.py runs the same
per-video work on a Ray cluster. A failing video never stops the batch.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from streamcam.core.errors import StreamcamError, UsageError
from streamcam.core.redact import redact_source

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".flv", ".wmv", ".3gp", ".ogv"}
)
MANIFEST = "manifest.jsonl"
COMPLETE, FAILED, INTERRUPTED, SKIPPED = "complete", "failed", "interrupted", "skipped"


def expand_inputs(inputs: Sequence[str], recursive: bool = False) -> list[str]:
    """Files as given, folders searched for video files by extension (sub-folders with
    `recursive`), globs expanded; URLs and camera numbers pass through. Sorted within each input,
    duplicates dropped, order of the inputs kept."""
    found: list[str] = []
    for item in inputs:
        path = Path(item)
        if "://" in item or item.isdigit():
            found.append(item)
        elif path.is_dir():
            pattern = "**/*" if recursive else "*"
            videos = sorted(str(p) for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
            if not videos:
                raise UsageError(f"no video files in {item}" + ("" if recursive else " (use --recursive for sub-folders)"))
            found += videos
        elif glob.has_magic(item):
            matches = sorted(p for p in glob.glob(item, recursive=recursive) if Path(p).is_file())
            if not matches:
                raise UsageError(f"no files match {item}")
            found += matches
        else:
            found.append(item)  # a file (checked when it is opened, so a missing one fails alone)
    return list(dict.fromkeys(found))


def output_folders(videos: Sequence[str], out_dir: Path) -> dict[str, Path]:
    """A sub-folder of out_dir per video: its path relative to the videos' common folder, without
    the extension, so a/clip.mp4 and b/clip.mp4 cannot collide (a/clip and b/clip)."""
    local = [os.path.abspath(v) for v in videos if "://" not in v and not v.isdigit()]
    base = os.path.commonpath([os.path.dirname(p) for p in local]) if local else ""
    folders = {}
    for video in videos:
        if "://" in video or video.isdigit():
            from streamcam.outputs.run_sinks import output_stem

            rel = Path("streams") / output_stem(video)
        else:
            rel = Path(os.path.relpath(os.path.abspath(video), base)).with_suffix("")
        folders[video] = Path(out_dir) / rel
    return folders


class Manifest:
    """`<out-dir>/manifest.jsonl`: one JSON line per finished video, appended and flushed as each
    finishes. A URL is kept without its credentials (core.redact), and looked up the same way. Reading keeps the last line per path and ignores a line cut off by a killed run."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / MANIFEST
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            text = self.path.read_text(encoding="utf-8", errors="replace")
            for line in text.splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut off mid-write: that video is redone
                if isinstance(entry, dict) and "path" in entry:
                    self.entries[entry["path"]] = entry
            if text and not text.endswith("\n"):  # start the next line cleanly after a cut-off one
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write("\n")

    def done(self, video: str) -> bool:
        """Complete in an earlier run, and every output it listed still there."""
        entry = self.entries.get(redact_source(video))  # a skip line repeats the complete entry it skipped for
        return bool(
            entry and entry.get("status") in (COMPLETE, SKIPPED) and all(Path(p).exists() for p in _output_paths(entry.get("outputs", {})))
        )

    def record(self, entry: dict) -> None:
        self.entries[entry["path"]] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _output_paths(outputs: dict) -> list[str]:
    paths = []
    for value in outputs.values():
        paths += value if isinstance(value, list) else [value]
    return paths


def analyze_one(video: str, engine, options, out_dir: Path, on_start=None, on_frame=None) -> dict:
    """Analyse one video of a batch into out_dir; returns its manifest entry (never raises for a
    bad video: a failure is an entry with status 'failed' and the error line)."""
    from .analyze import analyze

    began = time.perf_counter()
    entry = {"path": redact_source(video), "out_dir": str(out_dir)}
    try:
        summary = analyze(video, engine, replace(options, out_dir=out_dir), on_start=on_start, on_frame=on_frame)
    except StreamcamError as exc:
        summary = getattr(exc, "summary", None)
        entry.update(status=FAILED, error=str(exc))
        if summary is not None:
            entry.update(frames=summary.frames_analysed, outputs=summary.outputs)
    except KeyboardInterrupt:
        entry.update(status=INTERRUPTED, error="interrupted before the first frame")
    except Exception as exc:  # anything else one video trips must not end the batch
        entry.update(status=FAILED, error=f"{type(exc).__name__}: {exc}")
    else:
        entry.update(
            status=INTERRUPTED if summary.status == "interrupted" else COMPLETE, frames=summary.frames_analysed, outputs=summary.outputs
        )
    entry["wall_time_s"] = round(time.perf_counter() - began, 3)
    entry.setdefault("frames", 0)
    entry.setdefault("outputs", {})
    return entry


def unfinished_entry(video: str, folder: Path, status: str, error: str) -> dict:
    """The manifest entry of a video that gave no result (not started, cut off, its worker died)."""
    return {
        "path": redact_source(video),
        "out_dir": str(folder),
        "status": status,
        "frames": 0,
        "outputs": {},
        "wall_time_s": 0.0,
        "error": error,
    }


def plan(videos: Sequence[str], out_dir: Path, manifest: Manifest) -> tuple[list[tuple[str, Path]], list[dict]]:
    """(videos to run with their folders, skipped entries) for this run."""
    folders = output_folders(videos, out_dir)
    todo, skipped = [], []
    for video in videos:
        if manifest.done(video):
            skipped.append({**manifest.entries[redact_source(video)], "status": SKIPPED, "wall_time_s": 0.0})
        else:
            todo.append((video, folders[video]))
    return todo, skipped


def run_local(
    videos: Sequence[str],
    engine,
    options,
    out_dir: Path,
    manifest: Manifest,
    on_video: Callable[[dict], None] | None = None,
    on_start=None,
    on_frame=None,
) -> list[dict]:
    """Every video in this process, one model for all; returns the entries (skipped ones too).

    A Ctrl-C during a video ends it like `analyze` does (its outputs finished, status
    'interrupted'); the videos not started are recorded 'interrupted' too, and the run stops.
    """
    todo, entries = plan(videos, out_dir, manifest)
    for entry in entries:
        manifest.record(entry)
        if on_video:
            on_video(entry)
    stopping = False
    for video, folder in todo:
        if stopping:
            entry = unfinished_entry(video, folder, INTERRUPTED, "not started: the batch was interrupted")
        else:
            entry = analyze_one(video, engine, options, folder, on_start, on_frame)
            stopping = entry["status"] == INTERRUPTED
        manifest.record(entry)
        entries.append(entry)
        if on_video:
            on_video(entry)
    return entries


def exit_code(entries: Iterable[dict]) -> int:
    """0 when every video completed or was skipped, 1 when any failed, 130 when interrupted."""
    statuses = {e["status"] for e in entries}
    if FAILED in statuses:
        return 1
    if INTERRUPTED in statuses:
        return 130
    return 0
