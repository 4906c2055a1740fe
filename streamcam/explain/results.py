"""What an engine returns for a batch of images (CamBatch): shared by the engine, tiling, the null
engine and everything downstream, so none of them imports another to name it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamcam.core.ranking import best_first


@dataclass(frozen=True)
class CamBatch:
    """Results for N images: probabilities (N, classes), explained class ids (N, K), CAMs (N, K, h, w) in [0, 1].

    local_probabilities (N, K): for each explained class, its largest probability in one region
    of the image: over the feature cells of a pooling head (softmax of A_ij . W + b), or over the
    tiles of a fixed-size head. None where the engine cannot tell.

    After temporal smoothing (explain.trust.TemporalSmoother), the explained classes are the held
    ones and the CAMs are smoothed; probabilities stay the model's own, and three more fields are
    set: probabilities_smoothed (N, classes), top1_changed (N,) 0/1 and cam_r_prev (N,), the
    explained top class's map against the previous frame's after motion compensation (NaN where
    there is no previous map of that class).
    """

    probabilities: np.ndarray
    class_ids: np.ndarray
    cams: np.ndarray
    local_probabilities: np.ndarray | None = None
    probabilities_smoothed: np.ndarray | None = None
    top1_changed: np.ndarray | None = None
    cam_r_prev: np.ndarray | None = None
    faith: np.ndarray | None = None  # (N, K) removal scores (explain.trust.faithfulness); NaN: not scored
    faith_control: np.ndarray | None = None  # (N, K) the same removal ranked by random maps
    cams_raw: np.ndarray | None = None  # after smoothing: the engine's own maps of the shown classes (NaN: carried)

    def top(self, n: int, classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-n class ids and probabilities per image, best first: (N, n) each. classes: the
        model's own (Labels.num_classes), so named groups' columns after them are left out."""
        ids = best_first(self.probabilities[:, :classes], n)
        return ids, np.take_along_axis(self.probabilities, ids, axis=1)
