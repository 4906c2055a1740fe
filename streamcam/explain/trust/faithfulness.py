"""Does the heatmap show what the model used? A ROAD-style removal score for every explained map.

ROAD (Rong et al., ICML 2022): remove the pixels a map ranks most relevant (MoRF) or least
relevant (LeRF) and watch the class's probability. Removed pixels are not blurred or blacked out
(scattered masks leak their shape and destroy texture: a random 20% of blurred pixels dropped a
class almost as much as the map's top pixels did); they are imputed from their neighbours, so
what is gone is the evidence, not the picture's smoothness. ROAD's noisy linear imputation solves
a sparse linear system per image (each removed pixel the mean of its four neighbours); here that
system is approached from a good start instead: each removed pixel first gets the Gaussian-weighted
mean of the kept pixels around it (normalised convolution; on a picture 8x smaller for pixels far
from any kept one), then JACOBI_STEPS sweeps of the four-neighbour mean, plus the same small noise.
tests/test_trust_faithfulness.py shows the two agree: PSNR above 33 dB against the exact solve on
a natural picture with 10-50% removed (26-28 dB from the start alone).

Score, in probability units, for fractions 10%, 30% and 50% of the pixels:
    faith = mean(MoRF drop) - mean(LeRF drop),   drop = p(original) - p(imputed)
(ROAD's LeRF curve minus its MoRF curve, written with drops). Above 0: the map's top pixels carry
more of the class than its bottom ones. The control is the same removal ranked by a random map
of the same grid (so the same smoothness): a map no better than chance reads about 0 there.
Below FAITH_LOW a frame counts as low trust in the summary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import cv2
import numpy as np

from streamcam.core.ranking import best_first

FRACTIONS = (0.1, 0.3, 0.5)
FAITH_LOW = 0.02  # probability units: removing the map's top pixels costs the class less than 2 points more than its bottom ones
NOISE_GREY = 2.0  # ROAD's imputation noise, in grey levels (its 0.01 of the 0..1 range, rounded)
NEAR_SIGMA = 2.0  # pixels of the neighbourhood a removed pixel is first filled from; farther ones on a picture 8x smaller
JACOBI_STEPS = 20
_NEIGHBOUR_MEAN = np.float32([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]])


def _normalised_mean(known: np.ndarray, keep: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """The Gaussian-weighted mean of the kept pixels around each pixel, and how much weight it had."""
    weight = cv2.GaussianBlur(keep, (0, 0), sigma)
    total = cv2.GaussianBlur(known, (0, 0), sigma)
    return total / np.maximum(weight, 1e-3)[..., None], weight


def impute(image: np.ndarray, removed: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """image (H, W, 3) uint8 with the `removed` (H, W) bool pixels replaced by a weighted mean of
    the kept pixels around each (normalised convolution: near, then on a picture 8x smaller for
    pixels far from any kept one), then JACOBI_STEPS sweeps of the four-neighbour mean, plus ROAD's
    small noise. Whole-picture arithmetic with masks as weights, no gathers."""
    height, width = removed.shape
    keep = (~removed).astype(np.float32)
    gone = cv2.merge([1.0 - keep] * 3)
    known = image.astype(np.float32) * cv2.merge([keep] * 3)
    near, weight = _normalised_mean(known, keep, NEAR_SIGMA)
    filled = known + near * gone
    far = removed & (weight <= 1e-3)
    if far.any():
        small = (max(1, width // 8), max(1, height // 8))
        coarse, coarse_weight = _normalised_mean(
            cv2.resize(known, small, interpolation=cv2.INTER_AREA), cv2.resize(keep, small, interpolation=cv2.INTER_AREA), 2.0
        )
        if coarse_weight.max() <= 1e-3:  # nothing kept anywhere: mid grey
            coarse[:] = 127.0
        filled[far] = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)[far]
    average = np.empty_like(filled)
    for _ in range(JACOBI_STEPS):  # towards the linear system's solution: each removed pixel its neighbours' mean
        cv2.filter2D(filled, -1, _NEIGHBOUR_MEAN, dst=average, borderType=cv2.BORDER_REPLICATE)
        cv2.multiply(average, gone, dst=average)
        cv2.add(known, average, dst=filled)
    if rng is not None:
        filled += rng.standard_normal(filled.shape, dtype=np.float32) * NOISE_GREY * gone
    return np.clip(np.rint(filled), 0, 255).astype(np.uint8)


def removal_masks(relevance: np.ndarray, fractions=FRACTIONS) -> list[tuple[str, float, np.ndarray]]:
    """('morf' | 'lerf', fraction, (H, W) bool mask) for each fraction; ties broken by position."""
    order = best_first(relevance.ravel())
    masks = []
    for order_name, ranked in (("morf", order), ("lerf", order[::-1])):
        for fraction in fractions:
            mask = np.zeros(relevance.size, bool)
            mask[ranked[: round(fraction * relevance.size)]] = True
            masks.append((order_name, fraction, mask.reshape(relevance.shape)))
    return masks


def _upsampled(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    return cv2.resize(np.asarray(cam, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


class FaithfulnessScorer:
    """Scores the explained maps of a batch with one call of `predict` for all its removals.

    predict(images (M, H, W, 3) uint8) -> probabilities (M, classes): the engine's
    CamEngine.probabilities. seed: the imputation noise and the control maps are seeded, so a
    run's scores can be repeated.
    """

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], fractions=FRACTIONS, seed: int = 0):
        self.predict = predict
        self.fractions = tuple(fractions)
        self._rng = np.random.default_rng(seed)

    def score(self, images: np.ndarray, probabilities: np.ndarray, class_ids: np.ndarray, cams: np.ndarray, frames=None):
        """(faith, control), each (N, K): for image n, its class_ids[n, k] explained by cams[n, k].

        frames: which of the N images to score (the others are NaN); default all.
        """
        n_images, k_classes = class_ids.shape
        faith = np.full((n_images, k_classes), np.nan, np.float32)
        control = np.full((n_images, k_classes), np.nan, np.float32)
        chosen = range(n_images) if frames is None else frames
        pictures, plan = [], []
        for n in chosen:
            height, width = images[n].shape[:2]
            for k in range(k_classes):
                for kind, cam in (("map", cams[n, k]), ("control", self._rng.random(np.shape(cams[n, k])))):
                    for order, _fraction, mask in removal_masks(_upsampled(cam, height, width), self.fractions):
                        pictures.append(impute(images[n], mask, self._rng))
                        plan.append((n, k, kind, order))
        if not pictures:
            return faith, control
        removed = self.predict(np.stack(pictures))
        drops: dict[tuple, list[float]] = {}
        for (n, k, kind, order), p in zip(plan, removed, strict=True):
            c = int(class_ids[n, k])
            drops.setdefault((n, k, kind, order), []).append(float(probabilities[n, c] - p[c]))
        for (n, k, kind, order), values in drops.items():
            if order == "morf":
                score = np.mean(values) - np.mean(drops[(n, k, kind, "lerf")])
                (faith if kind == "map" else control)[n, k] = score
        return faith, control


class FaithfulnessRun:
    """Scores every N-th frame of a run (counted over the analysed frames, so --every and --fps
    change nothing) and gathers the clip's figures for its summary."""

    def __init__(self, engine, every: int = 1, seed: int = 0, summarised: str = "top1"):
        self.every = every
        self.summarised = summarised  # what the first explained column is: 'top1', or the first named class
        self.scorer = FaithfulnessScorer(engine.probabilities, seed=seed)
        self._seen = 0
        self._faith: list[float] = []
        self._control: list[float] = []

    def score(self, images: np.ndarray, batch):
        """The batch with faith and faith_control (N, K) set: NaN off the stride."""
        chosen = [n for n in range(len(images)) if (self._seen + n) % self.every == 0]
        self._seen += len(images)
        faith, control = self.scorer.score(images, batch.probabilities, batch.class_ids, batch.cams, chosen)
        for n in chosen:
            if faith.shape[1]:
                self._faith.append(float(faith[n, 0]))
                self._control.append(float(control[n, 0]))
        return replace(batch, faith=faith, faith_control=control)

    def summary(self) -> dict:
        """The first explained class's scores over the scored frames: the top class, or with only
        named classes (--cam-classes without topN) the first of them, as 'class' says."""
        scored = len(self._faith)
        return {
            "class": self.summarised,
            "every": self.every,
            "frames_scored": scored,
            "mean": round(float(np.mean(self._faith)), 4) if scored else None,
            "control_mean": round(float(np.mean(self._control)), 4) if scored else None,
            "low_threshold": FAITH_LOW,
            "low_share": round(sum(f < FAITH_LOW for f in self._faith) / scored, 4) if scored else None,
            "fractions": list(self.scorer.fractions),
        }
