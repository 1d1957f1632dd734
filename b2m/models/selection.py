"""Voxel selection inside the training folds: the ``whole-mask-selected`` decoder.

The whole-mask ridge decoder (``RidgeDecoder``) on the voxels whose encoding r in the inner CV is among the best
``top`` count, or passes the ``r`` threshold, of one of ``decoding.voxel_selection.candidates`` (``all``: the
whole mask); the candidate is chosen by the inner CV, never by a test score (README, "Voxel selection").

- **Encoding r** (``encoding_r``): in the inner CV of some training rows (run-grouped splits, as every inner CV of
  b2m), ridge from the decoder's targets (the embedding, z-scored) to the responses (centred), both by those rows'
  mean and sd, fit on each split's training rows and scored by the Pearson r of its predictions of the split's
  validation rows, averaged over splits. Each voxel's alpha for a split is chosen by the l2 loss of the *other*
  splits, so the r of a validation row's split never chose its own alpha.
- **The choice** (``candidate_scores``), nested: for each inner split of the fold's training rows, the encoding r
  is computed again from that split's training rows alone (in their own inner CV); each candidate's voxels are
  cut from it, the whole-mask decoder is fit on those rows and voxels (its alphas by its own inner CV) and scored
  on the split's validation rows by the l2 loss its alphas are chosen by (mean over dims, standardised targets).
  A split's validation rows reach neither the selection nor the fit that score it: both are guarded
  (``check_training_rows``) with them held out, beside the outer test clips. The candidate with the best mean
  score over splits wins (ties: the first in the config's order).
- **The refit**: the encoding r of all the fold's training rows (``encoding_r_``), the chosen candidate's voxels
  (``selected_voxels_``), and the whole-mask decoder on them, its alphas by its inner CV over the same rows (where
  the selection saw every inner split: only the alphas, not the candidate, are chosen there).

The nesting needs three training groups at least (a split's training rows make an inner CV of their own).
"""

from __future__ import annotations

import logging
import typing
from dataclasses import dataclass

import numpy as np
import pandas as pd

from b2m.errors import ConfigError
from b2m.models.decoding import RidgeDecoder, factor_sides
from b2m.models.encoding import pearson_per_column
from b2m.models.factors import WHOLE_MASK, ResponseFactors
from b2m.models.folds import check_finite, check_training_rows, inner_groups, run_splits
from b2m.models.ridge import (StimulusSide, best_alpha_indices, ridge_form, shrinkage, stimulus_side,
                             validation_scores)
from b2m.options import ALL_VOXELS, RidgeOptions, SelectionOptions

log = logging.getLogger(__name__)


def zscored(A: np.ndarray) -> np.ndarray:
    """Columns of A (samples × columns) by their mean and sd (a constant column: centred only), float32."""
    sd = A.std(axis=0)
    return ((A - A.mean(axis=0)) / np.where(sd > 0, sd, 1)).astype(np.float32)


def encoding_r(X: np.ndarray, Y: np.ndarray, rows: pd.DataFrame, held_out, ridge: RidgeOptions) -> np.ndarray:
    """Per voxel (voxels,), the encoding r of responses X (samples × voxels) from targets Y (samples × dims) in
    the inner CV of ``rows`` (``ridge.cv_folds`` splits grouped by ``group``, over ``ridge``'s alphas, voxels
    ``ridge.n_targets_batch`` at a time; module docstring). Guarded: no clip of ``held_out`` may be among ``rows``
    (``check_training_rows``)."""
    from b2m.models.backend import get_backend

    check_training_rows(X, rows, held_out)
    backend = get_backend()
    side = stimulus_side(backend.asarray(zscored(Y)), run_splits(inner_groups(rows), ridge.cv_folds),
                         ridge_form(*Y.shape))
    alphas = backend.asarray(ridge.alphas().astype(np.float32))
    responses = (X - X.mean(axis=0)).astype(np.float32)
    step = ridge.n_targets_batch or X.shape[1]
    return np.concatenate([batch_r(side, backend.asarray(responses[:, first:first + step]), alphas,
                                   ridge.n_alphas_batch) for first in range(0, X.shape[1], step)])


def batch_r(side: StimulusSide, responses, alphas, n_alphas_batch: int | None) -> np.ndarray:
    """``encoding_r`` of a batch of voxels (voxels,) from the ``StimulusSide`` of the targets and the centred
    responses (samples × voxels, on the backend)."""
    from b2m.models.backend import get_backend

    backend = get_backend()
    scores = validation_scores(side, responses, alphas, n_alphas_batch)  # splits × alphas × voxels
    r = []
    for split, basis in enumerate(side.splits):
        others = [other for other in range(len(side.splits)) if other != split]
        best, _ = best_alpha_indices(scores[others], alphas)
        weights = shrinkage(side.form, basis.values, alphas)[best].T * backend.matmul(basis.U.T,
                                                                                     responses[basis.train])
        predicted = backend.matmul(basis.projected, weights)  # validation × voxels
        r.append(pearson_per_column(backend.to_numpy(responses[basis.validation]), backend.to_numpy(predicted)))
    return np.mean(r, axis=0)


