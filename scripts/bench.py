"""Throughput and memory benchmark of `streamcam analyze` (a benchmark, not a test).

    python scripts/bench.py                  # full run: 10 s and 60 s 720p clips (about 8.5 min on 2 cores)
    python scripts/bench.py --quick          # 3 s / 12 s clips: checks that the script works
    python scripts/bench.py --skip-baseline --batch-size 16

It generates a 1280x720 H.264 clip (25 fps; scikit-image photos panned and zoomed, plus a
moving disc) in a temp dir, and measures on it and on the dashcam clip from the shared media
folder (skipped with a note when absent), with the default model (EfficientNet-Lite0, Grad-CAM):

  decode          VideoSource iteration alone (PyAV decode; frames convert later, only to what a stage needs), frames/s
  decode+resize   the same plus the model input at 224x224 (Frame.model_input), as analyze's reading stage does
  model           engine.explain(batch, top_k=1) on pre-decoded, pre-resized batches, steady
                  state: the first call (tracing) and the last, partial batch are left out
  trace(N)        seconds the first call with the last batch's new size N costs (a retrace:
                  paid once by every real analyze run whose frame count is not a multiple of
                  the batch size; the analyze figures below run after it, so they exclude it)
  render          overlay + label strip on full-size frames (analyze's writing stage, no encoder)
  encode          VideoSink alone (libx264, crf 23, --preset: analyze's default unless given) on decoded frames
  naive           a per-frame tutorial loop: cv2.VideoCapture, resize, one eager GradientTape
                  Grad-CAM, cv2 colour map + blend, cv2.VideoWriter (mp4v); first frame left out
  analyze csv     analyze(..., AnalyzeOptions(video=False)): frames / wall time of the call
  analyze full    analyze with the overlay video (default options), likewise
  runtimes        model-only (224x224 and --input-size 640) and full analyze fps of each
                  runtime (Keras; OpenVINO f32, auto and bf16 where the CPU has it) in the same
                  run, turn about, and the pipeline efficiency (full / model: the share of the
                  model's own speed the whole run keeps); --runtimes-only runs just this table

The engine is built and warmed up (one analyze of the clip's first second) before anything is
timed, so TensorFlow tracing is not counted. Targets: csv/model >= 0.9, full/model >= 0.6,
full/naive >= 3.

Peak RSS: each of the 10 s and 60 s clips is analysed (full, with video) in its own
subprocess (`--rss-child PATH`); after the model is loaded and warmed up, the kernel's peak-RSS
mark is reset (/proc/self/clear_refs), so the figure is the process's peak during analyze
itself. Target: the 60 s peak within 10% of the 10 s peak (memory must not grow with length).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from functools import partial
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter quiet

import av
import cv2
import numpy as np

from streamcam import CamEngine, load_classifier
from streamcam.apps.analyze import AnalyzeOptions, _batches, analyze
from streamcam.core.preprocess import resize_batch
from streamcam.explain.input_size import InputSize
from streamcam.outputs.run_sinks import FrameWriter
from streamcam.video.sink import VideoSink
from streamcam.video.source import VideoSource

import benchlib
from benchlib import DASHCAM, FPS, H, W, analyze_fps, check, cpu_busy_s, in_rounds, make_clip, own_cpu_s, timed

ROUNDS = 3  # interleaved rounds of model / analyze csv / analyze full

# -- stage measurements ----------------------------------------------------------------------


def decode_fps(path, end) -> float:
    def run():
        n = 0
        with VideoSource(str(path), end=end) as video:
            for _ in video:
                n += 1
        return n

    n, dt = timed(run)
    return n / dt


def decode_resize(path, end, batch_size, size):
    """Decode + the model input in batches, exactly as analyze's reader does; returns (frames, batches, fps)."""

    def run():
        with VideoSource(str(path), end=end) as video:
            chunks = list(_batches(video, batch_size, size))
        return [f for chunk, _ in chunks for f in chunk], [batch for _, batch in chunks]

    (frames, batches), dt = timed(run)
    return frames, batches, len(frames) / dt


