"""Does the first frame of `streamcam live` wait for a compile? The model call of each frame, timed.

    python scripts/live_first_frame.py [--precision float32|auto|mixed] [--frames 30]

One live session (OpenVINO runtime, batch 1, 224x224) on a synthetic 320x240 clip, with
engine.explain timed around each call on a video frame (the warm-up's blank frames are left out).
It prints the first frame's call against the median of the later ones, and the shapes each compile
holds fixed at the end. Figures are from this one run on this machine; nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np

from benchlib import REPO

sys.path.insert(0, str(REPO / "tests"))  # the synthetic clips the tests use

from streamcam.apps.live import live
from streamcam.explain.runtime import build_engine

from videos import make_video


class KeepShowing:
    def show(self, rgb) -> bool:
        return True

    def close(self) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", default="float32", help="the OpenVINO precision: float32, auto or mixed")
    ap.add_argument("--frames", type=int, default=30, help="frames in the clip")
    args = ap.parse_args()
    engine = build_engine(runtime="openvino", precision=args.precision)
    explain, times_ms = engine.explain, []

    def timed(images, *more, **options):
        start = time.perf_counter()
        out = explain(images, *more, **options)
        if images.any():  # a video frame, not the warm-up's blank one
            times_ms.append((time.perf_counter() - start) * 1000)
        return out

    engine.explain = timed
    with tempfile.TemporaryDirectory() as folder:
        make_video(f"{folder}/clip.mp4", args.frames, size=(320, 240))
        live(f"{folder}/clip.mp4", engine, KeepShowing())
    print(
        f"{args.precision} ({engine.precision}): first frame's model call {times_ms[0]:.1f} ms, "
        f"later frames median {np.median(times_ms[1:]):.1f} ms ({len(times_ms)} frames)"
    )
    print("fixed shapes:", {f"{kind} {hint}": compiled.fixed_shapes for (kind, hint), compiled in engine._compiled.items()})


if __name__ == "__main__":
    main()
