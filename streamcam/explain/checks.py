"""The input checks every engine makes (the Keras engine and the OpenVINO runtime alike), so both
refuse the same inputs with the same line."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from streamcam.core.errors import UsageError


def pooling_images(images, stride: int) -> np.ndarray:
    """(N, H, W, 3) images for a pooling head: any H, W of at least the model's stride."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[3] != 3 or min(images.shape[1:3]) < stride:
        raise UsageError(f"expected images of shape (N, H, W, 3) with H, W >= {stride} (the model's stride), got {images.shape}")
    return images


def class_id_array(class_ids: Sequence[int], num_classes: int, num_groups: int = 0) -> np.ndarray:
    """The named class ids as an int32 array: each one of the model's classes, or a group's id
    (num_classes + g, as Labels.group gives it)."""
    fixed = np.asarray(list(class_ids), dtype=np.int32).reshape(-1)
    if fixed.size and (fixed.min() < 0 or fixed.max() >= num_classes + num_groups):
        groups = ", or a group's (Labels.group)" if num_groups else ""
        raise UsageError(f"class ids must be in 0..{num_classes - 1}{groups}")
    return fixed
