"""What a batch saves: 8 short clips in one run (one model load) against 8 separate runs, and the
same batch on a local Ray cluster, with Ray's start-up reported on its own.

    python scripts/batch_bench.py [--clips 8] [--seconds 2] [--workers 2]

Needs the test extra (ray[data]) for the Ray figures. Figures from one run; nothing asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from streamcam.apps.analyze import AnalyzeOptions
from streamcam.apps.batch import Manifest, run_local
from streamcam.explain.engine import CamEngine
from streamcam.models import load_classifier

from benchlib import REPO, timed, write_h264


def make_clips(folder: Path, n: int, seconds: float, size=(640, 360), fps: int = 25) -> list[str]:
    """n different short H.264 clips (moving gradients and a disc)."""
    h, w = size[1], size[0]
    y, x = np.mgrid[0:h, 0:w]

    def pictures(k: int):
        for i in range(int(seconds * fps)):
            rgb = np.zeros((h, w, 3), np.uint8)
            rgb[..., 0] = (x + 7 * i + 40 * k) % 256
            rgb[..., 1] = (y + 3 * i) % 256
            cx, cy = (w // 2 + int(200 * np.sin(i / 9 + k)), h // 2)
            rgb[(x - cx) ** 2 + (y - cy) ** 2 < 50**2] = (255, 255, 255)
            yield rgb

    return [str(write_h264(folder / f"clip{k}.mp4", pictures(k), fps, w, h)) for k in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--workers", type=int, default=2, help="Ray actors")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    print(f"machine: {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="streamcam-batch-") as tmp:
        tmp = Path(tmp)
        (tmp / "clips").mkdir()
        clips = make_clips(tmp / "clips", args.clips, args.seconds)
        frames = int(args.seconds * 25) * args.clips
        print(f"{args.clips} clips of {args.seconds:g} s at 640x360 ({frames} frames), default model, CSV + overlay video each")

        env = {**os.environ, "PYTHONPATH": str(REPO)}
        _, separate = timed(
            lambda: [
                subprocess.run(
                    [sys.executable, "-m", "streamcam", "analyze", c, "-q", "--out-dir", str(tmp / "separate" / Path(c).stem)],
                    check=True,
                    env=env,
                )
                for c in clips
            ]
        )
        print(f"  {args.clips} separate `streamcam analyze` runs: {separate:6.1f} s ({frames / separate:.1f} fps overall)")

        engine, load = timed(lambda: CamEngine(load_classifier()))
        entries, local = timed(lambda: run_local(clips, engine, AnalyzeOptions(), tmp / "local", Manifest(tmp / "local")))
        assert all(e["status"] == "complete" for e in entries)
        print(
            f"  one batch, local mode:            {local + load:6.1f} s ({frames / (local + load):.1f} fps overall; "
            f"model load {load:.1f} s of it) -> {separate / (local + load):.2f}x faster than separate runs"
        )

        from streamcam.apps import batch_ray

        entries, ray_total = timed(
            lambda: batch_ray.run_ray(
                clips, {"model": "efficientnet-lite0"}, AnalyzeOptions(), tmp / "ray", Manifest(tmp / "ray"), workers=args.workers
            )
        )
        assert all(e["status"] == "complete" for e in entries), entries
        startup = batch_ray.last_startup_s
        work = ray_total - startup
        print(
            f"  the batch on a local Ray cluster: {ray_total:6.1f} s in all: Ray start-up {startup:.1f} s, then {work:.1f} s "
            f"({args.workers} actors, each loading the model)"
        )
        print(
            f"    Ray without start-up / local mode with its model load: {work / (local + load):.2f}x "
            f"(overhead {(work - local - load) / args.clips:+.2f} s per video)"
        )


if __name__ == "__main__":
    main()
