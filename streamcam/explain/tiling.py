"""Grad-CAM for models with a fixed-size head (Flatten + dense, e.g. VGG16) on larger images.

Such a head only accepts its native input size, so instead of squashing a frame to it, the frame
is covered with overlapping native-size tiles, every tile is explained by the engine, and the
tile maps are blended into one map per class covering the whole frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from streamcam.core.errors import UsageError
from streamcam.core.ranking import best_first

from .results import CamBatch

MIN_OVERLAP = 0.25  # of a tile: an object cut by one tile's border lies well inside a neighbour
MAX_TILE_BATCH = 16  # tiles per engine call when pad_to is not given
_WINDOW_FLOOR = 1e-6  # keeps a tile's weight above 0 at its very edge (no 0/0 anywhere inside)


def tile_origins(height: int, width: int, tile_h: int, tile_w: int, min_overlap: float = MIN_OVERLAP) -> list[tuple[int, int]]:
    """Top-left corners (y, x), row by row, of tiles covering a height x width image.

    Neighbouring tiles overlap by at least min_overlap of a tile, the first and last tiles of a
    row or column are flush with the image borders, and a native-size image is one tile.
    """
    if height < tile_h or width < tile_w:
        raise UsageError(f"image {height}x{width} is smaller than the tile {tile_h}x{tile_w}")
    if not 0 <= min_overlap < 1:
        raise UsageError("min_overlap must be in [0, 1)")
    ys = _axis_origins(height, tile_h, min_overlap)
    xs = _axis_origins(width, tile_w, min_overlap)
    return [(y, x) for y in ys for x in xs]


def _axis_origins(length: int, tile: int, min_overlap: float) -> list[int]:
    if length == tile:
        return [0]
    step = max(1, math.floor(tile * (1 - min_overlap)))  # the largest step that keeps the overlap
    count = -(-(length - tile) // step) + 1
    # Evenly spread: rounded steps are at most ceil((length - tile) / (count - 1)) <= step.
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def explain_tiled(engine, images: np.ndarray, top_k: int = 1, class_ids: Sequence[int] = (), pad_to: int | None = None) -> CamBatch:
    """Explain (N, H, W, 3) uint8 images, H and W at least the model's input size, with native-size tiles.

    engine: a CamEngine (its classifier, and explain() on native-size tiles); the engine calls
    this for larger pictures, so it is passed in rather than imported.

    probabilities (N, classes): for each class, its probability in the tile where it is highest
    (max over tiles), so a row does not sum to 1. The top_k classes of that vector, then
    class_ids, are explained. cams (N, K, h, w) in [0, 1] cover the whole image at the tiles'
    CAM stride s (h = ceil(H / s)); local_probabilities (N, K) are the explained classes' values.
    pad_to: tiles per engine call (the last call padded), so a video traces the compiled call once
    per pass; default: all tiles, at most MAX_TILE_BATCH.
    """
    images = np.asarray(images)
    th, tw = engine.classifier.input_size
    if images.ndim != 4 or not len(images) or images.shape[3] != 3 or images.shape[1] < th or images.shape[2] < tw:
        raise UsageError(f"expected images of shape (N, >={th}, >={tw}, 3), got {images.shape}")
    fixed = [int(c) for c in class_ids]
    labels = engine.classifier.labels
    if any(not 0 <= c < labels.num_classes + len(labels.groups) for c in fixed):
        raise UsageError(f"class ids must be in 0..{labels.num_classes - 1}, or a group's (Labels.group)")
    top_k = min(top_k, engine.classifier.num_classes)
    if top_k < 0 or top_k + len(fixed) == 0:
        raise UsageError("nothing to explain: ask for top_k >= 1 or name classes")
    if pad_to is not None and pad_to < 1:
        raise UsageError("pad_to must be at least 1")

    n, height, width = images.shape[:3]
    origins = tile_origins(height, width, th, tw)
    tiles = np.stack([img[y : y + th, x : x + tw] for img in images for y, x in origins])  # image-major
    batch = pad_to or min(len(tiles), MAX_TILE_BATCH)

    # With top_k 0 the classes are known and one pass gives probabilities and maps. Otherwise the
    # engine needs the classes before it runs, and they depend on every tile: a first pass ranks
    # the classes, a second explains them, one call per distinct class set (one shape each).
    tile_probs, tile_cams = _run(engine, tiles, top_k and 1, () if top_k else fixed, batch)
    image_probs = tile_probs.reshape(n, len(origins), -1).max(axis=1)
    top = best_first(labels.model_part(image_probs), top_k)  # groups only where named
    ids = np.concatenate([top, np.tile(np.asarray(fixed, np.int64), (n, 1))], axis=1).astype(np.int32)
    if top_k:
        tile_cams = np.zeros((len(tiles), ids.shape[1], *tile_cams.shape[2:]), np.float32)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, row in enumerate(ids):
            groups.setdefault(tuple(row.tolist()), []).append(i)
        for key, members in groups.items():
            rows = np.concatenate([np.arange(i * len(origins), (i + 1) * len(origins)) for i in members])
            tile_cams[rows] = _run(engine, tiles[rows], 0, key, batch)[1]

    tile_probs = tile_probs.reshape(n, len(origins), -1)
    tile_cams = tile_cams.reshape(n, len(origins), *tile_cams.shape[1:])
    local = np.take_along_axis(image_probs, ids, axis=1)
    cell_h, cell_w = tile_cams.shape[-2:]
    rows_blend = _axis_blend(height, th, cell_h, sorted({y for y, _ in origins}))
    cols_blend = _axis_blend(width, tw, cell_w, sorted({x for _, x in origins}))
    # Each tile's evidence for each explained class relative to the best tile's: (N, T, K) in [0, 1].
    scales = np.take_along_axis(tile_probs, np.repeat(ids[:, None], len(origins), 1), 2) / np.maximum(local[:, None], 1e-30)
    cams = np.stack([_stitch(tile_cams[i], scales[i], origins, rows_blend, cols_blend) for i in range(n)])
    return CamBatch(image_probs.astype(np.float32), ids, cams, local.astype(np.float32))


def probabilities_tiled(engine, images: np.ndarray) -> np.ndarray:
    """(N, classes) for (N, H, W, 3) images larger than a fixed-size head's input: each class's
    probability in the tile where it is highest, as explain_tiled gives it, from forward passes
    alone (engine.probabilities on native-size tiles, MAX_TILE_BATCH at a time). Removal scores
    compare these with explain_tiled's, so both must mean the same."""
    images = np.asarray(images)
    th, tw = engine.classifier.input_size
    origins = tile_origins(images.shape[1], images.shape[2], th, tw)
    tiles = np.stack([img[y : y + th, x : x + tw] for img in images for y, x in origins])
    probs = np.concatenate([engine.probabilities(tiles[start : start + MAX_TILE_BATCH]) for start in range(0, len(tiles), MAX_TILE_BATCH)])
    return probs.reshape(len(images), len(origins), -1).max(axis=1)


