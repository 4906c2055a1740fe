"""What the benchmark scripts share: test clips, timing, rounds taken in turns, PASS/MISS lines, and
the measurements more than one script reports (engine images/s, the pipeline with the null engine).

Imported by bench.py, pipeline_bench.py, backend_bench.py, batch_bench.py, live_bench.py and
gpu_check.py (scripts/ is on sys.path when they run). No script imports another script: what two of
them need lives here.

  clips     write_h264, make_clip (the generated 1280x720 clip, W x H at FPS), REPO, DASHCAM
  timing    timed, timed_cpu, own_cpu_s, cpu_busy_s, usable_cores
  rounds    in_rounds: several measurements in turns, round after round; the caller keeps the best
  targets   verdict, check: the PASS/MISS report lines
  engine    measure: images/s of engine.explain or of the forward pass alone
  pipeline  decode_only, stage_costs, analyze_fps, report: analyze around streamcam's NullEngine
            (an engine that costs nothing), i.e. what a GPU will see

Importing this module imports PyAV, NumPy, OpenCV and streamcam's pipeline modules, but not Keras,
so a script can still choose its backend afterwards; scikit-image loads only for the "photos" clip.
gpu_check.py imports it after checking that those modules are installed.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from streamcam.apps.analyze import AnalyzeOptions, _chunks, analyze, model_inputs
from streamcam.explain.input_size import InputSize
from streamcam.explain.null_engine import NullEngine
from streamcam.outputs.files import FramesCsv, PredictionsCsv
from streamcam.outputs.run_sinks import FrameWriter
from streamcam.video.sink import VideoSink
from streamcam.video.source import VideoSource

try:  # absent before the fast paths: the same measurements then run on the code before them
    from streamcam.core.pipeline import prefer_stage_threads
except ImportError:
    prefer_stage_threads = None

REPO = Path(__file__).resolve().parent.parent
DASHCAM = REPO.parent / "shared" / "media" / "videos" / "road_highway_dashcam_solidWhiteRight.mp4"
W, H, FPS = 1280, 720, 25  # the generated clip
_SHOT_FRAMES = 75  # 3 s per photo, so a 60 s clip keeps changing content


# -- clips -----------------------------------------------------------------------------------


def write_h264(path: Path, pictures: Iterable[np.ndarray], fps: int, width: int, height: int) -> Path:
    """Encode RGB uint8 pictures (height, width, 3) with libx264 (ultrafast, crf 23), one per 1/fps s."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i, rgb in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _photo_pictures(n: int):
    """scikit-image photos panned and zoomed (Ken Burns) plus a bouncing disc."""
    from skimage import data  # here, not at the top: gpu_check's machine has no scikit-image

    photos = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    for i in range(n):
        photo = photos[(i // _SHOT_FRAMES) % len(photos)]
        t = (i % _SHOT_FRAMES) / _SHOT_FRAMES
        ph, pw = photo.shape[:2]
        win_w = min(pw, ph * W / H) * (1.0 - 0.35 * t)  # zoom in over the shot
        win_h = win_w * H / W
        cx = win_w / 2 + (pw - win_w) * (0.5 + 0.4 * math.sin(2 * math.pi * t))  # and pan
        cy = win_h / 2 + (ph - win_h) * 0.5
        s = W / win_w
        m = np.float64([[s, 0, -s * (cx - win_w / 2)], [0, s, -s * (cy - win_h / 2)]])
        rgb = cv2.warpAffine(photo, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        x = int(W / 2 + (W / 2 - 80) * math.sin(i / 23.0))
        y = int(H / 2 + (H / 2 - 80) * math.cos(i / 17.0))
        cv2.circle(rgb, (x, y), 60, (255, (i * 7) % 256, 40), -1, cv2.LINE_AA)
        yield rgb


def _shape_pictures(n: int):
    """A drifting colour gradient with a moving ripple texture, a bouncing disc and a sliding rectangle
    (NumPy only)."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    xn, yn = x / W, y / H
    for i in range(n):
        t = i / FPS
        ripple = 0.5 + 0.5 * np.sin(2 * np.pi * (6 * xn + 4 * yn - 0.7 * t)) * np.cos(2 * np.pi * (3 * yn + 0.3 * t))
        rgb = np.empty((H, W, 3), np.float32)
        rgb[..., 0] = 255 * (0.6 * xn + 0.4 * ripple)
        rgb[..., 1] = 255 * (0.5 + 0.5 * np.sin(2 * np.pi * (yn + 0.1 * t)))
        rgb[..., 2] = 255 * (0.7 * (1 - xn) * ripple + 0.3 * yn)
        cx = W / 2 + (W / 2 - 100) * np.sin(t * 1.1)
        cy = H / 2 + (H / 2 - 100) * np.cos(t * 1.7)
        rgb[(x - cx) ** 2 + (y - cy) ** 2 < 90**2] = (250, 230, 40)
        rx = int((120 * t) % (W - 200))
        ry = int(H * 0.6 + 80 * np.sin(t))
        rgb[ry : ry + 140, rx : rx + 200] = (30, 60, 220)
        yield rgb.astype(np.uint8)


_SCENES = {"photos": _photo_pictures, "shapes": _shape_pictures}


def make_clip(path: Path, seconds: float, scene: str = "photos") -> Path:
    """The generated W x H H.264 clip at FPS (libx264 ultrafast, crf 23), so no two frames are alike.

    scene "photos": scikit-image photos panned and zoomed plus a bouncing disc (bench.py,
    pipeline_bench.py); "shapes": moving shapes on a moving gradient texture, NumPy only, for
    machines without scikit-image (gpu_check.py).
    """
    return write_h264(path, _SCENES[scene](round(seconds * FPS)), FPS, W, H)


# -- timing ----------------------------------------------------------------------------------


def timed(fn: Callable):
    """(result, wall seconds) of fn()."""
    began = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - began


def timed_cpu(fn: Callable):
    """(result, process CPU seconds, wall seconds) of fn(): CPU time of all threads, FFmpeg's and x264's too."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def own_cpu_s() -> float:
    """CPU seconds this process and its finished children have used."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def cpu_busy_s() -> float:
    """Seconds of CPU time used machine-wide (all processes), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait


def usable_cores() -> int:
    """Cores this process may run on (its affinity where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# -- rounds ----------------------------------------------------------------------------------


def in_rounds(rounds: int, measures: dict[str, Callable[[], float]], taken: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Run the measures in turns (dict order), round after round, until each has `rounds` values.

    On a shared machine other processes slow single runs down, and figures taken minutes apart
    see different loads; taking turns lets every measure see the same spells, and the caller
    keeps each one's best. `taken`: values a measure already has (a figure taken before), which
    count as its first rounds, so it sits those rounds out.
    """
    values = {name: list((taken or {}).get(name, ())) for name in measures}
    for i in range(rounds):
        for name, measure in measures.items():
            if len(values[name]) <= i:
                values[name].append(measure())
    return values


# -- targets ---------------------------------------------------------------------------------


def verdict(value: float, target: float, higher: bool = True) -> str:
    """PASS where value meets the target (>= it, or <= it with higher=False), else MISS."""
    return "PASS" if (value >= target if higher else value <= target) else "MISS"


def check(value: float, target: float, line: str, higher: bool = True) -> bool:
    """Print `line` after its PASS/MISS verdict; return whether it passed."""
    result = verdict(value, target, higher)
    print(f"{result}  {line}")
    return result == "PASS"


# -- engine ----------------------------------------------------------------------------------


def measure(engine, batch: int, size: tuple[int, int], seconds: float, forward_only: bool) -> float:
    """Images per second of engine.explain (or the forward pass alone) on one batch shape, steady state."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, *size, 3), dtype=np.uint8)
    run = _forward(engine) if forward_only else (lambda x: engine.explain(x, top_k=1))
    run(images)  # trace and compile
    run(images)
    calls, began = 0, time.perf_counter()
    while True:
        run(images)
        calls += 1
        elapsed = time.perf_counter() - began
        if elapsed >= seconds and calls >= 3:
            return calls * batch / elapsed


def _forward(engine):
    """The classifier's probabilities through the backend's compiled call, no gradient, no CAM."""
    from streamcam.backends import ops  # keras.ops: loads Keras, so only once an engine exists

    classifier, backend = engine.classifier, engine.backend
    model = classifier.head.model

    def probabilities(images):
        return ops.softmax(ops.cast(model(classifier.preprocess(ops.cast(images, "float32")), training=False), "float32"))

    compiled = backend.compile(probabilities, model, engine.jit)

    def run(images):
        with backend.device_scope(engine.device):
            return ops.convert_to_numpy(compiled(ops.convert_to_tensor(images)))

    return run


# -- the pipeline with the null engine -------------------------------------------------------

STAGES = ("decode", "colour+resize", "render", "encode", "csv")


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

    return timed_cpu(run)


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
    writer = FrameWriter(None, AnalyzeOptions(preset=preset).sinks(), classifier.labels, None, [], 0)  # its drawing only
    table = PredictionsCsv(out / "bench.csv", classifier.labels, 5)
    per_frame = FramesCsv(out / "bench.frames.csv", classifier.labels)
    frames = 0
    process_began = time.process_time()
    with VideoSink(out / "encode.mp4", width=info.width, height=info.height, time_base=info.time_base, fps=info.fps, preset=preset) as sink:
        for chunk in chunks:
            began = time.thread_time()
            batch = engine.explain(model_inputs(chunk, size), top_k=1)
            costs["colour+resize"] += time.thread_time() - began
            for i, frame in enumerate(chunk):
                began = time.thread_time()
                picture = writer.render_overlay(frame, batch.probabilities[i], batch.class_ids[i], batch.cams[i])
                drawn = time.thread_time()
                table.write_frame(frame.index, frame.pts, frame.time_s, batch.probabilities[i])
                per_frame.write_frame(frame.index, frame.pts, frame.time_s, batch.probabilities[i], batch.class_ids[i], batch.cams[i])
                costs["render"] += drawn - began
                costs["csv"] += time.thread_time() - drawn
                sink.write(picture, frame.pts, frame.time_s)
            frames += len(chunk)
    table.close()
    per_frame.close()
    costs["encode"] = time.process_time() - process_began - costs["colour+resize"] - costs["render"] - costs["csv"]
    for stage in STAGES[1:]:
        costs[stage] *= 1000 / frames
    return costs


def analyze_fps(path: Path, engine, out: Path, **options) -> float:
    """Frames per wall second of one analyze(path, engine, AnalyzeOptions(overwrite=True, out_dir=out, **options)) call."""
    summary, wall = timed(lambda: analyze(str(path), engine, AnalyzeOptions(overwrite=True, out_dir=out, **options)))
    return summary.frames_analysed / wall


def report(name: str, path: Path, end: float | None, classifier, out: Path, preset: str, rounds: int = 5) -> dict:
    """Measure one clip with the null engine and print its lines; returns the figures.

    Decode-only, CSV-only and full runs take turns for `rounds` rounds, and each figure is its best
    round: a short clip runs for well under a second, and on a shared machine other processes
    cost single rounds up to a third of their speed.
    """
    engine = NullEngine(classifier)
    cores = usable_cores()
    costs = stage_costs(path, end, classifier, engine, out, preset)
    analyze_fps(path, engine, out, end=end, video=False)  # warm-up: first-run costs (imports, caches) are not the pipeline's

    def decode_round() -> float:
        n, _, wall = decode_only(path, end)
        return n / wall

    taken = in_rounds(
        rounds,
        {
            "decode": decode_round,
            "csv": lambda: analyze_fps(path, engine, out, end=end, video=False),
            "full": lambda: analyze_fps(path, engine, out, end=end, preset=preset),
        },
    )
    decode, csv, full = taken["decode"], taken["csv"], taken["full"]
    decode_fps, csv_fps, full_fps = max(decode), max(csv), max(full)
    csv_ideal = cores * 1000 / (costs["decode"] + costs["colour+resize"] + costs["csv"])
    full_ideal = cores * 1000 / sum(costs.values())
    print(f"  null engine, {name}: per-stage CPU cost (ms per frame, {cores} cores)")
    for stage in STAGES:
        print(f"    {stage:<15}{costs[stage]:7.2f}")
    print(f"    {'sum':<15}{sum(costs.values()):7.2f}")
    print(
        f"  best of {rounds} rounds (each round: {' '.join(f'{x:.0f}' for x in decode)} | "
        f"{' '.join(f'{x:.0f}' for x in csv)} | {' '.join(f'{x:.0f}' for x in full)} fps)"
    )
    print(f"  decode only        {decode_fps:7.1f} fps (wall, all cores)")
    print(
        f"  analyze csv-only   {csv_fps:7.1f} fps   ideal {csv_ideal:7.1f}   efficiency {csv_fps / csv_ideal:4.2f}   "
        f"vs decode-only {csv_fps / decode_fps:4.2f}x"
    )
    print(f"  analyze full       {full_fps:7.1f} fps   ideal {full_ideal:7.1f}   efficiency {full_fps / full_ideal:4.2f}")
    return {
        "costs": costs,
        "decode_fps": decode_fps,
        "csv_fps": csv_fps,
        "full_fps": full_fps,
        "csv_efficiency": csv_fps / csv_ideal,
        "full_efficiency": full_fps / full_ideal,
    }
