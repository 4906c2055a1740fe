"""The removal score (streamcam.explain.trust.faithfulness) where the evidence is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from scipy.sparse.linalg import spsolve
from skimage import data

from streamcam.explain.trust.faithfulness import FaithfulnessScorer, impute, removal_masks

SIZE = 64


def region_model(images: np.ndarray) -> np.ndarray:
    """A two-class model whose class 1 is driven by one region only: the texture energy (local
    contrast) of the top-left quarter. Imputing that region from its neighbours removes the evidence."""
    quarter = images[:, : SIZE // 2, : SIZE // 2].astype(np.float32).mean(axis=3)
    energy = np.abs(np.diff(quarter, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(quarter, axis=2)).mean(axis=(1, 2))
    p1 = 1 / (1 + np.exp(-(energy - 8.0)))
    return np.stack([1 - p1, p1], axis=1)


def textured_picture(seed: int = 0) -> np.ndarray:
    """Smooth everywhere but the top-left quarter, which is noise (the evidence)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[:SIZE, :SIZE]
    picture = np.repeat((80 + xs + ys)[..., None], 3, axis=2).astype(np.float32)
    picture[: SIZE // 2, : SIZE // 2] += rng.normal(0, 40, (SIZE // 2, SIZE // 2, 3))
    return np.clip(picture, 0, 255).astype(np.uint8)


def quarter_map(top: bool) -> np.ndarray:
    """A 8x8 map hot on the top-left quarter (the truth) or on the bottom-right one (shifted)."""
    cam = np.zeros((8, 8), np.float32)
    if top:
        cam[:4, :4] = 1.0
    else:
        cam[4:, 4:] = 1.0
    return cam + np.linspace(0, 0.01, 64).reshape(8, 8)  # no ties


def scores(cam: np.ndarray, seeds=range(6)):
    faith, control = [], []
    for seed in seeds:
        image = textured_picture(seed)[None]
        probs = region_model(image)
        assert probs[0, 1] > 0.9  # the model sees the evidence
        f, c = FaithfulnessScorer(region_model, seed=seed).score(image, probs, np.array([[1]]), cam[None, None])
        faith.append(f[0, 0])
        control.append(c[0, 0])
    return np.array(faith), np.array(control)


def test_the_true_map_scores_high_a_shifted_one_low_and_the_control_near_zero():
    true_faith, true_control = scores(quarter_map(top=True))
    shifted_faith, shifted_control = scores(quarter_map(top=False))
    assert true_faith.mean() > 0.3, true_faith
    assert shifted_faith.mean() < 0.05, shifted_faith
    controls = np.concatenate([true_control, shifted_control])
    assert abs(controls.mean()) < 0.1, controls
    assert true_faith.mean() > controls.mean() + 0.25


def test_one_call_for_every_removal_of_a_batch():
    calls = []

    def counting(images):
        calls.append(len(images))
        return region_model(images)

    images = np.stack([textured_picture(s) for s in range(3)])
    cams = np.stack([[quarter_map(True), quarter_map(False)]] * 3)
    faith, control = FaithfulnessScorer(counting).score(images, region_model(images), np.array([[1, 0]] * 3), cams, frames=[0, 2])
    assert calls == [2 * 2 * 2 * 2 * 3]  # 2 frames x 2 classes x (map, control) x (MoRF, LeRF) x 3 fractions
    assert np.isnan(faith[1]).all() and not np.isnan(faith[[0, 2]]).any() and faith.shape == control.shape == (3, 2)


def test_masks_remove_the_top_or_the_bottom_fraction():
    relevance = np.arange(100, dtype=np.float32).reshape(10, 10)
    masks = {(order, f): m for order, f, m in removal_masks(relevance)}
    assert masks[("morf", 0.1)].sum() == 10 and masks[("morf", 0.1)][9].all()  # the highest values: the last row
    assert masks[("lerf", 0.3)].sum() == 30 and masks[("lerf", 0.3)][:3].all()


def _linear_imputation(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """ROAD's linear imputation without its noise: each removed pixel is the mean of its four
    neighbours, solved exactly as one sparse system (the reference)."""
    height, width = removed.shape
    index = -np.ones(removed.shape, int)
    index[removed] = np.arange(removed.sum())
    rows, cols, vals = [], [], []
    rhs = np.zeros((removed.sum(), 3))
    for i, (y, x) in enumerate(zip(*np.nonzero(removed), strict=True)):
        neighbours = [(y + dy, x + dx) for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)) if 0 <= y + dy < height and 0 <= x + dx < width]
        rows.append(i)
        cols.append(i)
        vals.append(len(neighbours))
        for ny, nx in neighbours:
            if removed[ny, nx]:
                rows.append(i)
                cols.append(index[ny, nx])
                vals.append(-1.0)
            else:
                rhs[i] += image[ny, nx]
    system = sparse.csr_matrix((vals, (rows, cols)), shape=(len(rhs), len(rhs)))
    out = image.astype(np.float64).copy()
    out[removed] = spsolve(system, rhs)
    return out


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5])
def test_the_cheap_imputation_agrees_with_the_linear_one(fraction):
    image = data.chelsea()[::4, ::4][:72, :100].copy()
    rng = np.random.default_rng(1)
    relevance = np.kron(rng.random((9, 10)), np.ones((8, 10)))  # a smooth-ish map: removed blobs, as CAMs make
    removed = removal_masks(relevance, (fraction,))[0][2]
    ours = impute(image, removed).astype(np.float64)
    reference = _linear_imputation(image, removed)
    mse = ((ours[removed] - reference[removed]) ** 2).mean()
    psnr = 10 * np.log10(255**2 / mse)
    assert psnr > 33, psnr
