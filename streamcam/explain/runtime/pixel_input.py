"""uint8 pixels straight into the OpenVINO model: the classifier's preprocessing as the graph's first step.

Every built-in scaling (models.PREPROCESSING) is affine per pixel, x @ matrix + offset with a 3x3
matrix (a channel swap for 'caffe'), so OpenVINO's preprocessing API can run it inside the
compiled model on a uint8 input: the frames cross into OpenVINO at a quarter of the bytes and skip
NumPy's float conversion. `python scripts/openvino_bench.py --pixels` (AMD EPYC, 2 cores, AVX-512
BF16, two runs; dashcam frames, batch 8 at 224x224) gave uint8 against NumPy preprocessing 1.04x
and 1.12x in bf16, 1.09x and 1.10x under auto, 0.98x and 1.02x in f32, with the same logits. A custom
preprocess that is not affine keeps the NumPy path (affine_pixels gives None).
"""

from __future__ import annotations

import numpy as np

from streamcam.backends import ops

PROBE_TOLERANCE = 1e-5  # relative to the largest output: float32 rounding, not a different function


def affine_pixels(preprocess) -> tuple[np.ndarray, np.ndarray] | None:
    """(matrix (3, 3), offset (3,)) float32 with preprocess(x) == x @ matrix + offset for RGB pixels
    x (..., 3) in 0..255, or None when preprocess is no such map. Found from black and the three
    primaries, then checked on random pixels."""
    primaries = np.concatenate([np.zeros((1, 3)), 255.0 * np.eye(3)]).astype(np.float32)
    pixels = np.random.default_rng(0).integers(0, 256, (64, 3)).astype(np.float32)
    try:  # a probe: a function that cannot take a small batch is not a per-pixel map either
        at_primaries, at_pixels = (_apply(preprocess, p) for p in (primaries, pixels))
    except Exception:
        return None
    if at_primaries is None or at_pixels is None:
        return None
    offset = at_primaries[0]
    matrix = (at_primaries[1:] - offset) / np.float32(255.0)
    expected = pixels @ matrix + offset
    scale = max(1.0, float(np.abs(expected).max()))
    if not np.all(np.isfinite(expected)) or np.abs(at_pixels - expected).max() > PROBE_TOLERANCE * scale:
        return None
    return matrix.astype(np.float32), offset.astype(np.float32)


def _apply(preprocess, pixels: np.ndarray) -> np.ndarray | None:
    """preprocess on the pixels (P, 3), P even, as one 2 x P/2 image (two rows and columns, so a
    crop or a filter shows); None when the shape changes."""
    image = pixels.reshape(1, 2, -1, 3)
    out = np.asarray(ops.convert_to_numpy(preprocess(image)), dtype=np.float32)
    return out.reshape(pixels.shape) if out.shape == image.shape else None


def with_pixel_input(ov, model, matrix: np.ndarray, offset: np.ndarray):
    """A copy of model (float input: the preprocessed image) that takes uint8 RGB pixels and runs
    x @ matrix + offset on them first."""
    from openvino import opset13
    from openvino.preprocess import PrePostProcessor

    model = model.clone()  # the preprocessor edits its model in place
    steps = PrePostProcessor(model)
    steps.input().tensor().set_element_type(ov.Type.u8)

    def affine(node):
        return opset13.add(opset13.matmul(node, opset13.constant(matrix), False, False), opset13.constant(offset)).output(0)

    steps.input().preprocess().convert_element_type(ov.Type.f32).custom(affine)
    return steps.build()
