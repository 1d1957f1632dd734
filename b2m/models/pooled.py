"""Pooled decoding over subjects: every subject's responses aligned to one reference space, one ridge decoder
trained on all of them, scored on each subject's own test rows.

Every ds003720 subject heard the same training clips, so the training rows of a fold pair up across subjects by
(clip_id, window). The reference space is the first ``components`` principal components of the reference
subject's paired training rows (``reference``: a subject; with ``shared``, the first subject of the config
starts it). Each subject's map to it is ridge regression (voxels → components, one alpha per component by CV
grouped by run), learned on the paired training rows only; the reference subject's own map is its principal
axes. With ``shared`` (hyperalignment's scheme), ``n_iter`` times more every subject's map is learned again,
to the average of the other subjects' aligned rows (the others only: a subject's own noise is not in its
target), so that no subject's space rules the shared one.

The pooled decoder is ``RidgeDecoder`` on every subject's aligned training rows, its inner CV grouped by
clip group (each clip's first run over the subjects, so that no clip is heard in training and validation
through two subjects). Test rows are mapped with their own subject's map. No test clip of any subject reaches
an alignment or the decoder (``check_training_rows`` guards both fits).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from b2m.errors import InputError
from b2m.evaluate import score_predictions
from b2m.models.contrastive import Basis
from b2m.models.decoding import DecodingResult, RidgeDecoder, TargetFold, load_target_fold
from b2m.models.folds import check_training_rows, inner_groups, run_splits
from b2m.models.ridge import RidgeCV, ridge_form
from b2m.options import POOLED_MODELS, PooledOptions

log = logging.getLogger(__name__)

POOLED_ALIGNED = POOLED_MODELS[0]
SHARED = "shared"


@dataclass
class SubjectFold(TargetFold):
    """One subject's outer fold with its targets (``TargetFold``)."""

    subject: str


@dataclass
class Alignment:
    """A subject's linear map to the reference space: its training mean (voxels,) and coefficients (voxels ×
    components); ``cv_r2``: the mean cross-validated R² of the reference components (1 for the reference's own
    principal axes)."""

    mean: np.ndarray
    coef: np.ndarray
    cv_r2: float
    alpha: float

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Responses (samples × voxels) in the reference space (samples × components)."""
        return ((X - self.mean) @ self.coef).astype(np.float32)


def load_subject_folds(responses: dict, features_path, fold: str) -> list[SubjectFold]:
    """Each subject's fold (``responses``: subject → its window-responses folder, in pooling order) with the
    targets of the feature table at ``features_path``."""
    features = pd.read_parquet(features_path)
    return [SubjectFold(**vars(load_target_fold(folder, features, features_path, fold)),
                        subject=subject) for subject, folder in responses.items()]


def clip_groups(folds: list[SubjectFold]) -> pd.Series:
    """Clip → the first inner-CV group (a run, or the stimulus where runs share stimuli) in which any subject heard
    it: the groups of every inner CV over pooled rows."""
    groups = pd.concat([fold.train_rows[["clip_id", "group"]] for fold in folds])
    return groups.groupby("clip_id")["group"].min()


def grouped(rows: pd.DataFrame, groups: pd.Series) -> pd.DataFrame:
    """``rows`` (clip_id, ...) with ``group`` the clip's group over the pooled subjects."""
    return rows[["clip_id"]].assign(group=rows["clip_id"].map(groups).to_numpy())


def paired_rows(folds: list[SubjectFold]) -> list[np.ndarray]:
    """Per subject, the indices of its training rows for the (clip_id, window) pairs every subject has, in the
    first subject's order."""
    keys = [pd.MultiIndex.from_frame(fold.train_rows[["clip_id", "window"]]) for fold in folds]
    common = keys[0]
    for other in keys[1:]:
        common = common[common.isin(other)]
    if len(common) == 0:
        raise InputError(f"the training rows of {', '.join(f.subject for f in folds)}",
                         "no training (clip, window) is shared by every subject of the pool",
                         "pool subjects who heard the same training clips (ds003720: all five)")
    return [key.get_indexer(common) for key in keys]


