"""`streamcam analyze --ray`: the batch of batch.py on a Ray cluster.

Each video is one task (its frames stay in order in one worker), run by a pool of actors that
each load the model once (Ray Data map_batches with a callable class). Results stream back to
this (driver) process, which writes the manifest as each video finishes, like run_local does.
Ray is optional: importing this module never needs it, calling run_ray does.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from streamcam.core.errors import StreamcamError, UsageError
from streamcam.core.redact import redact_source
from streamcam.explain.runtime import build_engine

from .batch import FAILED, INTERRUPTED, Manifest, analyze_one, plan, unfinished_entry

# The driver's environment the workers must share, so they find the same model caches.
FORWARDED_ENV = ("KERAS_HOME", "STREAMCAM_CACHE_DIR", "TF_CPP_MIN_LOG_LEVEL")

# Seconds the last run_ray spent starting (or joining) Ray; 0.0 when Ray was already initialised.
last_startup_s: float | None = None


class VideoAnalyzer:
    """One Ray actor: loads the model once, then analyses one video per call."""

    def __init__(self, engine_args: dict, options):
        self.engine = build_engine(**engine_args)
        self.options = options

    def __call__(self, batch: dict) -> dict:
        # batch_size=1: one video. Settings, outputs and error travel JSON-encoded so Arrow sees plain strings.
        options = replace(self.options, overwrite=bool(batch["overwrite"][0]))
        settings = json.loads(str(batch["settings"][0]))
        entry = analyze_one(str(batch["video"][0]), self.engine, options, Path(str(batch["folder"][0])), settings=settings)
        return {"entry": [json.dumps(entry, default=str)]}


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'streamcam[ray]'") from None
    return ray


def _start(ray, address: str | None, workers: int) -> None:
    """Start a local cluster sized for the actors (address None), or join one."""
    global last_startup_s
    import logging

    began = time.perf_counter()
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if address is None:
        ray.init(num_cpus=workers, **quiet)
    else:
        ray.init(address=address, **quiet)
    last_startup_s = round(time.perf_counter() - began, 3)


def _quiet_data(ray) -> None:
    """No progress bars or execution banners: the CLI draws its own progress."""
    import logging

    with warnings.catch_warnings():  # Ray's own defaults trip its deprecation warnings
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.max_errored_blocks = -1  # a video whose worker died is skipped, not the end of the batch
    for name in ("print_on_execution_start", "enable_auto_log_stats", "verbose_stats_logs"):
        if hasattr(ctx, name):  # these settings vary between Ray versions
            setattr(ctx, name, False)
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def run_ray(
    videos: Sequence[str],
    engine_args: dict,
    options,
    out_dir: Path,
    manifest: Manifest,
    *,
    address: str | None = None,
    workers: int = 2,
    gpus_per_worker: float = 0.0,
    on_video: Callable[[dict], None] | None = None,
    engine_key: dict | None = None,
) -> list[dict]:
    """Every video as one task on Ray, `workers` actors with one model each; returns the entries
    (skipped ones too), recorded in the manifest as each finishes, in the order they finish.

    A Ctrl-C cancels the outstanding work (actors killed, so a video being analysed keeps no
    finished outputs) and records every video without a result as 'interrupted'. An error that
    ends the whole run (an actor that cannot load the model, a lost cluster) raises
    StreamcamError once the results already back are recorded; the rest are redone next run.
    """
    global last_startup_s
    ray = _import_ray()
    if engine_key is None:  # the engine is loaded in the actors only: its part of the settings from its arguments
        engine_key = {k: engine_args.get(k) for k in ("model", "weights", "layer", "method", "preprocess")}
    todo, skipped, options_for = plan(videos, out_dir, manifest, options, engine_key)
    entries: list[dict] = []

    def record(entry: dict) -> None:
        manifest.record(entry)
        entries.append(entry)
        if on_video:
            on_video(entry)

    def record_rest(status: str, error: str) -> None:
        for video in list(pending):
            record(unfinished_entry(video, pending.pop(video), status, error))

    for entry in skipped:
        record(entry)
    if not todo:
        return entries

    last_startup_s = 0.0
    started = not ray.is_initialized()  # a cluster this process already uses is left running
    pending = {video: folder for video, folder, _settings in todo}
    rows = None
    try:
        if started:
            _start(ray, address, workers)
        _quiet_data(ray)
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        # One block per video, so each result comes back as soon as its video is done.
        items = [{"video": v, "folder": str(f), "settings": json.dumps(st), "overwrite": options_for(v).overwrite} for v, f, st in todo]
        dataset = ray.data.from_items(items, override_num_blocks=len(todo))
        with warnings.catch_warnings():  # Ray 2.60 deprecates extra remote args like max_task_retries
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = dataset.map_batches(
                VideoAnalyzer,
                batch_size=1,
                fn_constructor_kwargs={"engine_args": engine_args, "options": options},
                # One video in flight per actor: a long video holds no short one queued behind it
                # while another actor idles, and a Ctrl-C finds nothing handed out but not started.
                compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
                num_cpus=1,
                num_gpus=gpus_per_worker or None,
                runtime_env={"env_vars": env} if env else None,
                # A video that kills its worker is not retried (it would kill the next one too):
                # the actor restarts for the other videos, and the video is recorded failed.
                max_task_retries=0,
            )
        # Row by row with no prefetching: each result is recorded as soon as its video is done.
        rows = iter(dataset.iter_batches(batch_size=1, prefetch_batches=0))
        for row in rows:
            entry = json.loads(row["entry"][0])
            shown = {redact_source(video): video for video in pending}  # entries name URLs without credentials
            pending.pop(shown.get(entry["path"], entry["path"]), None)
            record(entry)
        # No result, yet no error: its task was dropped because the worker died on it.
        record_rest(FAILED, "the Ray worker analysing it died (out of memory, or a crash)")
    except KeyboardInterrupt:
        record_rest(INTERRUPTED, "not finished: the batch was interrupted")
    except Exception as exc:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise StreamcamError(f"Ray batch stopped with {len(pending)} videos unfinished: {lines[-1]}") from exc
    finally:
        if rows is not None and hasattr(rows, "close"):
            rows.close()  # shuts the dataset's execution down: its actors go
        if started:
            ray.shutdown()
    return entries
