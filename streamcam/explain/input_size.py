"""`--input-size`: the size frames are resized to before the model sees them.

- `224x224` (the default): every frame squashed to the model's square input, as the ancestor did;
- `WxH`: exactly that size;
- `N`: the long side is N and the frame's aspect ratio is kept (a 16:9 dashcam frame at 640
  becomes 640x352, not a distorted square), so small road users keep their shape.

Both sides are rounded to the model's stride (the feature grid's cell: 32 for EfficientNet-Lite0,
16 for VGG16's block5_conv3), at least one cell, so the CAM grid covers the picture exactly.
Pooling-head models run their trunk at that size; fixed-head models (VGG16) are explained in
overlapping tiles of their own input size (tiling.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from streamcam.core.errors import UsageError

DEFAULT_INPUT_SIZE = "224x224"
_MAX_SIDE = 4096  # far beyond any useful size; keeps a typo from asking for gigabytes


@dataclass(frozen=True)
class InputSize:
    """A parsed --input-size: exact (width, height), or `long_side` with the aspect ratio kept."""

    width: int | None = None
    height: int | None = None
    long_side: int | None = None

    @classmethod
    def parse(cls, spec: str | int | InputSize) -> InputSize:
        if isinstance(spec, InputSize):
            return spec
        text = str(spec).strip().lower()
        exact = re.fullmatch(r"(\d+)\s*x\s*(\d+)", text)
        if exact:
            size = cls(width=int(exact.group(1)), height=int(exact.group(2)))
        elif text.isdigit():
            size = cls(long_side=int(text))
        else:
            raise UsageError(f"--input-size must be WxH (e.g. 224x224) or the long side N (e.g. 640), got {spec!r}")
        if any(v is not None and not 1 <= v <= _MAX_SIDE for v in (size.width, size.height, size.long_side)):
            raise UsageError(f"--input-size sides must be between 1 and {_MAX_SIDE}, got {spec!r}")
        return size

    def for_frame(self, frame_width: int, frame_height: int, stride: int = 32) -> tuple[int, int]:
        """(height, width) of the model input for a frame of this size, both multiples of `stride`."""
        if self.long_side is None:
            width, height = self.width, self.height
        elif frame_width >= frame_height:
            width, height = self.long_side, self.long_side * frame_height / max(frame_width, 1)
        else:
            width, height = self.long_side * frame_width / max(frame_height, 1), self.long_side
        return _to_stride(height, stride), _to_stride(width, stride)

    def __str__(self) -> str:
        return str(self.long_side) if self.long_side is not None else f"{self.width}x{self.height}"


def _to_stride(side: float, stride: int) -> int:
    return max(stride, round(side / stride) * stride)
