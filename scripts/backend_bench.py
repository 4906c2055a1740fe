"""Engine throughput on each Keras backend, measured in one run (a benchmark, not a test).

    python scripts/backend_bench.py                      # tensorflow and jax, batch 8, 224x224
    python scripts/backend_bench.py --batch 1 32 --seconds 5
    python scripts/backend_bench.py --backends jax --precision mixed

Keras fixes its backend per process, so each backend is measured in a child process
(`--child BACKEND`), one after the other, never side by side. Each child builds the default
model (EfficientNet-Lite0), warms up (the compiled call's tracing and compilation are not
timed), then times, on the same random frames:

  gradcam   engine.explain(batch, top_k=1): probabilities + one Grad-CAM per image
  forward   probabilities alone, through the same backend's compiled call (so gradcam/forward
            is what the head's backward pass and the CAM cost)

Figures are images per second, steady state; the last lines are the ratios against the
first backend. The figures come from benchlib.measure (scripts/benchlib.py), which
scripts/gpu_check.py uses for its engine figures too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchlib import measure, timed


def child(backend: str, batches: list[int], precision: str, seconds: float, size: tuple[int, int]) -> dict:
    from streamcam.explain.runtime import build_engine

    engine, load_s = timed(lambda: build_engine(precision=precision, backend=backend))
    figures = {"backend": engine.backend_name, "version": engine.backend.version(), "load_s": load_s}
    for batch in batches:
        figures[f"gradcam_{batch}"] = measure(engine, batch, size, seconds, forward_only=False)
        figures[f"forward_{batch}"] = measure(engine, batch, size, seconds, forward_only=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--batch", nargs="+", type=int, default=[8])
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--seconds", type=float, default=8.0, help="timed seconds per figure")
    parser.add_argument("--size", default="224x224", help="WxH of the model input")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.child:
        print(json.dumps(child(args.child, args.batch, args.precision, args.seconds, (height, width))))
        return
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"EfficientNet-Lite0 at {width}x{height}, {args.precision}, images/s, one backend at a time"
    )
    results = []
    for backend in args.backends:
        command = [
            sys.executable,
            __file__,
            "--child",
            backend,
            "--batch",
            *map(str, args.batch),
            "--precision",
            args.precision,
            "--seconds",
            str(args.seconds),
            "--size",
            args.size,
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{backend}: failed\n{done.stderr.strip()[-2000:]}")
            continue
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(figures)
        cells = "  ".join(
            f"batch {b}: gradcam {figures[f'gradcam_{b}']:7.1f}  forward {figures[f'forward_{b}']:7.1f}"
            f"  ratio {figures[f'gradcam_{b}'] / figures[f'forward_{b}']:.2f}"
            for b in args.batch
        )
        print(f"{figures['backend']:<10} {figures['version']:<8} load {figures['load_s']:5.1f} s  {cells}")
    if len(results) > 1:
        base = results[0]
        for other in results[1:]:
            for b in args.batch:
                print(
                    f"{other['backend']} / {base['backend']}, batch {b}: gradcam {other[f'gradcam_{b}'] / base[f'gradcam_{b}']:.2f}x, "
                    f"forward {other[f'forward_{b}'] / base[f'forward_{b}']:.2f}x"
                )


if __name__ == "__main__":
    main()
