"""Identification accuracy against a brute-force reference and on hand-built cases; label accuracy against
hand-computed argmaxes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

from b2m.evaluate import (bootstrap_ci, embedding_correlation, identification_accuracy, is_label_space,
                          label_accuracy, permutation_chance, score_level, score_predictions)


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


# ---------------------------------------------------------------- label accuracy (a label space's decoders)

def test_label_accuracy_against_hand_computed_argmax():
    predicted = np.array([[0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4], [0.5, 0.5, 0.0]])
    true = np.eye(3)[[1, 0, 1, 2, 1]]
    # argmax of the predicted rows: 1, 0, 2, 2 and 0 (the tie goes to the lower label)
    assert label_accuracy(predicted, true).tolist() == [1.0, 1.0, 0.0, 1.0, 0.0]


def test_a_label_space_is_every_row_one_hot():
    from b2m.features.labels import LabelExtractor

    one_hot = LabelExtractor().embed_clips(pd.DataFrame({"label": ["rock", "jazz", "rock", "pop"]}))
    assert is_label_space(one_hot)
    assert not is_label_space(np.vstack([one_hot, np.zeros(3)]))  # a row without a label
    assert not is_label_space(one_hot + np.eye(4, 3))  # a row with two
    assert not is_label_space(one_hot * 0.5)
    assert not is_label_space(np.random.default_rng(6).standard_normal((4, 3)))


def labelled_predictions(windows=3, seed=7):
    """One-hot true rows of unbalanced labels and noisy predictions in the label space, standardised by the true
    rows' mean and sd (as a decoder's targets): rows (clip_id), predicted, true (standardised) and the scale."""
    rng = np.random.default_rng(seed)
    clip_labels = rng.permutation([0] * 6 + [1] * 3 + [2] * 2 + [3])
    raw_true = np.repeat(np.eye(4)[clip_labels], windows, axis=0)
    raw_predicted = raw_true + 0.6 * rng.standard_normal(raw_true.shape)
    mean, sd = raw_true.mean(axis=0), raw_true.std(axis=0)
    rows = pd.DataFrame({"clip_id": np.repeat([f"c{i}" for i in range(len(clip_labels))], windows)})
    return rows, (raw_predicted - mean) / sd, (raw_true - mean) / sd, np.stack([mean, sd]), raw_predicted, raw_true


def test_score_predictions_adds_label_accuracy_in_the_label_space_with_permutation_chance():
    rows, predicted, true, scale, raw_predicted, raw_true = labelled_predictions()
    plain = score_predictions(predicted, true, rows, n_permutations=50, n_bootstrap=20, seed=0)
    scores = score_predictions(predicted, true, rows, n_permutations=50, n_bootstrap=20, seed=0, label_scale=scale)
    pd.testing.assert_frame_equal(scores[scores.metric != "label_accuracy"].reset_index(drop=True), plain)
    labels = scores[scores.metric == "label_accuracy"].set_index("level")
    assert list(labels.index) == ["window", "clip"]
    hand = np.mean(raw_predicted.argmax(axis=1) == raw_true.argmax(axis=1))
    assert labels.loc["window", "value"] == pytest.approx(hand)
    clip_predicted = raw_predicted.reshape(12, 3, -1).mean(axis=1)
    assert labels.loc["clip", "value"] == pytest.approx(np.mean(clip_predicted.argmax(1) == raw_true[::3].argmax(1)))
    rng = np.random.default_rng(0)  # the permutations: the true rows shuffled, 50 times
    null = [np.mean(raw_predicted.argmax(1) == raw_true[rng.permutation(36)].argmax(1)) for _ in range(50)]
    assert labels.loc["window", "chance_mean"] == pytest.approx(np.mean(null))
    assert labels.loc["window", "chance_sd"] == pytest.approx(np.std(null))
    assert labels.loc["window", "p_permutation"] == pytest.approx((1 + np.sum(np.array(null) >= hand)) / 51)
    assert labels.loc["window", "ci_low"] <= hand <= labels.loc["window", "ci_high"]
    assert (labels.n_items == [36, 12]).all()


def test_label_accuracy_takes_the_argmax_in_the_label_space_not_the_standardised_one():
    """Standardising by the training targets' sd favours the rare labels: item a's row (0.6, 0.4) standardises to
    (-0.5, 0.5) with mean (0.8, 0.2) and sd (0.4, 0.4); its label is still the first."""
    scale = np.array([[0.8, 0.2], [0.4, 0.4]])
    raw_predicted, raw_true = np.array([[0.6, 0.4], [0.1, 0.9]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    predicted, true = [(rows - scale[0]) / scale[1] for rows in (raw_predicted, raw_true)]
    assert label_accuracy(predicted, true).tolist() == [0.0, 1.0]
    scores = score_level("window", predicted, true, np.array(["a", "b"]), 5, 5, 0, label_scale=scale)
    assert scores.set_index("metric").loc["label_accuracy", "value"] == 1.0


def test_long_stimuli_are_identified_by_the_time_courses_of_their_segments():
    """Segments of 15 s (10 windows of 1.5 s) of two pieces of 64.5 and 45 s: the whole ones only (4 + 3), each a
    time course with every dimension's mean over the segment removed; a prediction that tracks the time course but
    carries each piece's mean with the wrong sign (what a drift filter shorter than a piece leaves) is identified
    by its segments perfectly, and not at all by its clip means."""
    from b2m.evaluate.scores import segment_courses

    rng = np.random.default_rng(3)
    lengths = {"piece-a": 43, "piece-b": 30}
    rows = pd.DataFrame([(clip, w * 1.5) for clip, n in lengths.items() for w in range(n)],
                        columns=["clip_id", "start_s"])
    offsets = {"piece-a": rng.standard_normal(6) * 5, "piece-b": rng.standard_normal(6) * 5}
    motion = rng.standard_normal((len(rows), 6))
    true = motion + np.stack([offsets[c] for c in rows.clip_id])
    predicted = motion - np.stack([offsets[c] for c in rows.clip_id])
    courses, stimuli = segment_courses(rows, true, 15.0)
    assert courses.shape == (4 + 3, 10 * 6) and list(stimuli) == ["piece-a"] * 4 + ["piece-b"] * 3
    first = true[:10] - true[:10].mean(axis=0)
    np.testing.assert_allclose(courses[0], first.ravel())
    scores = score_predictions(predicted, true, rows, 20, 50, 0, segment_s=15.0).set_index(["level", "metric"])
    assert scores.loc[("segment", "identification_accuracy"), "value"] == 1.0
    assert scores.loc[("segment", "identification_accuracy"), "n_items"] == 7
    assert scores.loc[("clip", "identification_accuracy"), "value"] == 0.0
    assert "segment" not in set(score_predictions(predicted, true, rows, 20, 50, 0).level)
