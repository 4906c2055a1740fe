"""Many videos in one run: inputs expanded from files, folders and globs, one output folder per
video, and `<out-dir>/manifest.jsonl` recording each video as it finishes.

Each manifest entry records the video's settings (input, options, model) and each output's size
and SHA-256. A re-run skips a video only when its entry is complete, its settings are this run's,
and every output is there, non-empty and unchanged; a video whose outputs are missing or damaged
is redone; one analysed with other settings is redone with --overwrite and refused without it.
Locally the model is loaded once for all videos (run_local); batch_ray.py runs the same per-video
work on a Ray cluster. A failing video never stops the batch.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from streamcam.core.ctrl_c import Presses, counting_ctrl_c
from streamcam.core.errors import StreamcamError, UsageError
from streamcam.core.paths import fsync_folder
from streamcam.core.redact import redact_source

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".flv", ".wmv", ".3gp", ".ogv"}
)
MANIFEST = "manifest.jsonl"
COMPLETE, FAILED, INTERRUPTED, SKIPPED = "complete", "failed", "interrupted", "skipped"


# Names streamcam gives its own outputs and temporary files: never taken as inputs of a folder or glob.
OWN_OUTPUT = re.compile(r"(\.(gradcam|heatmap|segmented)\.(mp4|webm)|\.partial\.[^.]+)$")


def expand_inputs(inputs: Sequence[str], recursive: bool = False, out_dir: Path | None = None) -> list[str]:
    """Files as given, folders searched for video files by extension (sub-folders with
    `recursive`), globs expanded; URLs and camera numbers pass through. Sorted within each input,
    duplicates (the same file by any path) dropped, order of the inputs kept.

    A folder or glob never yields streamcam's own outputs: anything under out_dir, and files named
    as streamcam names its videos and temporary files (`*.gradcam.mp4`, `.*.partial.*`), so an
    output folder inside the input tree is not analysed again on the next run."""
    found: list[str] = []
    outputs = os.path.realpath(out_dir) if out_dir is not None else None

    def is_input(path: Path) -> bool:
        if not path.is_file() or OWN_OUTPUT.search(path.name):
            return False
        return outputs is None or not os.path.realpath(path).startswith(outputs + os.sep)

    for item in inputs:
        path = Path(item)
        if "://" in item or item.isdigit():
            found.append(item)
        elif path.is_dir():
            pattern = "**/*" if recursive else "*"
            videos = sorted(str(p) for p in path.glob(pattern) if p.suffix.lower() in VIDEO_EXTENSIONS and is_input(p))
            if not videos:
                raise UsageError(f"no video files in {item}" + ("" if recursive else " (use --recursive for sub-folders)"))
            found += videos
        elif glob.has_magic(item):
            matches = sorted(p for p in glob.glob(item, recursive=recursive) if is_input(Path(p)))
            if not matches:
                raise UsageError(f"no files match {item}")
            found += matches
        else:
            found.append(item)  # a file (checked when it is opened, so a missing one fails alone)
    unique: dict[str, str] = {}
    for video in found:  # a/clip.mp4 and ./a/clip.mp4 are one video
        key = video if "://" in video or video.isdigit() else os.path.realpath(video)
        unique.setdefault(key, video)
    return list(unique.values())


def output_folders(videos: Sequence[str], out_dir: Path) -> dict[str, Path]:
    """A sub-folder of out_dir per video, the same for the same inputs on every run and never
    shared: a file's path relative to the videos' common folder, file name and extension included
    (a/clip.mp4 -> out/a/clip.mp4/, a/clip.mov -> out/a/clip.mov/, b/clip.mp4 -> out/b/clip.mp4/);
    a URL or camera gets streams/<name>-<first 8 hex digits of the URL's SHA-256>/, so two
    URLs ending in the same path do not meet either."""
    local = [os.path.abspath(v) for v in videos if "://" not in v and not v.isdigit()]
    base = os.path.commonpath([os.path.dirname(p) for p in local]) if local else ""
    folders = {}
    for video in videos:
        if "://" in video or video.isdigit():
            from streamcam.outputs.run_sinks import output_stem

            digest = hashlib.sha256(video.encode("utf-8", "surrogateescape")).hexdigest()[:8]
            rel = Path("streams") / f"{output_stem(video)}-{digest}"
        else:
            rel = Path(os.path.relpath(os.path.abspath(video), base))
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

    def done(self, video: str, settings: dict) -> bool:
        """Complete in an earlier run with these settings, and every output it listed still there,
        non-empty and unchanged (size and SHA-256 as recorded)."""
        entry = self.entries.get(redact_source(video))  # a skip line repeats the complete entry it skipped for
        if not entry or entry.get("status") not in (COMPLETE, SKIPPED) or differences(entry.get("settings"), settings):
            return False
        files = entry.get("files")
        listed = _output_paths(entry.get("outputs", {}))
        return isinstance(files, dict) and set(files) == set(listed) and all(_unchanged(Path(p), files[p]) for p in listed)

    def record(self, entry: dict) -> None:
        self.entries[entry["path"]] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if new:
            fsync_folder(self.path.parent)


def _output_paths(outputs: dict) -> list[str]:
    paths = []
    for value in outputs.values():
        paths += value if isinstance(value, list) else [value]
    return paths


def differences(earlier: dict | None, now: dict) -> list[str]:
    """How a manifest entry's settings differ from this run's ([] when the same)."""
    from .analyze import settings_differ

    return settings_differ(earlier, now) if isinstance(earlier, dict) else ["no settings recorded"]


def file_record(path: Path) -> dict:
    """An output's size and SHA-256, as the manifest keeps them."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def _unchanged(path: Path, record) -> bool:
    try:
        return isinstance(record, dict) and 0 < path.stat().st_size == record.get("size") and file_record(path) == record
    except OSError:
        return False


