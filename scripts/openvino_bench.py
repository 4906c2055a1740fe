"""The OpenVINO runtime's two settings, measured here (a benchmark, not a test).

    python scripts/openvino_bench.py --precision    # bf16 against f32 on the shared clips
    python scripts/openvino_bench.py --threads      # the CPU plugin's stream/thread settings
    python scripts/openvino_bench.py --pixels       # uint8 pixels into the graph against NumPy preprocessing
    python scripts/openvino_bench.py --shapes       # fixed-shape compiles against the dynamic one alone

--precision: every frame of each shared clip (../shared/media/videos) through OpenVINO f32, plain
bf16 (--precision mixed) and auto (bf16, near ties run again in f32) at 224x224: the share of
frames whose top-1 class is f32's, and the Pearson r of the f32 top-1 class's CAM (flat frames,
whose maps are zero, left out). The rule for a bf16 precision: top-1 equal on >= 99% of frames
and the mean CAM r >= 0.99. Also the share auto re-ran in f32, and a sweep of the margin.
It also prints where bf16's error comes from: the top-1 agreement when the linear head runs in
f32 (NumPy) on the bf16 graph's feature map, against the f32 graph's top-1.

--threads: model-only and full analyze (overlay video) fps on the dashcam clip for each setting,
in interleaved rounds (best of 3): the plugin's latency hint (one stream on every core), one
inference thread (a core left to decode and encode), CPU pinning off, and the throughput hint.

--pixels: model-only fps (explain, top-1 Grad-CAM, batch 8 at 224x224, the dashcam clip's first
6 s) for each precision, with the frames as uint8 (the preprocessing compiled into the graph,
pixel_input.py) and as float32 (preprocessed by NumPy before the graph), interleaved in the same
process, best of 5 rounds; and the largest logit difference between the two.

--shapes: model-only fps (explain, top-1 Grad-CAM, the dashcam clip) for each precision with the
fixed-shape compiles of repeated shapes (compiled_shapes.py) and with the dynamic compile alone
(max_fixed_shapes=0): batch 8 at 224x224 and at --input-size 640, and batch 1 at 224x224 (live),
interleaved in the same process, best of 5 rounds.
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
from streamcam.explain.runtime.compiled_shapes import MAX_FIXED
from streamcam.explain.runtime.openvino_engine import OpenVinoEngine
from streamcam.explain.runtime.precision import RECHECK_MARGIN, near_ties
from streamcam.video.source import VideoSource

import benchlib
from benchlib import DASHCAM, analyze_fps, in_rounds, timed

VIDEOS = DASHCAM.parent
TOP1_MIN, CAM_R_MIN = 0.99, 0.99


def clip_batches(path: Path, batch: int = 8):
    """The clip's frames at 224x224 in batches of analyze's default size, so the fixed-shape compile runs as there."""
    with VideoSource(str(path)) as video:
        chunk = []
        for frame in video:
            chunk.append(frame)
            if len(chunk) == batch:
                yield model_inputs(chunk, (224, 224))
                chunk = []
        if chunk:
            yield model_inputs(chunk, (224, 224))


MARGINS = (0.25, 0.5, 0.75, 1.0)  # --precision's sweep of NearTieRecheck's margin (logits)


def precision(args) -> None:
    f32 = build_engine(runtime="openvino", precision="float32")
    bf16 = build_engine(runtime="openvino", precision="mixed")
    auto = build_engine(runtime="openvino", precision="auto")
    if bf16.precision != "bf16":
        print("this CPU has no native bf16: nothing to compare")
        return
    print(f"--precision auto runs {auto.precision} (near ties: top-1 logit ahead by < {RECHECK_MARGIN})")
    totals = {name: [0, 0, []] for name in ("bf16", "auto")}  # frames, top-1 equal, CAM r
    sweep = dict.fromkeys(MARGINS, (0, 0))  # margin: (frames re-run, top-1 equal)
    for path in sorted(VIDEOS.glob("*.*")):
        if path.stat().st_size == 0 or path.suffix not in (".mp4", ".webm"):
            continue
        clip = {name: [0, 0, []] for name in totals}
        same_f32_head = 0
        exact_before = auto.exact_frames
        for images in clip_batches(path):
            a = f32.explain(images, top_k=1)
            for name, engine in (("bf16", bf16), ("auto", auto)):
                b = engine.explain(images, top_k=1)
                equal = a.class_ids[:, 0] == b.class_ids[:, 0]
                clip[name][0] += len(images)
                clip[name][1] += int(equal.sum())
                for i in np.flatnonzero(equal):  # the same class: its two maps compared
                    x, y = a.cams[i, 0].ravel(), b.cams[i, 0].ravel()
                    if x.std() > 0 and y.std() > 0:
                        clip[name][2].append(float(np.corrcoef(x, y)[0, 1]))
            fast = bf16._infer(images)  # once, for the head check and the sweep
            same_f32_head += int((f32_head_top1(bf16, fast["features"]) == a.class_ids[:, 0]).sum())
            sweep = margin_sweep(sweep, a.class_ids[:, 0], fast["logits"])
        frames = clip["bf16"][0]
        for name in totals:
            totals[name] = [t + c for t, c in zip(totals[name], clip[name])]
        line = f"  {path.name:<44} {frames:5d} frames"
        for name in ("bf16", "auto"):
            r = np.array(clip[name][2] or [np.nan])
            line += f" | {name}: top-1 equal {clip[name][1] / frames:7.2%}, CAM r mean {r.mean():.4f} min {r.min():.4f}"
        print(
            line
            + f" | auto re-ran {(auto.exact_frames - exact_before) / frames:6.1%} in f32 | f32 head on bf16 features: {same_f32_head / frames:7.2%}"
        )
    for name in ("bf16", "auto"):
        frames, same, rs = totals[name]
        r = np.array(rs)
        ok = same / frames >= TOP1_MIN and r.mean() >= CAM_R_MIN
        print(
            f"all clips, {name}: {frames} frames, top-1 equal {same / frames:.2%} (rule >= {TOP1_MIN:.0%}), "
            f"CAM r mean {r.mean():.4f} (rule >= {CAM_R_MIN}), p1 {np.percentile(r, 1):.4f}: {'meets' if ok else 'fails'} the rule"
        )
    print(f"auto re-ran {auto.exact_share:.1%} of all frames in f32")
    frames = totals["bf16"][0]
    print(
        "margin sweep (each frame alone, no whole-batch switch): "
        + "; ".join(f"{m}: re-run {n / frames:.1%}, top-1 equal {e / frames:.2%}" for m, (n, e) in sweep.items())
    )


def margin_sweep(sweep: dict, exact_top1: np.ndarray, fast_logits: np.ndarray) -> dict:
    """Adds a batch to {margin: (frames whose bf16 logits are near ties, frames whose top-1 then equals f32's)}."""
    out = {}
    for margin, (rerun, equal) in sweep.items():
        near = near_ties(fast_logits, margin)
        top1 = np.where(near, exact_top1, fast_logits.argmax(1))
        out[margin] = (rerun + int(near.sum()), equal + int((top1 == exact_top1).sum()))
    return out


def f32_head_top1(engine, features: np.ndarray) -> np.ndarray:
    """Top-1 ids of the engine's head (global average pooling, then W and b) run in float32 on `features`."""
    head = engine._head
    return np.argmax(features.mean(axis=(1, 2), dtype=np.float64) @ head.weights + head.bias, axis=1)


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


def pixels(args) -> None:
    with VideoSource(str(DASHCAM), end=6.0) as video:
        frames = list(video)
    bs = 8
    batches = [model_inputs(frames[i : i + bs], (224, 224)) for i in range(0, len(frames) - bs + 1, bs)]
    engines = {hint: build_engine(runtime="openvino", precision=hint) for hint in ("float32", "mixed", "auto")}

    def model_fps(engine, inputs):
        return len(inputs) * bs / timed(lambda: [engine.explain(x) for x in inputs])[1]

    measures, diffs = {}, {}
    for hint, engine in engines.items():
        for dtype in (np.uint8, np.float32):
            inputs = [b.astype(dtype) for b in batches]
            key = (hint, np.dtype(dtype).name)
            measures[key] = partial(model_fps, engine, inputs)
            measures[key]()  # compiles the model for this input
        diffs[hint] = max(float(np.abs(engine._infer(b)["logits"] - engine._infer(b.astype(np.float32))["logits"]).max()) for b in batches)
    best = {k: max(v) for k, v in in_rounds(5, measures).items()}
    print(f"{'precision':<18}{'uint8 fps':>10}{'float fps':>10}{'ratio':>8}{'max |logit diff|':>18}")
    for hint, engine in engines.items():
        u8, f = best[(hint, "uint8")], best[(hint, "float32")]
        print(f"{hint + ' (' + engine.precision + ')':<18}{u8:>10.1f}{f:>10.1f}{u8 / f:>7.2f}x{diffs[hint]:>18.2e}")


def shapes(args) -> None:
    with VideoSource(str(DASHCAM), end=6.0) as video:
        frames = list(video)
    height, width = frames[0].rgb.shape[:2]
    size_640 = InputSize.parse("640").for_frame(width, height, 32)
    cases = {  # name: batches; 640 on a third of the frames, as each costs four 224x224 ones
        "224 batch 8": [model_inputs(frames[i : i + 8], (224, 224)) for i in range(0, len(frames) - 7, 8)],
        "640 batch 8": [model_inputs(frames[i : i + 8], size_640) for i in range(0, len(frames) // 3 - 7, 8)],
        "224 batch 1": [model_inputs([frame], (224, 224)) for frame in frames[::2]],
    }
    base = build_engine(runtime="openvino", precision="float32")
    hints = ("float32", "mixed", "auto")
    engines = {  # an engine per case, as a run meets one steady shape
        (hint, case, fixed): OpenVinoEngine(base.classifier, "gradcam", hint, max_fixed_shapes=MAX_FIXED if fixed else 0)
        for hint in hints
        for case in cases
        for fixed in (True, False)
    }

    def model_fps(engine, batches):
        return sum(len(b) for b in batches) / timed(lambda: [engine.explain(b) for b in batches])[1]

    measures = {}
    for (hint, case, fixed), engine in engines.items():
        model_fps(engine, cases[case])  # compiles: the dynamic model, then the fixed shape
        measures[(hint, case, fixed)] = partial(model_fps, engine, cases[case])
    best = {k: max(v) for k, v in in_rounds(5, measures).items()}
    print(f"{'precision':<20}{'case':<14}{'fixed fps':>10}{'dynamic fps':>13}{'ratio':>8}   shapes compiled fixed")
    for hint in hints:
        for case in cases:
            engine = engines[(hint, case, True)]
            fixed, dynamic = best[(hint, case, True)], best[(hint, case, False)]
            compiled = ", ".join(f"{h} {'x'.join(map(str, s))}" for (_, h), c in engine._compiled.items() for s in c.fixed_shapes) or "none"
            print(
                f"{hint + ' (' + engine.precision + ')':<20}{case:<14}{fixed:>10.1f}{dynamic:>13.1f}{fixed / dynamic:>7.2f}x   {compiled}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--precision", action="store_true", help="bf16 against f32 on the shared clips")
    ap.add_argument("--threads", action="store_true", help="stream and thread settings on the dashcam clip")
    ap.add_argument("--pixels", action="store_true", help="uint8 pixels into the graph against NumPy preprocessing")
    ap.add_argument("--shapes", action="store_true", help="fixed-shape compiles against the dynamic compile alone")
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
    if args.pixels:
        pixels(args)
    if args.shapes:
        shapes(args)


if __name__ == "__main__":
    main()
