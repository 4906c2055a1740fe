"""The OpenVINO runtime's precision: float32, bfloat16, or bfloat16 checked by float32 on near ties.

bfloat16 keeps 8 bits of mantissa. Through EfficientNet-Lite0's backbone that moves a frame's
logits by 0.31 at the median and 1.37 at most (scripts/openvino_bench.py --precision, the shared
clips), and where the model hesitates between two classes that flips the top-1 class: plain bf16
kept f32's top-1 on 91.1% of 1886 frames, below the 99% the agreement rule asks.

'bf16+f32' (what --precision auto runs where the CPU has native bf16) runs each batch in bf16
and runs again in f32 the frames whose top-1 logit leads the second by less than RECHECK_MARGIN:
a near tie that bf16's error could have decided. On clear footage almost no frame is a near tie
and the batch costs what bf16 costs; a batch that was mostly near ties sends the next one to f32
whole (a video's frames look like their neighbours), so hesitant footage costs about what f32 costs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from streamcam.core.errors import UsageError

PRECISIONS = ("auto", "float32", "mixed")
PRECISION_TEXT = {"f32": "float32", "bf16": "bfloat16", "bf16+f32": "bfloat16, near ties run again in float32"}

# Logits. scripts/openvino_bench.py --precision, one run on an Intel Xeon with AMX, the five shared
# clips (1886 frames): a margin of 0.25 re-ran 25.5% of the frames and kept f32's top-1 on 99.15%
# (overhead road 96.8%); 0.5 re-ran 45.5% and kept it on 99.89% (each clip >= 99.47%; dashcam: none re-run).
RECHECK_MARGIN = 0.5
# The share of a batch's frames that were near ties above which the next batch runs in f32 whole.
EXACT_BATCH_SHARE = 0.5


def native_bf16(core) -> bool:
    """The CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX), not emulated."""
    if "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: OpenVINO's word for it
        return True
    return "avx512_bf16" in flags or "amx_bf16" in flags


def inference_precision(core, precision: str) -> str:
    """'f32', 'bf16' or 'bf16+f32' for --precision: float32 forces f32; mixed takes plain bf16 where the
    CPU has it natively; auto takes bf16 checked by f32 on near ties (NearTieRecheck) where native."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "float32" or not native_bf16(core):
        return "f32"
    return "bf16" if precision == "mixed" else "bf16+f32"


def near_ties(logits: np.ndarray, margin: float = RECHECK_MARGIN) -> np.ndarray:
    """(N,) bool: the top-1 logit leads the second by less than margin."""
    if logits.shape[1] < 2:
        return np.zeros(len(logits), bool)
    top2 = np.partition(logits, -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0] < margin


Outputs = dict[str, np.ndarray]


class NearTieRecheck:
    """fast(x) -> outputs for every frame, exact(x) for the near ties of fast's logits (or for the
    whole batch after a batch that was mostly near ties). Both take (N, ...) inputs and return
    {name: (N, ...)} with a 'logits' entry; the outputs keep fast's frames where its top-1 led clearly."""

    def __init__(self, fast: Callable[[np.ndarray], Outputs], exact: Callable[[np.ndarray], Outputs], margin: float = RECHECK_MARGIN):
        self.fast, self.exact, self.margin = fast, exact, margin
        self.exact_next = False
        self.frames = 0
        self.exact_frames = 0  # frames whose outputs came from the exact model

    def __call__(self, x: np.ndarray) -> Outputs:
        if self.exact_next:
            out = self.exact(x)
            near = near_ties(out["logits"], self.margin)  # f32's own margins stand in for bf16's
            self.exact_frames += len(x)
        else:
            out = self.fast(x)
            near = near_ties(out["logits"], self.margin)
            if near.any():
                again = self.exact(x[near])
                for name, values in out.items():
                    values[near] = again[name]
                self.exact_frames += int(near.sum())
        self.frames += len(x)
        self.exact_next = bool(near.mean() > EXACT_BATCH_SHARE) if len(x) else self.exact_next
        return out

    @property
    def exact_share(self) -> float:
        return self.exact_frames / self.frames if self.frames else 0.0
