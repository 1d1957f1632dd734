"""Label decoding accuracy: where a decoded space is a label space (every row one-hot: one 1, zeros elsewhere, as
the ``labels`` extractor writes), the decoded label of a row is its largest dimension, and item i scores
[argmax predicted_i == argmax true_i]. Chance is measured by shuffling the true rows (``permutation_chance``):
1 / labels only where the labels are balanced."""

from __future__ import annotations

import numpy as np


def is_label_space(targets: np.ndarray) -> bool:
    """Whether every row of ``targets`` (rows × dims, unstandardised: a feature table's embeddings) is one-hot."""
    targets = np.asarray(targets)
    return bool(targets.size) and bool(np.isin(targets, (0, 1)).all() and (targets.sum(axis=1) == 1).all())


def label_accuracy(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """[argmax predicted_i == argmax true_i] for every item (items,) of rows in the label space (items × labels,
    unstandardised); a tie in a predicted row goes to the lower label."""
    if predicted.shape != true.shape:
        raise ValueError(f"predicted {predicted.shape} and true {true.shape} differ in shape")
    return (np.argmax(predicted, axis=1) == np.argmax(true, axis=1)).astype(np.float64)
