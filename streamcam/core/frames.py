"""The unit that flows through the pipeline, and the upright pictures it can give.

A Frame from a VideoSource keeps the decoder's own picture (an `av.VideoFrame`, usually YUV 4:2:0)
and converts only what a stage asks for: the model's small RGB input straight from the YUV planes,
the YUV planes themselves for the overlay video, and the full-size RGB picture only when
something draws on it in RGB (pictures, the review page, the live view). At 720p the full-size
RGB conversion costs more than decoding; a CSV-only run never pays it.
"""

from __future__ import annotations

import cv2
import numpy as np

_CV2_ROTATE = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}
# Decoded formats with the fast path: 4:2:0 planar YUV, limited range (video's usual format).
FAST_FORMATS = frozenset({"yuv420p"})
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


def _bt601_limited_to_rgb() -> np.ndarray:
    """The 3 x 4 affine map (cv2.transform) from limited-range BT.601 Y, U, V to RGB, the
    conversion cv2.COLOR_YUV2RGB_I420 makes."""
    kr, kb = 0.299, 0.114
    kg = 1 - kr - kb
    luma, chroma = 255 / 219, 255 / 112
    m = np.array(
        [[luma, 0, chroma * (1 - kr)], [luma, -chroma * (1 - kb) * kb / kg, -chroma * (1 - kr) * kr / kg], [luma, chroma * (1 - kb), 0]]
    )
    return np.hstack([m, -m @ np.array([[16.0], [128.0], [128.0]])]).astype(np.float32)


_YUV_TO_RGB = _bt601_limited_to_rgb()


def rotation_k(rotation: float) -> int:
    """Quarter turns for np.rot90 (counter-clockwise) that make a frame upright.

    FFmpeg's display-matrix rotation (PyAV's frame.rotation) is the counter-clockwise
    angle the decoded picture must be turned by to display it: 90 -> rot90(k=1),
    -90 -> k=3, +-180 -> k=2. Verified against cv2.VideoCapture's autorotation.
    """
    return round(rotation / 90) % 4


def upright(picture: np.ndarray, rotation: float) -> np.ndarray:
    """Apply display rotation to an H x W (x C) picture; always returns a contiguous array."""
    k = rotation_k(rotation)
    if k:
        return cv2.rotate(picture, _CV2_ROTATE[k])  # same result as np.rot90(picture, k), but faster
    return np.ascontiguousarray(picture)