def _run(engine, tiles: np.ndarray, top_k: int, class_ids, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """engine.explain over tiles in calls of exactly `batch` tiles (one compiled shape)."""
    probs, cams = [], []
    for start in range(0, len(tiles), batch):
        result = engine.explain(tiles[start : start + batch], top_k=top_k, class_ids=class_ids, pad_to=batch)
        probs.append(result.probabilities)
        cams.append(result.cams)
    return np.concatenate(probs), np.concatenate(cams)


def _axis_blend(length: int, tile: int, cells: int, origins: list[int]) -> dict[int, np.ndarray]:
    """Per tile origin, an (out, cells) matrix: window weight x linear interpolation of the tile's cells.

    The output has ceil(length / stride) equal cells spanning the image (what a plain resize of the
    map back to the frame assumes); each is sampled at its centre from every tile that holds it.
    """
    out = -(-length * cells // tile)
    centres = (np.arange(out) + 0.5) * length / out
    matrices = {}
    for origin in origins:
        p = (centres - origin) / tile  # position in the tile, 0..1
        inside = (p >= 0) & (p < 1)
        # Raised cosine: 1 at the tile centre, ~0 at its edges, so a tile's influence fades out
        # before its border (where padding distorts CAMs) and the blend has no seams.
        window = np.where(inside, np.maximum(np.sin(np.pi * p) ** 2, _WINDOW_FLOOR), 0.0)
        u = np.clip(p * cells - 0.5, 0, cells - 1)
        low = np.floor(u).astype(int)
        high = np.minimum(low + 1, cells - 1)
        frac = u - low
        matrix = np.zeros((out, cells))
        np.add.at(matrix, (np.arange(out), low), 1 - frac)
        np.add.at(matrix, (np.arange(out), high), frac)
        matrices[origin] = matrix * window[:, None]
    return matrices


def _stitch(cams: np.ndarray, scales: np.ndarray, origins, rows_blend, cols_blend) -> np.ndarray:
    """Blend one image's tile maps (T, K, h, w) into (K, H', W') in [0, 1].

    The engine min-max normalises each tile's map, so a tile with faint evidence would look as
    hot as the tile with the object. The engine cannot return un-normalised maps, so each tile's
    map is scaled by its probability for the class over the best tile's (`scales`, (T, K)).
    """
    num = 0.0
    den = 0.0
    for t, (y, x) in enumerate(origins):
        rows, cols = rows_blend[y], cols_blend[x]
        num = num + np.einsum("hi,kij,wj->khw", rows, cams[t] * scales[t][:, None, None], cols)
        den = den + np.outer(rows.sum(axis=1), cols.sum(axis=1))  # window weights: rows of a matrix sum to them
    maps = num / den
    low = maps.min(axis=(1, 2), keepdims=True)
    spread = maps.max(axis=(1, 2), keepdims=True) - low
    flat = spread <= 1e-6 * np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-30)
    return np.where(flat, 0.0, (maps - low) / np.where(flat, 1.0, spread)).astype(np.float32)
