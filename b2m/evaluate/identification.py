"""Identification accuracy (Denk et al. 2023): with C the Pearson correlations between predicted row
i and true row j, item i scores acc_i = mean over j ≠ i of [C_ii > C_ij]. Chance is 0.5."""

from __future__ import annotations

import numpy as np

from b2m.options import DecodingOptions, RidgeOptions


def correlation_matrix(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pearson correlation of every predicted row with every true row (items × items)."""
    def standardise(a):
        a = np.asarray(a, dtype=np.float64)
        a = a - a.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(a, axis=1, keepdims=True)
        return a / np.where(norm == 0, 1.0, norm)

    return standardise(predicted) @ standardise(true).T


def identification_accuracy(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """acc_i for every item (items × dims inputs, same row order); ties count as failures."""
    if predicted.shape != true.shape:
        raise ValueError(f"predicted {predicted.shape} and true {true.shape} differ in shape")
    if len(predicted) < 2:
        raise ValueError("identification needs at least two items")
    corr = correlation_matrix(predicted, true)
    beaten = corr < np.diag(corr)[:, None]  # [C_ii > C_ij]; the diagonal itself is False
    return beaten.sum(axis=1) / (len(corr) - 1)


def permutation_chance(predicted: np.ndarray, true: np.ndarray,
                       n_permutations: int = DecodingOptions.n_permutations,
                       seed: int = RidgeOptions.seed, metric=identification_accuracy) -> np.ndarray:
    """Mean of ``metric`` (per-item scores of predicted and true rows; default identification accuracy) with the
    true rows shuffled: the measured null (n_permutations,)."""
    rng = np.random.default_rng(seed)
    return np.array([metric(predicted, true[rng.permutation(len(true))]).mean() for _ in range(n_permutations)])
