"""An engine that costs nothing: what `analyze` does around the model, measured on its own.

On a GPU the engine costs almost nothing per frame (an XLA-compiled head-only Grad-CAM runs at
thousands of images a second), so decode, resize, draw and encode set the pace. NullEngine
returns fixed probabilities and a fixed CAM of the right shapes at once, so scripts/bench.py can
measure those stages, and their overlap, on any machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np

from streamcam.core.ranking import ranking

from .results import CamBatch


class NullEngine:
    """Duck-types CamEngine.explain for the pipeline: same shapes, no model call."""

    def __init__(self, classifier):
        self.classifier = classifier  # labels, stride and name for the outputs
        self.method = SimpleNamespace(name="null")
        rng = np.random.default_rng(0)
        self._probabilities = rng.dirichlet(np.full(classifier.num_classes, 0.1)).astype(np.float32)
        self._cache: dict = {}

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return np.tile(self._with_groups(), (len(images), 1))

    def _with_groups(self) -> np.ndarray:
        """The fixed probabilities with each named group's sum appended (Labels.group)."""
        groups = self.classifier.labels.group_matrix()
        return np.concatenate([self._probabilities, groups @ self._probabilities]).astype(np.float32)

    def explain(self, images: np.ndarray, top_k: int = 1, class_ids: Sequence[int | str] | str = (), pad_to: int | None = None) -> CamBatch:
        n, height, width = images.shape[:3]
        class_ids = self.classifier.labels.ids(class_ids)  # names as CamEngine takes them
        stride = self.classifier.stride
        key = (n, height, width, top_k, tuple(class_ids), len(self.classifier.labels.groups))
        if key not in self._cache:
            ids = ranking(self._probabilities, n=top_k) + list(class_ids)
            h, w = -(-height // stride), -(-width // stride)
            y, x = np.mgrid[0:h, 0:w]
            cam = np.exp(-(((x - 0.6 * w) / (0.3 * w)) ** 2 + ((y - 0.4 * h) / (0.3 * h)) ** 2)).astype(np.float32)
            self._cache[key] = CamBatch(
                np.tile(self._with_groups(), (n, 1)),
                np.tile(np.array(ids, np.int64), (n, 1)),
                np.tile(cam, (n, len(ids), 1, 1)),
                None,
            )
        return self._cache[key]
