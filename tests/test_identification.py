"""Identification accuracy against a brute-force reference and on hand-built cases."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr

from b2m.evaluate import identification_accuracy, permutation_chance


def brute_force(predicted, true):
    n = len(predicted)
    corr = np.array([[pearsonr(predicted[i], true[j])[0] for j in range(n)] for i in range(n)])
    return np.array([np.mean([corr[i, i] > corr[i, j] for j in range(n) if j != i]) for i in range(n)])


def test_matches_brute_force_on_random_data():
    rng = np.random.default_rng(0)
    true = rng.standard_normal((30, 16))
    predicted = true + 2.0 * rng.standard_normal((30, 16))
    np.testing.assert_allclose(identification_accuracy(predicted, true), brute_force(predicted, true))


def test_perfect_prediction_scores_one_and_reversed_scores_zero():
    rng = np.random.default_rng(1)
    true = rng.standard_normal((20, 8))
    assert identification_accuracy(true, true).tolist() == [1.0] * 20
    assert identification_accuracy(-true, true).mean() < 0.1


def test_ties_count_as_failures():
    true = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [3.0, 1.0, 2.0]])
    # item 0 ties with item 1 (identical rows): [C_00 > C_01] is False
    assert identification_accuracy(true, true).tolist() == [0.5, 0.5, 1.0]


def test_noise_sits_at_measured_chance():
    rng = np.random.default_rng(2)
    predicted, true = rng.standard_normal((200, 32)), rng.standard_normal((200, 32))
    null = permutation_chance(predicted, true, n_permutations=100, seed=0)
    assert abs(null.mean() - 0.5) < 0.01
    assert abs(identification_accuracy(predicted, true).mean() - 0.5) < 3 * null.std() + 0.01
