"""core.ranking: the one ordering of classes and cells, best first, ties to the lower id."""

from __future__ import annotations

import numpy as np

from streamcam.core.ranking import best_first, ranking


def test_best_first_orders_highest_first_and_keeps_ties_in_id_order():
    scores = np.array([0.1, 0.4, 0.2, 0.4, 0.0, 0.2], np.float32)
    assert best_first(scores).tolist() == [1, 3, 2, 5, 0, 4]
    assert best_first(scores, 3).tolist() == [1, 3, 2]


def test_best_first_ranks_each_row_of_a_batch_on_its_own():
    scores = np.array([[0.0, 1.0, 1.0], [3.0, 2.0, 1.0]])
    np.testing.assert_array_equal(best_first(scores, 2), [[1, 2], [0, 1]])


def test_best_first_agrees_with_top_k_on_a_large_tied_row():
    """What the Keras engine's top_k does: a row of all-equal logits gives 0, 1, 2, ..."""
    assert best_first(np.zeros(1000, np.float32), 5).tolist() == [0, 1, 2, 3, 4]


def test_ranking_puts_the_first_classes_ahead_once_and_cuts_at_n():
    probabilities = np.array([0.1, 0.5, 0.3, 0.05, 0.05])
    assert ranking(probabilities) == [1, 2, 0, 3, 4]
    assert ranking(probabilities, first=[3, 1, 3], n=3) == [3, 1, 2]
    assert ranking(probabilities, n=0) == []
    assert all(type(c) is int for c in ranking(probabilities, first=[np.int64(4)]))
