"""One Ctrl-C at chosen moments of `streamcam live` start-up: does each end the run with exit 130?

    python scripts/ctrl_c_sweep.py [--delays 2.4,2.6,...,4.0]

Each run starts `streamcam live` on a 30 s synthetic clip (browser view on 127.0.0.1, no window),
sends one SIGINT after the delay (seconds from the start; model loading and the warm-up fall in the
first few seconds on a 2-core machine) and prints the exit code and whether a traceback came. A
press the run lost shows as exit 0 after the whole clip played. Nothing is asserted: which moments
fall in the loading depends on the machine.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import REPO

sys.path.insert(0, str(REPO / "tests"))  # the synthetic clips the tests use

from videos import make_video

CLIP_S = 30


def one_press(clip: str, delay: float) -> tuple[int, bool]:
    command = [sys.executable, "-m", "streamcam", "live", clip, "--no-window", "--serve", "127.0.0.1:0"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=CLIP_S + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, "Traceback" in err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delays", default="2.4,2.6,2.8,3.0,3.2,3.4,3.6,3.8,4.0", help="seconds after the start, comma-separated")
    args = ap.parse_args()
    delays = [float(d) for d in args.delays.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        clip = os.path.join(folder, "clip.mp4")
        make_video(clip, CLIP_S * 25, size=(96, 64), fps=25)
        clean = 0
        for delay in delays:
            code, traceback = one_press(clip, delay)
            clean += code == 130 and not traceback
            print(f"SIGINT after {delay:4.1f} s: exit {code}, traceback {'yes' if traceback else 'no'}", flush=True)
    print(f"{clean} of {len(delays)} presses ended the run with exit 130 and no traceback")


if __name__ == "__main__":
    main()
