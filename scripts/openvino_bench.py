"""The OpenVINO runtime's two settings, measured here (a benchmark, not a test).

    python scripts/openvino_bench.py --precision    # bf16 against f32 on the shared clips
    python scripts/openvino_bench.py --threads      # the CPU plugin's stream/thread settings

--precision: every frame of each shared clip (../shared/media/videos) through OpenVINO f32 and
bf16 at 224x224: the share of frames whose top-1 class is the same, and the Pearson r of the
f32 top-1 class's CAM between the two (flat frames, whose maps are zero, left out). The rule
for --precision auto: bf16 only if top-1 agrees on >= 99% of frames and the mean CAM r >= 0.99.

--threads: model-only and full analyze (overlay video) fps on the dashcam clip for each setting,
in interleaved rounds (best of 3): the plugin's latency hint (one stream on every core), one
inference thread (a core left to decode and encode), CPU pinning off, and the throughput hint.
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from streamcam.apps.analyze import model_inputs
from streamcam.explain.input_size import InputSize
from streamcam.explain.runtime import build_engine
from streamcam.explain.runtime.openvino_engine import OpenVinoEngine
from streamcam.video.source import VideoSource

import benchlib
from benchlib import DASHCAM, analyze_fps, in_rounds, timed

VIDEOS = DASHCAM.parent
TOP1_MIN, CAM_R_MIN = 0.99, 0.99


def clip_batches(path: Path, batch: int = 16):
    with VideoSource(str(path)) as video:
        chunk = []
        for frame in video:
            chunk.append(frame)
            if len(chunk) == batch:
                yield model_inputs(chunk, (224, 224))
                chunk = []
        if chunk:
            yield model_inputs(chunk, (224, 224))


def precision(args) -> None:
    f32 = build_engine(runtime="openvino", precision="float32")
    bf16 = build_engine(runtime="openvino", precision="mixed")
    if bf16.precision != "bf16":
        print("this CPU has no native bf16: nothing to compare")
        return
    total_frames, total_same, rs = 0, 0, []
    for path in sorted(VIDEOS.glob("*.*")):
        if path.stat().st_size == 0 or path.suffix not in (".mp4", ".webm"):
            continue
        frames = same = 0
        clip_r = []
        for images in clip_batches(path):
            a, b = f32.explain(images, top_k=1), bf16.explain(images, top_k=1)
            equal = a.class_ids[:, 0] == b.class_ids[:, 0]
            frames += len(images)
            same += int(equal.sum())
            for i in np.flatnonzero(equal):  # the same class: its two maps compared
                x, y = a.cams[i, 0].ravel(), b.cams[i, 0].ravel()
                if x.std() > 0 and y.std() > 0:
                    clip_r.append(float(np.corrcoef(x, y)[0, 1]))
        rs += clip_r
        total_frames += frames
        total_same += same
        r = np.array(clip_r) if clip_r else np.array([np.nan])
        print(
            f"  {path.name:<48} {frames:5d} frames  top-1 equal {same / frames:7.2%}  CAM r mean {r.mean():.4f}  p1 {np.percentile(r, 1):.4f}  min {r.min():.4f}"
        )
    r = np.array(rs)
    ok = total_same / total_frames >= TOP1_MIN and r.mean() >= CAM_R_MIN
    print(
        f"all clips: {total_frames} frames, top-1 equal {total_same / total_frames:.2%} (rule >= {TOP1_MIN:.0%}), "
        f"CAM r mean {r.mean():.4f} (rule >= {CAM_R_MIN}), p1 {np.percentile(r, 1):.4f}: "
        f"auto {'may use bf16' if ok else 'stays f32'}"
    )


THREAD_SETTINGS = {
    "latency (1 stream, all cores)": {"PERFORMANCE_HINT": "LATENCY"},
    "latency, 1 thread": {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1},
    "latency, no pinning": {"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False},
    "throughput hint": {"PERFORMANCE_HINT": "THROUGHPUT"},
}


def threads(args) -> None:
    base = build_engine(runtime="openvino", precision=args.precision_hint)
    engines = {label: OpenVinoEngine(base.classifier, "gradcam", args.precision_hint, settings=s) for label, s in THREAD_SETTINGS.items()}
    end = 6.0
    with VideoSource(str(DASHCAM), end=end) as video:
        frames = list(video)
    bs = 8
    batches = [
        model_inputs(frames[i : i + bs], InputSize.parse("224x224").for_frame(960, 540, 32)) for i in range(0, len(frames) - bs + 1, bs)
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def model_fps(engine):
        return len(batches) * bs / timed(lambda: [engine.explain(b) for b in batches])[1]

    measures = {}
    for label, engine in engines.items():
        model_fps(engine)
        measures[(label, "model")] = partial(model_fps, engine)
        measures[(label, "full")] = partial(analyze_fps, DASHCAM, engine, out, end=end, batch_size=bs)
    best = {k: max(v) for k, v in in_rounds(3, measures).items()}
    print(f"{'setting':<32}{'model fps':>10}{'full fps':>10}   precision {base.precision}, {os.cpu_count()} CPUs")
    for label in engines:
        print(f"{label:<32}{best[(label, 'model')]:>10.1f}{best[(label, 'full')]:>10.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--precision", action="store_true", help="bf16 against f32 on the shared clips")
    ap.add_argument("--threads", action="store_true", help="stream and thread settings on the dashcam clip")
    ap.add_argument("--precision-hint", default="float32", help="--threads: the precision to run (float32, auto, mixed)")
    ap.add_argument("--out", default="/tmp/streamcam-openvino-bench", help="--threads: where analyze writes")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    if not DASHCAM.is_file():
        sys.exit(f"shared clips not found in {VIDEOS}")
    print(f"machine: {os.cpu_count()} CPUs, {benchlib.usable_cores()} usable")
    if args.precision:
        precision(args)
    if args.threads:
        threads(args)


if __name__ == "__main__":
    main()
