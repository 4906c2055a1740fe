"""Write generated pictures as an H.264 clip (the benchmarks' and the GPU check's test clips)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import numpy as np


def write_h264(path: Path, pictures: Iterable[np.ndarray], fps: int, width: int, height: int) -> Path:
    """Encode RGB uint8 pictures (height, width, 3) with libx264 (ultrafast, crf 23), one per 1/fps s."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i, rgb in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
