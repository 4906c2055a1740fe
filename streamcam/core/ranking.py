"""Ids by score, best first: one ordering for every ranking streamcam shows (classes, map cells).

Equal scores keep the lower id first, as top_k does, so the Keras engine, the OpenVINO runtime,
the CSV and the pages list tied classes in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def best_first(scores, n: int | None = None) -> np.ndarray:
    """Indices along the last axis ordered by score, highest first, ties to the lower index;
    the first n of each row where n is given."""
    order = np.argsort(-np.asarray(scores), axis=-1, kind="stable")
    return order if n is None else order[..., :n]


def ranking(probabilities, first: Sequence[int] = (), n: int | None = None) -> list[int]:
    """The n (default: all) class ids by probability, best first, with `first` (in its own order)
    ahead of the rest."""
    ahead = [int(c) for c in dict.fromkeys(first)]
    order = best_first(probabilities, None if n is None else n + len(ahead))
    return (ahead + [int(c) for c in order if int(c) not in ahead])[:n]
