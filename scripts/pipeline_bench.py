"""The pipeline around the model, measured with an engine that costs nothing (what a GPU will see).

    python scripts/pipeline_bench.py [--clip PATH] [--seconds 10]

Also run as part of scripts/bench.py. With streamcam.null_engine.NullEngine:

  per-stage CPU cost, ms per frame (process CPU time, so FFmpeg's and x264's own threads count):
    decode          PyAV decoding alone (no colour conversion)
    colour+resize   the model inputs made from decoded frames (analyze's compute stage makes
                    them; the null engine's own cost, nil, is counted here)
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
    """CPU ms per frame of each stage (OpenCV set up as analyze sets it).

    Decoding is timed alone. The other stages then run one after the other, a batch at a time, on
    frames decoded beforehand: each batch's pictures are drawn, encoded and dropped, as in analyze
    (keeping every picture of the clip made the drawing cost swing with the cost of fresh memory).
    The model inputs, drawing and CSV rows run in this thread and are timed with its CPU clock;
    the encoder's share is the rest of the process's CPU time over the loop (x264's own threads
    encode while this thread draws the next batch).
    """
    if prefer_stage_threads is not None:
        prefer_stage_threads()
    n, cpu, _ = decode_only(path, end)
    costs = dict.fromkeys(STAGES, 0.0)
    costs["decode"] = 1000 * cpu / n

    video = VideoSource(str(path), end=end)
    info = video.info
    size = InputSize.parse("224x224").for_frame(info.width, info.height, classifier.stride)
    chunks = list(_chunks(video, batch_size))  # decoded beforehand: the loop below does not decode
    video.close()
    writer = FrameWriter(None, AnalyzeOptions(preset=preset), classifier.labels, None, [], 0)  # its drawing only
    table = PredictionsCsv(out / "bench.csv", classifier.labels, 5)
    frames = 0
    process_began = time.process_time()
    with VideoSink(out / "encode.mp4", width=info.width, height=info.height, time_base=info.time_base, fps=info.fps,
                   preset=preset) as sink:
        for chunk in chunks:
            began = time.thread_time()
            batch = engine.explain(model_inputs(chunk, size), top_k=1)
            costs["colour+resize"] += time.thread_time() - began
            for i, frame in enumerate(chunk):
                began = time.thread_time()
                picture = writer.render_overlay(frame, batch.probabilities[i], batch.class_ids[i], batch.cams[i])
                drawn = time.thread_time()
                table.write_frame(frame.index, frame.pts, frame.time_s, batch.probabilities[i])
                costs["render"] += drawn - began
                costs["csv"] += time.thread_time() - drawn
                sink.write(picture, frame.pts, frame.time_s)
            frames += len(chunk)
    table.close()
    costs["encode"] = time.process_time() - process_began - costs["colour+resize"] - costs["render"] - costs["csv"]
    for stage in STAGES[1:]:
        costs[stage] *= 1000 / frames
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