def model_pass_fps(engine, batches, batch_size) -> float:
    """One timed pass of explain over the full batches (steady state: the engine is already traced)."""
    full = [b for b in batches if len(b) == batch_size]

    def run():
        for b in full:
            engine.explain(b, top_k=1)

    return len(full) * batch_size / timed(run)[1]


def model_fps(engine, batches, batch_size):
    """Steady-state explain fps over full batches (first call excluded), the cams, and the retrace cost."""
    full = [b for b in batches if len(b) == batch_size]
    cams = [engine.explain(full[0], top_k=1).cams]  # first call: tracing (or warm-up), not timed
    t = time.perf_counter()
    for b in full[1:]:
        cams.append(engine.explain(b, top_k=1).cams)
    fps = (len(full) - 1) * batch_size / (time.perf_counter() - t)
    trace = None
    if len(batches[-1]) != batch_size:  # the last, partial batch: a new input shape
        first = timed(lambda: engine.explain(batches[-1], top_k=1))[1]
        result, again = timed(lambda: engine.explain(batches[-1], top_k=1))
        cams.append(result.cams)
        trace = (len(batches[-1]), first - again)
    return fps, np.concatenate(cams), trace


def render_pictures(frames, cams, labels):
    """analyze's per-frame drawing (FrameWriter.render_overlay: overlay + label strip), without the
    encoder; returns (pictures, fps)."""
    writer = FrameWriter(None, AnalyzeOptions().sinks(), labels, None, [], 0)
    probs = np.full(1000, 1.0 / 1000, np.float32)  # ImageNet classes
    pictures, dt = timed(lambda: [writer.render_overlay(frame, probs, [0], cam) for frame, cam in zip(frames, cams)])
    return pictures, len(frames) / dt


def encode_fps(frames, pictures, out: Path, preset: str) -> float:
    """VideoSink with analyze's codec settings, fed the drawn pictures."""

    def run():
        with VideoSink(out, width=frames[0].width, height=frames[0].height, time_base=Fraction(1, 12800), fps=FPS, preset=preset) as sink:
            for f, picture in zip(frames, pictures):
                sink.write(picture, None, f.time_s)

    return len(frames) / timed(run)[1]


def naive_fps(classifier, path: Path, out: Path, max_frames: int) -> float:
    """The per-frame Grad-CAM loop most tutorials show (eager, batch of 1, OpenCV I/O)."""
    import keras
    import tensorflow as tf

    model = classifier.model
    # model.inputs[0], not the list: a list makes Keras 3 warn on every call about the input structure.
    grad_model = keras.Model(model.inputs[0], [model.get_layer("top_activation").output, model.output])
    cap = cv2.VideoCapture(str(path))
    fw, fh = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (fw, fh))
    n, t = 0, None
    while n < max_frames + 1:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        x = classifier.preprocess(cv2.resize(rgb, (224, 224)).astype(np.float32))[None]
        with tf.GradientTape() as tape:
            conv, logits = grad_model(x)
            score = logits[:, int(tf.argmax(logits[0]))]
        grads = tape.gradient(score, conv)
        weights = tf.reduce_mean(grads, axis=(0, 1, 2))
        cam = tf.nn.relu(tf.reduce_sum(conv[0] * weights, axis=-1))
        cam = (cam / (tf.reduce_max(cam) + 1e-8)).numpy()
        heat = cv2.resize(cam, (fw, fh))
        colour = cv2.applyColorMap(np.uint8(255 * heat), cv2.COLORMAP_JET)
        writer.write(cv2.addWeighted(colour, 0.5, bgr, 0.5, 0))
        if t is None:
            t = time.perf_counter()  # the first frame (eager warm-up) is not counted
        else:
            n += 1
    cap.release()
    writer.release()
    return n / (time.perf_counter() - t) if n else float("nan")


# -- peak RSS (runs in a child process) ------------------------------------------------------


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def rss_child(path: str, batch_size: int) -> None:
    """Load + warm up, reset the peak-RSS mark, analyse `path` fully; print one JSON line."""
    engine = CamEngine(load_classifier())
    with tempfile.TemporaryDirectory() as tmp:
        analyze(path, engine, AnalyzeOptions(overwrite=True, out_dir=Path(tmp), end=1.0, batch_size=batch_size))
        before = status_kib("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # "5": reset VmHWM to the current RSS
            reset = True
        except OSError:
            reset = False
        summary, dt = timed(lambda: analyze(path, engine, AnalyzeOptions(overwrite=True, out_dir=Path(tmp), batch_size=batch_size)))
    peak = status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "before_kib": before,
                "peak_kib": peak,
                "reset": reset,
                "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "frames": summary.frames_analysed,
                "fps": summary.frames_analysed / dt,
            }
        )
    )


