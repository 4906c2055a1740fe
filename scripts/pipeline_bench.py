"""The pipeline around the model, measured with an engine that costs nothing (what a GPU will see).

    python scripts/pipeline_bench.py [--clip PATH] [--seconds 10]

Also run as part of scripts/bench.py. With streamcam.null_engine.NullEngine:

  per-stage CPU cost, ms per frame (process CPU time, so FFmpeg's and x264's own threads count):
    decode          PyAV decoding alone (no colour conversion)
    colour+resize   the model inputs made from decoded frames (analyze's compute stage makes
                    them)
    render          the overlay video's picture: heatmap blend + label strip
    encode          VideoSink.write of those pictures (conversion for the encoder + libx264)
    csv             PredictionsCsv.write_frame
  pipeline fps      analyze() with the null engine, CSV only and with the overlay video
  efficiency        measured fps / ideal fps, where ideal = cores x 1000 / (sum of the stage
                    costs that run): 1.0 means every core is busy with useful work all the time

Decode-only fps (wall) is PyAV decoding alone on all cores, the ceiling for CSV-only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import av

from streamcam import load_classifier
from streamcam.analyze import AnalyzeOptions, _chunks, analyze, model_inputs
from streamcam.input_size import InputSize
from streamcam.null_engine import NullEngine
from streamcam.outputs import PredictionsCsv

try:  # absent before the fast paths: the same script measures the code before them
    from streamcam.pipeline import prefer_stage_threads
except ImportError:
    prefer_stage_threads = None
from streamcam.recording import FrameWriter
from streamcam.video.sink import VideoSink
from streamcam.video.source import VideoSource

STAGES = ("decode", "colour+resize", "render", "encode", "csv")


def _cpu(fn):
    """(result, process CPU seconds, wall seconds) of fn()."""
    c, w = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.process_time() - c, time.perf_counter() - w


def decode_only(path: Path, end: float | None) -> tuple[int, float, float]:
    """PyAV decoding with frame threads, nothing else: (frames, CPU s, wall s)."""
    def run():
        n = 0
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if end is not None and frame.time is not None and frame.time >= end:
                    break
                n += 1
        return n
    return _cpu(run)


def stage_costs(path: Path, end: float | None, classifier, engine, out: Path, preset: str, batch_size: int = 8) -> dict:
    """CPU ms per frame of each stage, each run alone over the clip (OpenCV set up as analyze sets it)."""
    if prefer_stage_threads is not None:
        prefer_stage_threads()
    costs = {}
    n, cpu, _ = decode_only(path, end)
    costs["decode"] = 1000 * cpu / n

    video = VideoSource(str(path), end=end)
    info = video.info
    size = InputSize.parse("224x224").for_frame(info.width, info.height, classifier.stride)
    chunks = list(_chunks(video, batch_size))  # decoded and kept, so the next line times the model inputs alone
    video.close()
    batches, cpu, _ = _cpu(lambda: [model_inputs(chunk, size) for chunk in chunks])
    frames = [f for chunk in chunks for f in chunk]
    costs["colour+resize"] = 1000 * cpu / len(frames)

    results = [engine.explain(batch, top_k=1) for batch in batches]
    rows = [(f, r.probabilities[i], r.class_ids[i], r.cams[i]) for chunk, r in zip(chunks, results) for i, f in enumerate(chunk)]
    writer = FrameWriter(None, AnalyzeOptions(preset=preset), classifier.labels, None, [], 0)  # its rendering only
    pictures, cpu, _ = _cpu(lambda: [writer.render_overlay(f, p, ids, cams) for f, p, ids, cams in rows])
    costs["render"] = 1000 * cpu / len(rows)

    def encode():
        with VideoSink(out / "encode.mp4", width=info.width, height=info.height, time_base=info.time_base, fps=info.fps,
                       preset=preset) as sink:
            for (f, *_), picture in zip(rows, pictures):
                sink.write(picture, f.pts, f.time_s)
    _, cpu, _ = _cpu(encode)
    costs["encode"] = 1000 * cpu / len(rows)

    def csv():
        table = PredictionsCsv(out / "bench.csv", classifier.labels, 5)
        for f, p, ids, cams in rows:
            table.write_frame(f.index, f.pts, f.time_s, p)
        table.close()
    _, cpu, _ = _cpu(csv)
    costs["csv"] = 1000 * cpu / len(rows)
    return costs


def analyze_fps(path: Path, engine, out: Path, end: float | None, **options) -> float:
    summary, _, wall = _cpu(lambda: analyze(str(path), engine, AnalyzeOptions(out_dir=out, end=end, **options)))
    return summary.frames_analysed / wall


def report(name: str, path: Path, end: float | None, classifier, out: Path, preset: str, rounds: int = 5) -> dict:
    """Measure one clip and print its lines; returns the figures.

    Decode-only, CSV-only and full runs take turns for `rounds` rounds, and each figure is its best
    round: a short clip runs for well under a second, and on a shared machine other processes
    cost single rounds up to a third of their speed.
    """
    engine = NullEngine(classifier)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    costs = stage_costs(path, end, classifier, engine, out, preset)
    analyze_fps(path, engine, out, end, video=False)  # warm-up: first-run costs (imports, caches) are not the pipeline's
    decode, csv, full = [], [], []
    for _ in range(rounds):
        n, _, wall = decode_only(path, end)
        decode.append(n / wall)
        csv.append(analyze_fps(path, engine, out, end, video=False))
        full.append(analyze_fps(path, engine, out, end, preset=preset))
    decode_fps, csv_fps, full_fps = max(decode), max(csv), max(full)
    csv_ideal = cores * 1000 / (costs["decode"] + costs["colour+resize"] + costs["csv"])
    full_ideal = cores * 1000 / sum(costs.values())
    print(f"  null engine, {name}: per-stage CPU cost (ms per frame, {cores} cores)")
    for stage in STAGES:
        print(f"    {stage:<15}{costs[stage]:7.2f}")
    print(f"    {'sum':<15}{sum(costs.values()):7.2f}")
    print(f"  best of {rounds} rounds (each round: {' '.join(f'{x:.0f}' for x in decode)} | "
          f"{' '.join(f'{x:.0f}' for x in csv)} | {' '.join(f'{x:.0f}' for x in full)} fps)")
    print(f"  decode only        {decode_fps:7.1f} fps (wall, all cores)")
    print(f"  analyze csv-only   {csv_fps:7.1f} fps   ideal {csv_ideal:7.1f}   efficiency {csv_fps / csv_ideal:4.2f}   "
          f"vs decode-only {csv_fps / decode_fps:4.2f}x")
    print(f"  analyze full       {full_fps:7.1f} fps   ideal {full_ideal:7.1f}   efficiency {full_fps / full_ideal:4.2f}")
    return {"costs": costs, "decode_fps": decode_fps, "csv_fps": csv_fps, "full_fps": full_fps,
            "csv_efficiency": csv_fps / csv_ideal, "full_efficiency": full_fps / full_ideal}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", type=Path, action="append", help="video file(s) (default: bench.py's generated 720p clip and the dashcam clip)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the generated clip")
    ap.add_argument("--preset", default=AnalyzeOptions.preset)
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    classifier = load_classifier()
    with tempfile.TemporaryDirectory(prefix="streamcam-pipeline-") as tmp:
        tmp = Path(tmp)
        clips = args.clip
        if not clips:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from bench import DASHCAM, make_clip

            clips = [make_clip(tmp / "synthetic_720p.mp4", args.seconds)] + ([DASHCAM] if DASHCAM.is_file() else [])
        for clip in clips:
            with VideoSource(str(clip)) as video:
                print(f"== {clip.name} ({video.info.width}x{video.info.height})")
            report(clip.name, clip, None, classifier, tmp, args.preset)


if __name__ == "__main__":
    main()