def settings_of(video: str, options, engine_key: dict) -> dict:
    """A video's settings as the manifest records them: input, output-shaping options, engine."""
    from .analyze import run_settings

    return {**run_settings(video, options), "engine": json.loads(json.dumps(engine_key, default=str))}


def engine_key_of(engine) -> dict:
    """The engine's part of the settings when the caller gives none: model and CAM method names."""
    return {"model": engine.classifier.name, "method": engine.method.name}


def analyze_one(
    video: str, engine, options, out_dir: Path, on_start=None, on_frame=None, settings: dict | None = None, presses: Presses | None = None
) -> dict:
    """Analyse one video of a batch into out_dir; returns its manifest entry (never raises for a
    bad video: a failure is an entry with status 'failed' and the error line). settings: what
    the entry records as this video's settings (batch.settings_of); options.overwrite here means
    the batch decided these outputs may be replaced (a resumed video, or --overwrite); presses: the
    batch's Ctrl-C count (analyze's `presses`)."""
    from .analyze import analyze

    began = time.perf_counter()
    entry = {"path": redact_source(video), "out_dir": str(out_dir)}
    if settings is not None:
        entry["settings"] = settings
    try:
        summary = analyze(video, engine, replace(options, out_dir=out_dir), on_start=on_start, on_frame=on_frame, presses=presses)
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
        try:
            entry["files"] = {p: file_record(Path(p)) for p in _output_paths(summary.outputs)}
        except OSError as exc:  # gone already: the next run redoes it
            entry.update(status=FAILED, error=f"outputs unreadable after the run: {exc.strerror or exc}")
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


def plan(
    videos: Sequence[str], out_dir: Path, manifest: Manifest, options, engine_key: dict
) -> tuple[list[tuple[str, Path, dict]], list[dict], object]:
    """(videos to run with their folders and settings, skipped entries, the options to run them
    with) for this run. UsageError when videos done before with other settings would be redone
    without options.overwrite."""
    folders = output_folders(videos, out_dir)
    todo, skipped, changed = [], [], []
    for video in videos:
        settings = settings_of(video, options, engine_key)
        entry = manifest.entries.get(redact_source(video))
        if manifest.done(video, settings):
            skipped.append({**entry, "status": SKIPPED, "wall_time_s": 0.0})
            continue
        if entry and entry.get("outputs"):  # files of an earlier run are there: replaced only if the same command's
            notes = differences(entry.get("settings"), settings)
            if notes:
                changed.append((video, notes))
        todo.append((video, folders[video], settings))
    if changed and not options.overwrite:
        video, notes = changed[0]
        raise UsageError(
            f"{len(changed)} of these videos were analysed into {out_dir} with other settings "
            f"({redact_source(video)}: {'; '.join(notes[:3])}): use --overwrite to redo them, or another --out-dir"
        )
    # The batch checked what it replaces: a video it ran before is redone in place (its earlier
    # outputs are this batch's), and with --overwrite so is one run with other settings.
    resumed = set(manifest.entries)
    return todo, skipped, lambda video: replace(options, overwrite=True) if redact_source(video) in resumed else options


def run_local(
    videos: Sequence[str],
    engine,
    options,
    out_dir: Path,
    manifest: Manifest,
    on_video: Callable[[dict], None] | None = None,
    on_start=None,
    on_frame=None,
    engine_key: dict | None = None,
) -> list[dict]:
    """Every video in this process, one model for all; returns the entries (skipped ones too).
    engine_key: the engine's part of each video's settings (default: model and method names).

    A Ctrl-C during a video ends it like `analyze` does (its outputs finished, status
    'interrupted'); the videos not started are recorded 'interrupted' too, and the run stops. A
    press between two videos stops it the same way (it is counted, so the manifest is never cut
    short mid-write).
    """
    todo, entries, options_for = plan(videos, out_dir, manifest, options, engine_key or engine_key_of(engine))
    for entry in entries:
        manifest.record(entry)
        if on_video:
            on_video(entry)
    stopping = False
    with counting_ctrl_c() as presses:
        for video, folder, settings in todo:
            if stopping or presses.count:
                entry = unfinished_entry(video, folder, INTERRUPTED, "not started: the batch was interrupted")
            else:
                entry = analyze_one(video, engine, options_for(video), folder, on_start, on_frame, settings, presses)
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
