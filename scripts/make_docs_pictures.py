"""The README's pictures, made from the bundled sample clip (run it again after a visible change).

    python scripts/make_docs_pictures.py          # writes docs/overlay.png and docs/review.png

docs/overlay.png: one frame of `streamcam analyze sample_videos/sample.mp4`'s overlay video.
docs/review.png: `streamcam review` of the same clip, as headless Chromium shows it at 1400x900
(Playwright driving the system's chromium: nothing is downloaded). Both are scaled down and
reduced to a 256-colour palette (Pillow) so the README stays light. Needs the `test` extra
(playwright, pillow) and Debian's chromium.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path("sample_videos") / "sample.mp4"  # relative to the repository: the page's title shows it as given
DOCS = REPO / "docs"


def streamcam(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "streamcam", *args, "-q"], check=True, cwd=REPO)


def frame_at(video: Path, seconds: float) -> np.ndarray:
    """The decoded frame shown at `seconds`, BGR."""
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= seconds - 1e-6:
                return frame.to_ndarray(format="bgr24")
    raise SystemExit(f"{video} ends before {seconds} s")


def write_small_png(picture: np.ndarray, path: Path, width: int) -> None:
    """Scaled to `width`, reduced to a 256-colour palette, saved as PNG."""
    from PIL import Image

    height = round(picture.shape[0] * width / picture.shape[1])
    small = cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(small[:, :, ::-1]).quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size // 1024} KB, {width}x{height})")


def screenshot(page_path: Path, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(page_path.as_uri())
        page.wait_for_function("() => window.streamcamReview && document.getElementById('frame-index').textContent !== ''")
        page.wait_for_timeout(500)
        page.screenshot(path=str(out))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--at", type=float, default=2.0, help="the moment of the clip to show, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        streamcam("analyze", str(SAMPLE), "-o", str(tmp / "analyze"))
        write_small_png(frame_at(tmp / "analyze" / "sample.gradcam.mp4", args.at), DOCS / "overlay.png", 480)
        streamcam("review", str(SAMPLE), "--around", f"{args.at:g}", "--span", "4", "-o", str(tmp / "review"))
        shot = tmp / "review.png"
        screenshot(tmp / "review" / "sample.review.html", shot)
        write_small_png(cv2.imread(str(shot)), DOCS / "review.png", 900)


if __name__ == "__main__":
    main()
