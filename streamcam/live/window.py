"""The OpenCV window of `streamcam live`: q, Esc or closing the window stops."""

from __future__ import annotations

import os
import sys

import numpy as np

from ..errors import UsageError

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
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, rgb: np.ndarray) -> bool:
        self._last = rgb
        self.cv2.imshow(self.title, self.cv2.cvtColor(rgb, self.cv2.COLOR_RGB2BGR))
        return self._still_open(1)

    def idle(self, status: str) -> bool:
        """No new frame (reconnecting, stalled): keep the window responsive, with the state on it."""
        if self._last is not None:
            from ..render import LabelStrip

            self.cv2.imshow(self.title, self.cv2.cvtColor(LabelStrip().annotate(self._last, [status]), self.cv2.COLOR_RGB2BGR))
        return self._still_open(30)

    def _still_open(self, wait_ms: int) -> bool:
        key = self.cv2.waitKey(wait_ms) & 0xFF
        return key not in QUIT_KEYS and self.cv2.getWindowProperty(self.title, self.cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        try:
            self.cv2.destroyWindow(self.title)
            self.cv2.waitKey(1)  # let the GUI toolkit process the destruction
        except self.cv2.error:
            pass  # closed by the user already