def i420_planes(i420: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y (H x W), U and V (H/2 x W/2) planes of an I420 array of shape (H * 3/2, W)."""
    height, width = i420.shape[0] * 2 // 3, i420.shape[1]
    chroma = i420[height:].reshape(2, height // 2, width // 2)
    return i420[:height], chroma[0], chroma[1]


def _plane_view(plane, height: int, width: int) -> np.ndarray:
    """A decoded plane as a (height, width) array without copying (rows may be padded)."""
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:height, :width]


def _upright_planes(decoded, rotation: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w, h = decoded.width, decoded.height
    planes = (
        _plane_view(decoded.planes[0], h, w),
        _plane_view(decoded.planes[1], h // 2, w // 2),
        _plane_view(decoded.planes[2], h // 2, w // 2),
    )
    return tuple(upright(p, rotation) for p in planes) if rotation_k(rotation) else planes


def has_fast_path(decoded) -> bool:
    """Whether a decoded av.VideoFrame is limited-range YUV 4:2:0 of even size (the I420 path)."""
    return decoded.format.name in FAST_FORMATS and decoded.width % 2 == 0 and decoded.height % 2 == 0 and decoded.color_range != _FULL_RANGE


class Frame:
    """One video frame, upright (rotation metadata applied).

    index: the frame's number in the source, counted from the file's first frame (0-based), also
        after a seek and with sampling; after a seek in a variable-rate file it is estimated from
        the timestamp (VideoSource.frame_index_estimated says so).
    pts: the presentation timestamp in the source stream's time base (None if unknown).
    time_s: presentation time in seconds.
    rgb: H x W x 3 uint8, converted from `decoded` the first time it is asked for.
    decoded: the decoder's picture (av.VideoFrame) with `rotation`, when the frame came from one.
    """

    __slots__ = ("_decoded", "_i420", "_planes", "_rgb", "_rotation", "index", "pts", "time_s")

    def __init__(self, index: int, pts: int | None, time_s: float, rgb: np.ndarray | None = None, *, decoded=None, rotation: float = 0):
        if rgb is None and decoded is None:
            raise ValueError("a Frame needs rgb or a decoded picture")
        self.index, self.pts, self.time_s = index, pts, time_s
        self._rgb, self._i420, self._planes = rgb, None, None
        self._decoded, self._rotation = decoded, rotation

    def __repr__(self) -> str:
        return f"Frame(index={self.index}, pts={self.pts}, time_s={self.time_s:.6f}, size={self.width}x{self.height})"

    @property
    def width(self) -> int:
        if self._rgb is not None:
            return self._rgb.shape[1]
        return self._decoded.height if rotation_k(self._rotation) % 2 else self._decoded.width

    @property
    def height(self) -> int:
        if self._rgb is not None:
            return self._rgb.shape[0]
        return self._decoded.width if rotation_k(self._rotation) % 2 else self._decoded.height

    @property
    def rgb(self) -> np.ndarray:
        if self._rgb is None:
            i420 = self.i420
            if i420 is not None:  # OpenCV's SIMD BT.601 conversion, as FFmpeg's default but faster
                self._rgb = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
            else:
                self._rgb = upright(self._decoded.to_ndarray(format="rgb24"), self._rotation)
        return self._rgb

    @property
    def yuv_planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The upright Y (H x W), U and V (H/2 x W/2) planes, views of the decoder's picture where
        no rotation is needed; None when the frame was not decoded as limited-range 4:2:0 of even
        size (then use `rgb`)."""
        if self._planes is None and self._decoded is not None and has_fast_path(self._decoded):
            self._planes = _upright_planes(self._decoded, self._rotation)
        return self._planes

    @property
    def i420(self) -> np.ndarray | None:
        """The upright picture as one I420 array (the planes stacked, shape (H * 3/2, W)), or None
        as for yuv_planes."""
        if self._i420 is None and self.yuv_planes is not None:
            y = self._planes[0]
            i420 = np.empty((y.shape[0] * 3 // 2, y.shape[1]), np.uint8)
            for target, plane in zip(i420_planes(i420), self._planes):
                target[:] = plane
            self._i420 = i420
        return self._i420

    def model_input(self, size: tuple[int, int]) -> np.ndarray:
        """The picture at (height, width) as RGB uint8, for the model.

        From I420: resize_rgb's two steps done on the planes (when the frame is more than twice the
        model size; otherwise each plane straight to its size), then converted to RGB. The model
        input keeps full colour resolution while the full-size RGB picture is never made (PSNR
        > 40 dB against resizing it, tests/test_frames.py).
        """
        from .preprocess import resize_rgb

        planes = self.yuv_planes if self._rgb is None else None
        if planes is None or size[0] % 2 or size[1] % 2:
            return resize_rgb(self.rgb, size)
        y, u, v = planes
        height, width = size
        if y.shape[0] > 2 * height and y.shape[1] > 2 * width:
            # Luma linear to twice the size, then the exact 2:1 area step; chroma (half size already)
            # straight to the size. Averaging commutes with the affine YUV -> RGB map, so converting
            # the three small planes at the end gives the picture that converting at twice the size
            # and then averaging would (PSNR > 45 dB), in two thirds of the time.
            y = resize_rgb(y, size)  # its own two steps: linear to twice the size, then 2:1 area
            u, v = (cv2.resize(c, (width, height), interpolation=cv2.INTER_LINEAR) for c in (u, v))
            return cv2.transform(cv2.merge((y, u, v)), _YUV_TO_RGB)
        small = np.empty((height * 3 // 2, width), np.uint8)
        for target, plane in zip(i420_planes(small), planes):
            target[:] = resize_rgb(plane, target.shape)
        return cv2.cvtColor(small, cv2.COLOR_YUV2RGB_I420)

    def small_grey(self, width: int) -> np.ndarray:
        """The picture's brightness at `width` pixels across (aspect ratio kept), uint8: from the
        decoder's luma plane when there is one (no colour conversion), else from the RGB picture."""
        planes = self.yuv_planes if self._rgb is None else None
        luma = planes[0] if planes is not None else cv2.cvtColor(self.rgb, cv2.COLOR_RGB2GRAY)
        height = max(1, round(luma.shape[0] * width / luma.shape[1]))
        if luma.shape[1] > 4 * width and luma.shape[0] > 4 * height:
            # Every k-th pixel to twice the size, then 2:1 averages: half the time of averaging the
            # whole plane (960x540 -> 160x90: 0.10 against 0.20 ms), and plenty for optical flow.
            luma = cv2.resize(luma, (2 * width, 2 * height), interpolation=cv2.INTER_NEAREST)
        return cv2.resize(luma, (width, height), interpolation=cv2.INTER_AREA)

    def restamped(self, index: int, pts: int | None, time_s: float) -> Frame:
        """The same picture under other numbers (live sources are stamped on the session's clock)."""
        frame = Frame(index, pts, time_s, self._rgb, decoded=self._decoded, rotation=self._rotation)
        frame._i420, frame._planes = self._i420, self._planes
        return frame
