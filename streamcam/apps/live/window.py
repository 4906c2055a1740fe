"""The OpenCV window of `streamcam live`: q, Esc or closing the window stops."""

from __future__ import annotations

import os
import sys

import numpy as np

from streamcam.core.errors import UsageError

from .stats import PLAYING

QUIT_KEYS = (ord("q"), ord("Q"), 27)  # 27: Esc


def has_display() -> bool:
    """Whether a window can be opened here (Linux needs an X or Wayland display)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class WindowViewer:
    """Shows pictures in one resizable window; show() and idle() return False once the user quits."""

    def __init__(self, title: str = "streamcam live"):
        if not has_display():
            raise UsageError("no display to show a window on; serve the view to a browser with --serve, or record with --record")
        import cv2

        self.cv2, self.title = cv2, title
        self._last: np.ndarray | None = None
        # Resizable, aspect kept, and no Qt toolbar: the picture is shown 1:1 at first (see show()).
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)

    def show(self, rgb: np.ndarray) -> bool:
        if self._last is None:  # open at the frame's size (Qt's default is 400x300 whatever the frame)
            self.cv2.resizeWindow(self.title, rgb.shape[1], rgb.shape[0])
        self._last = rgb
        self.cv2.imshow(self.title, self.cv2.cvtColor(rgb, self.cv2.COLOR_RGB2BGR))
        return self._still_open(1)

    def idle(self, status: str) -> bool:
        """No new frame yet: keep the window responsive. While the source plays on, the picture stays
        as it is (a file paced at 5 fps, or a busy machine, leaves gaps between frames, and a banner in
        each gap made the window flicker); otherwise (connecting, stalled, reconnecting) it is dimmed
        with the state written on it."""
        if self._last is not None and status != PLAYING:
            self.cv2.imshow(self.title, self.cv2.cvtColor(_with_banner(self._last, status), self.cv2.COLOR_RGB2BGR))
        return self._still_open(30)

    def _still_open(self, wait_ms: int) -> bool:
        if self.cv2.waitKey(wait_ms) & 0xFF in QUIT_KEYS:
            return False
        try:
            return self.cv2.getWindowProperty(self.title, self.cv2.WND_PROP_VISIBLE) >= 1
        except self.cv2.error:  # Qt: closing the last window deletes its GUI receiver, and queries raise
            return False

    def close(self) -> None:
        try:
            self.cv2.destroyWindow(self.title)
            self.cv2.waitKey(1)  # let the GUI toolkit process the destruction
        except self.cv2.error:
            pass  # closed by the user already


def _with_banner(rgb: np.ndarray, text: str) -> np.ndarray:
    """The last picture dimmed, with the source state written across its middle."""
    import cv2

    out = (rgb // 2).astype(np.uint8)
    h, w = out.shape[:2]
    scale = max(0.5, min(1.5, w / 640))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    cv2.putText(out, text, ((w - tw) // 2, (h + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2, cv2.LINE_AA)
    return out
