"""Identification accuracy against a brute-force reference and on hand-built cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import pearsonr

from b2m.evaluate import (bootstrap_ci, embedding_correlation, identification_accuracy, permutation_chance,
                          score_predictions)


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


def test_embedding_correlation_is_each_rows_own_pearson_r():
    rng = np.random.default_rng(3)
    true, predicted = rng.standard_normal((12, 9)), rng.standard_normal((12, 9))
    expected = [pearsonr(predicted[i], true[i])[0] for i in range(12)]
    np.testing.assert_allclose(embedding_correlation(predicted, true), expected)


def test_bootstrap_over_clips_matches_a_loop_and_covers_the_mean():
    rng = np.random.default_rng(4)
    clips = np.repeat([f"c{i}" for i in range(30)], 10)
    values = rng.random(len(clips)) + np.repeat(rng.normal(0, 0.3, 30), 10)
    low, high = bootstrap_ci(values, clips, n_bootstrap=2000, seed=1)
    assert low < values.mean() < high
    draws = np.random.default_rng(1).integers(0, 30, size=(2000, 30))  # the same draws, clip by clip
    per_clip = values.reshape(30, 10)
    means = np.array([per_clip[d].mean() for d in draws])
    np.testing.assert_allclose([low, high], np.quantile(means, [0.025, 0.975]))
    # resampling whole clips is wider than resampling windows when clips differ
    naive = np.quantile([values[rng.integers(0, 300, 300)].mean() for _ in range(2000)], [0.025, 0.975])
    assert high - low > 1.5 * (naive[1] - naive[0])


def test_identical_true_rows_leave_identification_undefined():
    """A genre fold of the one-hot genre space: every test row is the same genre, nothing to identify."""
    rows = pd.DataFrame({"clip_id": np.repeat(["rock.00001", "rock.00002"], 5)})
    true = np.tile(np.eye(10)[9], (10, 1))
    predicted = np.random.default_rng(5).standard_normal((10, 10))
    scores = score_predictions(predicted, true, rows, n_permutations=10, n_bootstrap=10, seed=0)
    assert scores.value.isna().all() and set(scores.level) == {"window", "clip"}
    assert scores.ci_low.isna().all() and (scores.n_items == [10, 10, 2, 2]).all()
