"""Brain-scored reconstruction (after Ciferri, Ferrante & Toschi 2025): a test clip's candidate reconstructions
(corpus tracks, generated samples) ranked by how well the encoding model of the reconstruction's space predicts
the clip's measured response from each candidate's embedding.

The encoder (``b2m.models.encoding.RidgeEncoder``, as ``b2m encode`` fits it) is fit on the outer fold's training
rows only. The voxels scored are those it predicts well in its inner CV: each inner split's encoder, fit on the
other runs' rows, predicts the split's validation rows, and every voxel's Pearson r over those out-of-split
predictions ranks it (training rows only: the test responses reach neither a fit nor the voxel choice). A
candidate's score is the Pearson r over the chosen voxels between its predicted response, averaged over its windows,
and the clip's measured response, averaged over the clip's windows and repeats. Nothing here reads a file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from b2m.models.encoding import RidgeEncoder, pearson_per_column
from b2m.models.folds import inner_groups, run_splits

if TYPE_CHECKING:
    from b2m.data.windowed import EncodingFold


def inner_cv_r(encoder: RidgeEncoder, X: np.ndarray, Y: np.ndarray, rows: pd.DataFrame, held_out) -> np.ndarray:
    """Each voxel's Pearson r (voxels,) between the training responses Y (samples × voxels) and their predictions
    by a fresh copy of ``encoder`` fit without the rows' inner CV split (``run_splits`` over ``rows``' groups, the
    encoder's ``n_folds``); each split's fit has the outer test clips ``held_out`` and its own validation clips
    held out."""
    predicted = np.zeros_like(Y, dtype=np.float64)
    for train, validation in run_splits(inner_groups(rows), encoder.n_folds):
        inner_rows, validation_rows = rows.iloc[train], rows.iloc[validation]
        held = pd.Index(held_out).union(pd.Index(validation_rows["clip_id"].unique()))
        fitted = dataclasses.replace(encoder).fit(X[train], Y[train], inner_rows.reset_index(drop=True), held)
        predicted[validation] = fitted.predict(X[validation], validation_rows.reset_index(drop=True))
    return pearson_per_column(Y, predicted)


def chosen_voxels(r: np.ndarray, top: int, min_r: float) -> np.ndarray:
    """Indices of the voxels scored: those with ``r`` above ``min_r``, at most the ``top`` best (0: every one), in
    voxel order."""
    passing = np.flatnonzero(r > min_r)
    if top and len(passing) > top:
        passing = np.sort(passing[np.argsort(-r[passing], kind="stable")[:top]])
    return passing


@dataclass
class BrainScorer:
    """Scores candidates of a test clip by their encoding model's prediction of its measured response (see the
    module's docstring). ``encoder``: unfitted settings; ``voxels``: at most this many voxels, the best by inner-CV
    r (0: no cap); ``min_r``: and only those above it. Fitted state: ``inner_r_`` (voxels,), ``voxels_`` (indices of
    the voxels scored), ``encoder_`` (fit on every training row)."""

    encoder: RidgeEncoder
    voxels: int = 500
    min_r: float = 0.0

    def fit(self, X: np.ndarray, Y: np.ndarray, rows: pd.DataFrame, held_out) -> "BrainScorer":
        """Features X (samples × dims) and responses Y (samples × voxels) of the outer fold's training rows
        (``rows``: clip_id, group, and run, event for the delays); ``held_out``: the outer test fold's clips."""
        self.inner_r_ = inner_cv_r(self.encoder, X, Y, rows, held_out)
        self.voxels_ = chosen_voxels(self.inner_r_, self.voxels, self.min_r)
        self.encoder_ = dataclasses.replace(self.encoder).fit(X, Y, rows, held_out)
        return self

    def predicted_response(self, windows: np.ndarray) -> np.ndarray:
        """A candidate's predicted response over the chosen voxels, averaged over its windows: (voxels_,) from its
        window embeddings (windows × dims, in window order)."""
        rows = pd.DataFrame({"clip_id": "candidate", "window": np.arange(len(windows))})
        return self.encoder_.predict(windows, rows)[:, self.voxels_].mean(axis=0)

    def score(self, candidates: list[np.ndarray], measured: np.ndarray) -> np.ndarray:
        """Each candidate's score (candidates,): Pearson r between its predicted response (``predicted_response``
        of its window embeddings, windows × dims) and the clip's ``measured`` response (voxels,: the mean over its
        windows and repeats), over the chosen voxels."""
        predicted = np.stack([self.predicted_response(windows) for windows in candidates], axis=1)
        target = np.repeat(measured[self.voxels_, None], predicted.shape[1], axis=1)
        return pearson_per_column(target, predicted)


def fit_brain_scorer(fold: EncodingFold, scorer: BrainScorer) -> BrainScorer:
    """``scorer`` fit on the fold's training rows of its one feature space (the test responses are not passed)."""
    data, [(X_train, _)] = fold.data, list(fold.features.values())
    return scorer.fit(X_train, data.X_train, data.train_rows, data.test_rows["clip_id"])