def measure_rss(path: Path, batch_size: int) -> dict:
    cmd = [sys.executable, __file__, "--rss-child", str(path), "--batch-size", str(batch_size)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"--rss-child {path} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- main ------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 s / 12 s clips, fewer baseline frames")
    ap.add_argument("--skip-baseline", action="store_true", help="skip the naive per-frame loop")
    ap.add_argument("--batch-size", type=int, default=AnalyzeOptions.batch_size)
    ap.add_argument("--preset", default=AnalyzeOptions.preset, help="libx264 preset for the encode and full analyze figures")
    ap.add_argument("--sizes", default="224x224,448,640", help="--input-size values compared at the end (comma-separated)")
    ap.add_argument("--sizes-only", action="store_true", help="run only the --input-size comparison")
    ap.add_argument("--runtimes-only", action="store_true", help="run only the Keras / OpenVINO runtime comparison")
    ap.add_argument(
        "--rounds", type=int, default=ROUNDS, help="interleaved rounds of the runtime comparison (each figure is its best round)"
    )
    ap.add_argument("--rss-child", metavar="PATH", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up live when piped
    if args.rss_child:
        return rss_child(args.rss_child, args.batch_size)

    tmp = Path(tempfile.mkdtemp(prefix="streamcam-bench-"))
    try:
        run_all(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_all(args, tmp: Path) -> None:
    classifier = load_classifier()  # first: streamcam imports TensorFlow with its start-up chatter muted
    import keras
    import tensorflow as tf

    busy0, own0 = cpu_busy_s(), own_cpu_s()
    bs = args.batch_size
    short_s, long_s = (3, 12) if args.quick else (10, 60)
    baseline_frames = 25 if args.quick else 100
    clip_end = 3.0 if args.quick else None  # --quick: the dashcam clip's first 3 s only

    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    print(
        f"machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.machine()}, "
        f"GPUs seen by TF: {len(tf.config.list_physical_devices('GPU'))}"
    )
    print(
        f"TF {tf.__version__}, Keras {keras.__version__}, OpenCV {cv2.__version__}, PyAV {av.__version__}, "
        f"NumPy {np.__version__}; batch size {bs}"
    )

    out = tmp / "out"
    out.mkdir()
    t = time.perf_counter()
    short = make_clip(tmp / f"synthetic_720p_{short_s}s.mp4", short_s)
    long = make_clip(tmp / f"synthetic_720p_{long_s}s.mp4", long_s)
    print(f"generated {short.name} and {long.name} in {time.perf_counter() - t:.1f} s ({tmp})")

    t = time.perf_counter()
    engine = CamEngine(classifier)
    analyze(str(short), engine, AnalyzeOptions(overwrite=True, out_dir=out, end=1.0, batch_size=bs))  # traces N=bs and N=25 % bs
    print(f"engine warmed up in {time.perf_counter() - t:.1f} s")

    clips = [(f"synthetic {W}x{H} {short_s}s", short, None)]
    if DASHCAM.is_file():
        clips.append((f"dashcam {DASHCAM.stem[:20]}", DASHCAM, clip_end))
    else:
        print(f"note: {DASHCAM} not found: dashcam clip skipped")

    if args.sizes_only:
        return input_size_table(engine, clips, args.sizes.split(","), out, bs, args.preset)
    if args.runtimes_only:
        return runtime_table(clips, out, bs, args.preset, args.rounds)
    results = []
    for name, path, end in clips:
        print(f"\n== {name} ({path.name})")
        r = {"clip": name}
        r["decode"] = decode_fps(path, end)
        print(f"  decode          {r['decode']:8.1f} fps")
        frames, batches, r["decode+resize"] = decode_resize(path, end, bs, classifier.input_size)
        r["frames"] = len(frames)
        r["size"] = f"{frames[0].rgb.shape[1]}x{frames[0].rgb.shape[0]}"
        print(f"  decode+resize   {r['decode+resize']:8.1f} fps   ({len(frames)} frames, {r['size']})")
        r["model"], cams, trace = model_fps(engine, batches, bs)
        print(f"  model           {r['model']:8.1f} fps   (explain, batch {bs}, top_k=1)")
        if trace:
            r["trace"] = trace
            print(f"  trace(N={trace[0]})      {trace[1]:8.2f} s     (first call with the last batch's size)")
        pictures, r["render"] = render_pictures(frames, cams, classifier.labels)
        print(f"  render          {r['render']:8.1f} fps   (overlay + label strip)")
        r["encode"] = encode_fps(frames, pictures, out / "encode_only.mp4", args.preset)
        del pictures
        print(f"  encode          {r['encode']:8.1f} fps   (VideoSink libx264 {args.preset} crf 23)")
        del frames, cams  # free ~0.7 GB of decoded frames before the next runs (batches are small)
        if not args.skip_baseline:
            r["naive"] = naive_fps(classifier, path, out / "naive.mp4", baseline_frames)
            print(f"  naive           {r['naive']:8.1f} fps   (first {baseline_frames} frames)")
        # The ratios compare figures taken seconds apart on a shared 2-core machine, so model,
        # csv and full are measured in interleaved rounds and the best of each is kept; the
        # steady-state model figure above is the model's first round.
        rounds = in_rounds(
            ROUNDS,
            {
                "model": partial(model_pass_fps, engine, batches, bs),
                "csv": partial(analyze_fps, path, engine, out, video=False, batch_size=bs, end=end),
                "full": partial(analyze_fps, path, engine, out, batch_size=bs, end=end, preset=args.preset),
            },
            taken={"model": [r["model"]]},
        )
        del batches
        for key in rounds:
            r[key] = max(rounds[key])
        print(f"  model (best)    {r['model']:8.1f} fps   (rounds: {', '.join(f'{v:.1f}' for v in rounds['model'])})")
        print(f"  analyze csv     {r['csv']:8.1f} fps   (best of {', '.join(f'{v:.1f}' for v in rounds['csv'])})")
        print(f"  analyze full    {r['full']:8.1f} fps   (best of {', '.join(f'{v:.1f}' for v in rounds['full'])}; --preset {args.preset})")
        results.append(r)

    print("\n== the pipeline around the model, with an engine that costs nothing (scripts/pipeline_bench.py)")
    for r, (name, path, end) in zip(results, clips):
        r["null"] = benchlib.report(name, path, end, classifier, out, args.preset)

    print(f"\n== peak RSS, full analyze in a subprocess each ({short.name}, {long.name})")
    rss = {}
    for label, path in (("short", short), ("long", long)):
        rss[label] = measure_rss(path, bs)
        d = rss[label]
        print(
            f"  {path.name}: peak {d['peak_kib'] / 1024:.0f} MiB (before analyze {d['before_kib'] / 1024:.0f} MiB, "
            f"{d['frames']} frames at {d['fps']:.1f} fps)"
        )

    # -- summary ------------------------------------------------------------------------------
    print("\n" + "=" * 88)
    print(f"SUMMARY  ({os.cpu_count()} CPUs, TF {tf.__version__}, EfficientNet-Lite0 Grad-CAM, batch {bs})")
    print("=" * 88)
    rows = [
        ("frames", "", "{:.0f}"),
        ("decode", "fps", "{:.1f}"),
        ("decode+resize", "fps", "{:.1f}"),
        ("model", "fps", "{:.1f}"),
        ("render", "fps", "{:.1f}"),
        ("encode", "fps", "{:.1f}"),
        ("naive", "fps", "{:.1f}"),
        ("csv", "fps", "{:.1f}"),
        ("full", "fps", "{:.1f}"),
    ]
    names = {"csv": "analyze csv-only", "full": "analyze full", "naive": "naive per-frame"}
    print(f"{'figure':<22}{'unit':<6}" + "".join(f"{r['clip']:>30}" for r in results))
    for key, unit, fmt in rows:
        cells = "".join(f"{(fmt.format(r[key]) if key in r else '-'):>30}" for r in results)
        print(f"{names.get(key, key):<22}{unit:<6}{cells}")
    traces = ["{:.2f} (N={})".format(r["trace"][1], r["trace"][0]) if "trace" in r else "-" for r in results]
    print(f"{'trace, last batch':<22}{'s':<6}" + "".join(f"{t:>30}" for t in traces))
    for r in results:  # if nothing overlapped, per-frame costs would add up
        r["serial"] = 1 / sum(1 / r[k] for k in ("decode+resize", "model", "render", "encode"))
    print(f"{'serial estimate':<22}{'fps':<6}" + "".join(f"{r['serial']:>30.1f}" for r in results))
    print("-" * 88)
    checks = [("csv", "model", 0.85, "csv-only / model"), ("full", "model", 0.65, "full / model"), ("full", "naive", 3.0, "full / naive")]
    for r in results:
        for num, den, target, label in checks:
            if num in r and den in r:
                ratio = r[num] / r[den]
                check(ratio, target, f"{r['clip']:<30} {label:<18} {ratio:6.2f}x  (target >= {target:g}x: {r[num]:.1f} / {r[den]:.1f} fps)")
        null = r["null"]
        check(
            null["full_efficiency"],
            0.85,
            f"{r['clip']:<30} {'null full effic.':<18} {null['full_efficiency']:6.2f}   "
            f"(target >= 0.85: {null['full_fps']:.1f} fps with the overlay video)",
        )
        ratio = null["csv_fps"] / null["decode_fps"]
        check(
            ratio,
            0.8,
            f"{r['clip']:<30} {'null csv / decode':<18} "
            f"{ratio:6.2f}x  (target >= 0.8x: {null['csv_fps']:.1f} / {null['decode_fps']:.1f} fps)",
        )
    short, long = rss["short"], rss["long"]
    ratio = long["peak_kib"] / short["peak_kib"]
    check(
        ratio,
        1.10,
        f"peak RSS {long_s}s / {short_s}s{'':<21}{ratio:6.2f}x  "
        f"(target <= 1.1x: {long['peak_kib'] / 1024:.0f} / {short['peak_kib'] / 1024:.0f} MiB; growth during analyze "
        f"{(long['peak_kib'] - long['before_kib']) / 1024:.0f} vs {(short['peak_kib'] - short['before_kib']) / 1024:.0f} MiB)",
        higher=False,
    )
    # Other processes on the machine skew every figure: say how much CPU they took meanwhile.
    others = (cpu_busy_s() - busy0) - (own_cpu_s() - own0)
    print(
        f"note: other processes used {max(0.0, others):.0f} CPU-s during the run "
        f"(load average now {os.getloadavg()[0]:.2f}); figures are only comparable on an idle machine"
    )
    if not (short["reset"] and long["reset"]):
        print("note: /proc/self/clear_refs unavailable: peak RSS includes model start-up (ru_maxrss)")
    input_size_table(engine, clips, args.sizes.split(","), out, bs, args.preset)
    runtime_table(clips, out, bs, args.preset, args.rounds)


def runtime_engines() -> dict:
    """{label: engine} for each runtime this machine can run: Keras, and OpenVINO f32, auto (bf16 with
    f32 for near ties, where the CPU has bf16) and plain bf16 (--precision mixed)."""
    from streamcam.explain.runtime import build_engine, openvino_installed

    engines = {"keras": build_engine(runtime="keras")}
    if not openvino_installed():
        print("note: OpenVINO not installed (pip install 'streamcam[openvino]'): Keras only")
        return engines
    engines["openvino f32"] = build_engine(runtime="openvino", precision="float32")
    auto = build_engine(runtime="openvino", precision="auto")
    mixed = build_engine(runtime="openvino", precision="mixed")
    print(f"OpenVINO {auto.openvino_version.split('-')[0]}: --precision auto runs {auto.precision}, mixed runs {mixed.precision}")
    if auto.precision != "f32":
        engines["openvino auto"] = auto
    if mixed.precision != "f32":
        engines["openvino bf16"] = mixed
    return engines


def runtime_table(clips, out: Path, bs: int, preset: str, rounds: int = ROUNDS) -> None:
    """Model-only and full-analyze fps of each runtime, same run, turn about; ratios to Keras."""
    engines = runtime_engines()
    name, path, end = clips[-1]  # the dashcam clip where present
    end = min(end or 6.0, 6.0)
    with VideoSource(str(path), end=end) as video:
        frames = [f.rgb for f in video]
    print(f"\n== runtimes on {name}, first {end:g} s ({len(frames)} frames), batch {bs}")
    sizes = {}
    for spec in ("224x224", "640"):
        size = InputSize.parse(spec).for_frame(frames[0].shape[1], frames[0].shape[0], 32)
        sizes[spec] = (size, [resize_batch(frames[i : i + bs], size) for i in range(0, len(frames) - bs + 1, bs)])
    measures = {}
    for label, engine in engines.items():
        analyze_fps(path, engine, out, batch_size=bs, end=1.0, preset=preset)  # warm-up: traces, first compiles
        for spec, (_, batches) in sizes.items():
            model_pass_fps(engine, batches, bs)  # warm-up at this size
            measures[(label, f"model {spec}")] = partial(model_pass_fps, engine, batches, bs)
        measures[(label, "full")] = partial(analyze_fps, path, engine, out, batch_size=bs, end=end, preset=preset)
    taken = in_rounds(rounds, measures)
    best = {key: max(values) for key, values in taken.items()}
    keras_of = lambda what: best[("keras", what)]
    print(
        f"{'runtime':<16}{'model 224':>11}{'model 640':>11}{'full 224':>10}{'effic.':>8}{'model 224 vs keras':>20}{'640 vs keras':>14}{'full vs keras':>15}"
    )
    for label in engines:
        m224, m640, full = best[(label, "model 224x224")], best[(label, "model 640")], best[(label, "full")]
        print(
            f"{label:<16}{m224:>11.1f}{m640:>11.1f}{full:>10.1f}{full / m224:>8.2f}"
            f"{m224 / keras_of('model 224x224'):>19.2f}x{m640 / keras_of('model 640'):>13.2f}x{full / keras_of('full'):>14.2f}x"
        )
    print(
        f"  (fps, best of {rounds} interleaved rounds; 640 = --input-size 640 -> {sizes['640'][0][1]}x{sizes['640'][0][0]}; effic. = full / model 224)"
    )
    for label, engine in engines.items():
        if getattr(engine, "precision", "f32") == "bf16+f32":
            print(f"  {label}: {engine.exact_share:.1%} of the frames it ran (all rounds) were near ties run again in f32")


def input_size_table(engine, clips, sizes, out: Path, bs: int, preset: str) -> None:
    """Model-only and full-analyze fps at each --input-size: what the finer maps cost."""
    print(f"\n== --input-size: model-only and full analyze (with video) fps, batch {bs}")
    table = {}
    for name, path, end in clips:
        end = min(end or 4.0, 4.0)  # 4 s of each clip is enough for a steady figure
        with VideoSource(str(path), end=end) as video:
            frames = [f.rgb for f in video]
        for spec in sizes:
            size = InputSize.parse(spec).for_frame(frames[0].shape[1], frames[0].shape[0], engine.classifier.stride)
            batches = [resize_batch(frames[i : i + bs], size) for i in range(0, len(frames) - bs + 1, bs)]
            model, _, _ = model_fps(engine, batches, bs)
            full = max(
                in_rounds(2, {"full": partial(analyze_fps, path, engine, out, batch_size=bs, end=end, preset=preset, input_size=spec)})[
                    "full"
                ]
            )
            table[(name, spec)] = (f"{size[1]}x{size[0]}", model, full)
            print(f"  {name:<28} {spec:>8} -> {size[1]}x{size[0]:<4} model {model:6.1f} fps   analyze full {full:6.1f} fps")
    base = {name: table[(name, sizes[0])] for name, _, _ in clips}
    print(f"\n{'clip':<28}{'--input-size':>13}{'model input':>13}{'model fps':>11}{'full fps':>10}{'vs ' + sizes[0]:>14}")
    for (name, spec), (shape, model, full) in table.items():
        print(f"{name:<28}{spec:>13}{shape:>13}{model:>11.1f}{full:>10.1f}{full / base[name][2]:>13.2f}x")


if __name__ == "__main__":
    main()
