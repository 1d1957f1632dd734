"""Top-n class agreement of an original and its reconstruction (Denk et al. 2023, Figure 4).

The paper does not give the formula; b2m uses the overlap of the two top-n sets. With s(x) a classifier's
class scores for clip x, T_n(x) the n classes of highest score (ties to the lower class index), originals
o_i and reconstructions r_i:

    agreement_n = mean over clips i of |T_n(o_i) ∩ T_n(r_i)| / n

1 when every reconstruction's n most likely classes are the original's, and n / n_classes in expectation
when the two are unrelated.
"""

from __future__ import annotations

import numpy as np


def top_n_classes(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n highest-scoring classes of each row (items × n), best first; ties to the lower index."""
    if not 1 <= n <= scores.shape[1]:
        raise ValueError(f"n = {n} outside 1..{scores.shape[1]} classes")
    return np.argsort(-np.asarray(scores), axis=1, kind="stable")[:, :n]


def class_agreement(original_scores: np.ndarray, reconstruction_scores: np.ndarray, n: int) -> np.ndarray:
    """|T_n(o_i) ∩ T_n(r_i)| / n for every clip i (items,), from class scores (items × classes)."""
    if original_scores.shape != reconstruction_scores.shape:
        raise ValueError(f"class scores differ in shape: {original_scores.shape} vs {reconstruction_scores.shape}")
    top_original, top_reconstruction = top_n_classes(original_scores, n), top_n_classes(reconstruction_scores, n)
    shared = (top_original[:, :, None] == top_reconstruction[:, None, :]).any(axis=2).sum(axis=1)
    return shared / n
