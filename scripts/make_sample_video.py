"""Write sample_videos/sample.mp4 and sample_videos/sample.jpg from scikit-image's photos.

The clip is three shots of 1.6 s each (25 fps, 640x360, H.264 yuv420p in MP4), one
scikit-image photo per shot, with a slow Ken Burns move (a 16:9 window that pans and
zooms over the photo, eased in and out) so the objects move and change size on screen:

    1. chelsea (a cat)          - zoom in towards the cat's face
    2. coffee (an espresso cup) - pan from left to right
    3. astronaut                - zoom out from the face

The still is chelsea scaled to 640 pixels wide. Nothing is random: frames are a pure
function of the photos and the constants below.

    python scripts/make_sample_video.py          # needs numpy, opencv, av (PyAV), scikit-image
"""

from __future__ import annotations

import argparse
import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data

OUT_DIR = Path(__file__).resolve().parent.parent / "sample_videos"
WIDTH, HEIGHT = 640, 360
FPS = 25
SHOT_FRAMES = 40  # 1.6 s per shot
CRF = 26

# Per shot: photo loader, start and end window as (centre x, centre y, window width), in
# fractions of the photo's width/height (the window's height is width * 9 / 16 pixels).
SHOTS = [
    ("chelsea", data.chelsea, (0.50, 0.50, 1.00), (0.42, 0.42, 0.72)),
    ("coffee", data.coffee, (0.30, 0.50, 0.60), (0.70, 0.50, 0.60)),
    ("astronaut", data.astronaut, (0.45, 0.24, 0.55), (0.50, 0.30, 1.00)),
]


def ease(t: float) -> float:
    """Cosine ease-in/ease-out on [0, 1]."""
    return 0.5 - 0.5 * math.cos(math.pi * t)


def window_frame(photo: np.ndarray, cx: float, cy: float, win_w: float) -> np.ndarray:
    """Render the 16:9 window of width win_w pixels centred on (cx, cy) to WIDTH x HEIGHT."""
    h, w = photo.shape[:2]
    win_w = min(win_w, w, h * WIDTH / HEIGHT)
    win_h = win_w * HEIGHT / WIDTH
    # Keep the window inside the photo.
    cx = min(max(cx, win_w / 2), w - win_w / 2)
    cy = min(max(cy, win_h / 2), h - win_h / 2)
    scale = WIDTH / win_w  # >= 1 for these photos: windows are upscaled
    # Pixel-centre convention: output pixel (u + 0.5) maps to source x0 + (u + 0.5) / scale.
    x0, y0 = cx - win_w / 2, cy - win_h / 2
    m = np.float64([[scale, 0.0, -scale * x0 + 0.5 * scale - 0.5], [0.0, scale, -scale * y0 + 0.5 * scale - 0.5]])
    return cv2.warpAffine(photo, m, (WIDTH, HEIGHT), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)


def shot_frames(photo: np.ndarray, start: tuple, end: tuple):
    h, w = photo.shape[:2]
    for i in range(SHOT_FRAMES):
        t = ease(i / (SHOT_FRAMES - 1))
        fx, fy, fw = (a + (b - a) * t for a, b in zip(start, end))
        yield window_frame(photo, fx * w, fy * h, fw * w)


def write_video(path: Path) -> int:
    count = 0
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = WIDTH, HEIGHT
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(CRF), "preset": "medium", "threads": "1"}
        for _name, loader, start, end in SHOTS:
            photo = np.ascontiguousarray(loader())
            for rgb in shot_frames(photo, start, end):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = count
                frame.time_base = Fraction(1, FPS)
                for packet in stream.encode(frame):
                    container.mux(packet)
                count += 1
        for packet in stream.encode():
            container.mux(packet)
    return count


def write_still(path: Path) -> None:
    photo = data.chelsea()
    h, w = photo.shape[:2]
    out_w = 640
    out_h = round(h * out_w / w)
    still = cv2.resize(photo, (out_w, out_h), interpolation=cv2.INTER_CUBIC)
    ok = cv2.imwrite(str(path), cv2.cvtColor(still, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise SystemExit(f"could not write {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)

    video = args.out_dir / "sample.mp4"
    frames = write_video(video)
    with av.open(str(video)) as check:
        s = check.streams.video[0]
        decoded = sum(1 for _ in check.decode(s))
        print(
            f"{video}: {video.stat().st_size / 1024:.0f} KiB, {frames} frames written, {decoded} decoded, "
            f"{s.codec_context.width}x{s.codec_context.height} {s.codec_context.name} {s.codec_context.pix_fmt}, "
            f"{frames / FPS:.2f} s at {FPS} fps"
        )

    still = args.out_dir / "sample.jpg"
    write_still(still)
    img = cv2.imread(str(still))
    print(f"{still}: {still.stat().st_size / 1024:.0f} KiB, {img.shape[1]}x{img.shape[0]}")


if __name__ == "__main__":
    main()