def kept_voxels(r: np.ndarray, by: str, candidate) -> np.ndarray:
    """The voxels (sorted column indices) a candidate keeps of voxels of encoding r (voxels,): all of them
    (``all``); the ``candidate`` best by r (``by: top``; ties to the lower index); or those whose r exceeds
    ``candidate`` (``by: r``), the best voxel alone where none does."""
    if candidate == ALL_VOXELS:
        return np.arange(len(r))
    if by == "top":
        return np.sort(np.argsort(-r, kind="stable")[:candidate])
    passed = np.flatnonzero(r > candidate)
    return passed if len(passed) else np.array([int(np.argmax(r))])


def candidate_scores(X: np.ndarray, Y: np.ndarray, rows: pd.DataFrame, held_out, ridge: RidgeOptions, by: str,
                     candidates: tuple) -> np.ndarray:
    """The inner CV score of every candidate (splits × candidates; the l2 negative loss): for each split of
    ``rows``, each candidate's voxels by the encoding r of the split's training rows alone, the whole-mask decoder
    fit on them and scored on the validation rows (module docstring). Candidates that keep the same voxels share
    one fit."""
    splits = run_splits(inner_groups(rows), ridge.cv_folds)
    scores = np.empty((len(splits), len(candidates)))
    for split, (train, validation) in enumerate(splits):
        inner_rows, inner_held_out = rows.iloc[train], [*held_out, *rows["clip_id"].iloc[validation]]
        r = encoding_r(X[train], Y[train], inner_rows, inner_held_out, ridge)
        scored = {}
        for number, candidate in enumerate(candidates):
            columns = kept_voxels(r, by, candidate)
            if columns.tobytes() not in scored:
                decoder = RidgeDecoder(ridge).fit(X[train][:, columns], Y[train], inner_rows, inner_held_out)
                error = decoder.predict(X[validation][:, columns]) - decoder.standardise(Y[validation])
                scored[columns.tobytes()] = -float(np.mean(error.astype(np.float64) ** 2))
            scores[split, number] = scored[columns.tobytes()]
    return scores


@dataclass
class SelectedRidgeDecoder:
    """The ``whole-mask-selected`` decoder: the whole-mask ridge decoder on the voxels of the candidate of
    ``selection`` the inner CV chooses (module docstring). Fitted: ``candidates_`` (one row per candidate:
    candidate, cv_score (mean over inner splits), n_voxels (kept of ``encoding_r_``), chosen),
    ``chosen_candidate_``, ``encoding_r_`` (voxels,: in the inner CV of all training rows), ``selected_voxels_``
    (column indices), ``decoder_`` (the fitted ``RidgeDecoder`` on them) and ``training_clips_``."""

    options: typing.ClassVar[tuple] = (RidgeOptions, SelectionOptions)
    pooled: typing.ClassVar[bool] = False
    needs_rois: typing.ClassVar[bool] = False
    ridge: RidgeOptions = RidgeOptions()
    selection: SelectionOptions = SelectionOptions()

    def fit(self, X: np.ndarray, Y: np.ndarray, rows: pd.DataFrame, held_out,
            factors: ResponseFactors | None = None) -> "SelectedRidgeDecoder":
        """Fit on responses X (samples × voxels) and targets Y (samples × dims), as ``RidgeDecoder.fit`` (``rows``,
        ``held_out``); ``factors``: the fold's factorisation, whose whole-mask sides the refit takes where the
        whole mask is chosen."""
        check_finite("the targets", Y)
        training_clips = check_training_rows(X, rows, held_out)
        candidates = self.selection.values()
        if len(np.unique(inner_groups(rows))) < 3:
            raise ConfigError("decoding.models: whole-mask-selected nests the inner CV in each inner split: it "
                              "needs three training groups (runs) at least; fix: leave it out of decoding.models "
                              "for a fold of fewer training runs")
        scores = candidate_scores(X, Y, rows, held_out, self.ridge, self.selection.by, candidates).mean(axis=0)
        chosen = candidates[int(np.argmax(scores))]
        r = encoding_r(X, Y, rows, held_out, self.ridge)
        columns = kept_voxels(r, self.selection.by, chosen)
        whole = len(columns) == X.shape[1]
        sides = factor_sides(factors, WHOLE_MASK, rows, self.ridge.cv_folds) if whole else None
        decoder = RidgeDecoder(self.ridge)._fit_sides(X[:, columns], Y, rows, held_out, sides)
        self.candidates_ = pd.DataFrame({"candidate": [str(c) for c in candidates], "cv_score": scores,
                                         "n_voxels": [len(kept_voxels(r, self.selection.by, c)) for c in candidates],
                                         "chosen": [c == chosen for c in candidates]})
        self.chosen_candidate_, self.encoding_r_, self.selected_voxels_ = chosen, r, columns
        self.decoder_, self.training_clips_ = decoder, training_clips
        log.info("voxel selection (by %s): candidate %s chosen by the inner CV, %d of %d voxels; scores %s",
                 self.selection.by, chosen, len(columns), X.shape[1],
                 ", ".join(f"{c}: {s:.4f}" for c, s in zip(candidates, scores)))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted targets (samples × dims, standardised) from the selected voxels of X (samples × voxels)."""
        return self.decoder_.predict(X[:, self.selected_voxels_])