def fit_alignment(X: np.ndarray, R: np.ndarray, rows: pd.DataFrame, held_out, alphas, n_folds: int,
                  solver_params: dict) -> Alignment:
    """Ridge from responses X (samples × voxels) to the reference R (samples × components), one alpha per
    component by CV over ``rows``' runs; no row may be of a ``held_out`` clip."""
    from b2m.models.backend import get_backend

    check_training_rows(X, rows, held_out)
    mean, backend = X.mean(axis=0), get_backend()
    Rc = (R - R.mean(axis=0)).astype(np.float32)
    model = RidgeCV(alphas, run_splits(inner_groups(rows), n_folds), solver_params,
                    form=ridge_form(*X.shape)).fit((X - mean).astype(np.float32), Rc)
    r2 = 1 + backend.to_numpy(model.cv_scores_) / np.maximum(Rc.var(axis=0), np.finfo(np.float32).tiny)
    return Alignment(mean.astype(np.float32), backend.to_numpy(model.coef_), float(r2.mean()),
                     float(np.median(backend.to_numpy(model.best_alphas_))))


def align_subjects(folds: list[SubjectFold], spec: PooledOptions, held_out, alphas, n_folds: int,
                   solver_params: dict | None = None) -> dict[str, Alignment]:
    """Every subject's map to the reference space, learned on the paired training rows."""
    index = paired_rows(folds)
    paired = {fold.subject: fold.X_train if np.array_equal(rows, np.arange(len(fold.X_train))) else fold.X_train[rows]
              for fold, rows in zip(folds, index)}  # no copy where every row is paired, in order
    rows = grouped(folds[0].train_rows.iloc[index[0]], clip_groups(folds))
    start = folds[0].subject if spec.reference == SHARED else spec.reference
    basis = Basis.of(paired[start], spec.components)

    def fit(subject, reference):
        return fit_alignment(paired[subject], reference, rows, held_out, alphas, n_folds, solver_params or {})

    reference = basis.project(paired[start])
    alignments = {start: Alignment(basis.mean, basis.axes, 1.0, np.nan),
                  **{s: fit(s, reference) for s in paired if s != start}}
    for iteration in range(spec.n_iter if spec.reference == SHARED else 0):
        aligned = {s: alignments[s].transform(X) for s, X in paired.items()}
        alignments = {s: fit(s, np.mean([aligned[o] for o in paired if o != s], axis=0)) for s in paired}
        log.info("shared space, iteration %d of %d: mean CV R² of the alignments %.3f", iteration + 1, spec.n_iter,
                 np.mean([a.cv_r2 for a in alignments.values()]))
    return alignments


@dataclass
class PooledResult:
    """The pooled fold: per subject its ``DecodingResult`` (the pooled model's test predictions and scores),
    and per subject its alignment (subject, reference, n_voxels, components, cv_r2, alpha)."""

    subjects: dict[str, DecodingResult]
    alignment: pd.DataFrame


def decode_pooled(folds: list[SubjectFold], spec: PooledOptions, alphas, n_folds: int, seed: int,
                  solver_params: dict | None = None) -> PooledResult:
    """Align every subject, train one ridge decoder on all their aligned training rows, score it on each
    subject's test rows."""
    held_out = pd.concat([fold.test_rows["clip_id"] for fold in folds]).unique()
    alignments = align_subjects(folds, spec, held_out, alphas, n_folds, solver_params)
    groups = clip_groups(folds)
    decoder = RidgeDecoder(alphas, n_folds, solver_params or {}).fit(
        np.vstack([alignments[f.subject].transform(f.X_train) for f in folds]),
        np.vstack([f.Y_train for f in folds]), pd.concat([grouped(f.train_rows, groups) for f in folds]), held_out)
    results = {}
    for fold in folds:
        true = decoder.standardise(fold.Y_test)
        predicted = decoder.predict(alignments[fold.subject].transform(fold.X_test))
        scores = score_predictions(predicted, true, fold.test_rows, spec.n_permutations, spec.n_bootstrap, seed)
        results[fold.subject] = DecodingResult(fold.test_rows, true, {POOLED_ALIGNED: predicted},
                                               scores.assign(model=POOLED_ALIGNED), decoder, None)
    table = pd.DataFrame([{"subject": f.subject, "reference": spec.reference, "n_voxels": f.X_train.shape[1],
                           "components": alignments[f.subject].coef.shape[1], "cv_r2": alignments[f.subject].cv_r2,
                           "alpha": alignments[f.subject].alpha} for f in folds])
    log.info("pooled decoder over %d subjects: %d training rows; alignments:\n%s", len(folds),
             sum(len(f.train_rows) for f in folds), table.to_string(index=False))
    return PooledResult(results, table)
