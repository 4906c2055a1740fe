"""The pipeline around the model, measured with an engine that costs nothing (what a GPU will see).

    python scripts/pipeline_bench.py [--clip PATH] [--seconds 10]

With streamcam.explain.null_engine.NullEngine, it prints for each clip:

  per-stage CPU cost, ms per frame (process CPU time, so FFmpeg's and x264's own threads count):
    decode          PyAV decoding alone (no colour conversion)
    colour+resize   the model inputs made from decoded frames (analyze's compute stage makes
                    them; the null engine's own cost, nil, is counted here)
    render          the overlay video's picture: heatmap blend + label strip
    encode          VideoSink.write of those pictures (conversion for the encoder + libx264)
    csv             PredictionsCsv.write_frame and FramesCsv.write_frame (the two CSVs)
  pipeline fps      analyze() with the null engine, CSV only and with the overlay video
  efficiency        measured fps / ideal fps, where ideal = cores x 1000 / (sum of the stage
                    costs that run): 1.0 means every core is busy with useful work all the time

Decode-only fps (wall) is PyAV decoding alone on all cores, the ceiling for CSV-only.
The measurements are benchlib.report (scripts/benchlib.py), which bench.py and gpu_check.py
print too; this script is their command line.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from streamcam import load_classifier
from streamcam.apps.analyze import AnalyzeOptions
from streamcam.video.source import VideoSource

from benchlib import DASHCAM, make_clip, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--clip",
        type=Path,
        action="append",
        help="video file(s) (default: the generated 720p clip, benchlib.make_clip, and the dashcam clip)",
    )
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the generated clip")
    ap.add_argument("--preset", default=AnalyzeOptions.preset)
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    classifier = load_classifier()
    with tempfile.TemporaryDirectory(prefix="streamcam-pipeline-") as tmp:
        tmp = Path(tmp)
        clips = args.clip or [make_clip(tmp / "synthetic_720p.mp4", args.seconds)] + ([DASHCAM] if DASHCAM.is_file() else [])
        for clip in clips:
            with VideoSource(str(clip)) as video:
                print(f"== {clip.name} ({video.info.width}x{video.info.height})")
            report(clip.name, clip, None, classifier, tmp, args.preset)


if __name__ == "__main__":
    main()
