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
an alignment or the decoder (``check_training_rows`` guards every subject's rows and both fits).

A new subject from minutes of its data (``decode-kshot``): the pool and its shared space are fitted on every
subject but one (``pool_options``); the left-out subject is mapped to the shared space either from the first m
minutes of its own training runs (``first_minutes``, ``align_new_subject``: ridge to the pool's mean aligned
rows of the same clips and windows, ``SharedTemplate``) or, with m = 0, anatomically (``anatomical_alignment``:
the pool's map rows of the voxels at its voxels' positions). Its responses reach neither the template nor the
decoder.

``PooledDecoder`` is an estimator as the one-subject decoders (``b2m.models.decoding``) are, but its ``fit`` and
``predict`` take each subject's arrays: lists in one subject order, which ``fit``'s ``subjects`` names.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from dataclasses import dataclass

import numpy as np
import pandas as pd

from b2m.errors import InputError
from b2m.models.contrastive import Basis
from b2m.models.decoding import RidgeDecoder
from b2m.models.folds import check_finite, check_training_rows, inner_groups, run_splits
from b2m.models.ridge import RidgeCV, ridge_form
from b2m.options import PooledOptions, RidgeOptions

log = logging.getLogger(__name__)

SHARED = "shared"


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


def clip_groups(rows: list[pd.DataFrame]) -> pd.Series:
    """Clip → the first inner-CV group (a run, or the stimulus where runs share stimuli) in which any subject heard
    it (``rows``: each subject's training rows): the groups of every inner CV over pooled rows."""
    groups = pd.concat([subject_rows[["clip_id", "group"]] for subject_rows in rows])
    return groups.groupby("clip_id")["group"].min()


def grouped(rows: pd.DataFrame, groups: pd.Series) -> pd.DataFrame:
    """``rows`` (clip_id, ...) with ``group`` the clip's group over the pooled subjects."""
    return rows[["clip_id"]].assign(group=rows["clip_id"].map(groups).to_numpy())


def paired_rows(rows: list[pd.DataFrame], subjects: list[str]) -> list[np.ndarray]:
    """Per subject (``rows``: each one's training rows), the indices of its training rows for the (clip_id, window)
    pairs every subject has, in the first subject's order."""
    keys = [pd.MultiIndex.from_frame(subject_rows[["clip_id", "window"]]) for subject_rows in rows]
    common = keys[0]
    for other in keys[1:]:
        common = common[common.isin(other)]
    if len(common) == 0:
        raise InputError(f"the training rows of {', '.join(subjects)}",
                         "no training (clip, window) is shared by every subject of the pool",
                         "pool subjects who heard the same training clips (ds003720: all five)")
    return [key.get_indexer(common) for key in keys]


def fit_alignment(X: np.ndarray, R: np.ndarray, rows: pd.DataFrame, held_out, ridge: RidgeOptions) -> Alignment:
    """Ridge from responses X (samples × voxels) to the reference R (samples × components), one alpha per
    component by CV over ``rows``' runs; no row may be of a ``held_out`` clip."""
    from b2m.models.backend import get_backend

    check_training_rows(X, rows, held_out)
    mean, backend = X.mean(axis=0), get_backend()
    Rc = (R - R.mean(axis=0)).astype(np.float32)
    model = RidgeCV(ridge.alphas(), run_splits(inner_groups(rows), ridge.cv_folds), ridge.solver_params(),
                    form=ridge_form(*X.shape)).fit((X - mean).astype(np.float32), Rc)
    r2 = 1 + backend.to_numpy(model.cv_scores_) / np.maximum(Rc.var(axis=0), np.finfo(np.float32).tiny)
    return Alignment(mean.astype(np.float32), backend.to_numpy(model.coef_), float(r2.mean()),
                     float(np.median(backend.to_numpy(model.best_alphas_))))


def align_subjects(X: list[np.ndarray], rows: list[pd.DataFrame], subjects: list[str], spec: PooledOptions,
                   held_out, ridge: RidgeOptions) -> dict[str, Alignment]:
    """Every subject's map to the reference space, learned on the paired training rows (``X``, ``rows``: each
    subject's training responses and rows, in the order of ``subjects``)."""
    index = paired_rows(rows, subjects)
    paired = {subject: X_s if np.array_equal(i, np.arange(len(X_s))) else X_s[i]
              for subject, X_s, i in zip(subjects, X, index)}  # no copy where every row is paired, in order
    pair_rows = grouped(rows[0].iloc[index[0]], clip_groups(rows))
    start = subjects[0] if spec.reference == SHARED else spec.reference
    basis = Basis.of(paired[start], spec.components)

    def fit(subject, reference):
        return fit_alignment(paired[subject], reference, pair_rows, held_out, ridge)

    reference = basis.project(paired[start])
    alignments = {start: Alignment(basis.mean, basis.axes, 1.0, np.nan),
                  **{s: fit(s, reference) for s in paired if s != start}}
    for iteration in range(spec.n_iter if spec.reference == SHARED else 0):
        aligned = {s: alignments[s].transform(X_s) for s, X_s in paired.items()}
        alignments = {s: fit(s, np.mean([aligned[o] for o in paired if o != s], axis=0)) for s in paired}
        log.info("shared space, iteration %d of %d: mean CV R² of the alignments %.3f", iteration + 1, spec.n_iter,
                 np.mean([a.cv_r2 for a in alignments.values()]))
    return alignments


@dataclass
class PooledDecoder:
    """The ``pooled-aligned`` decoder: every subject aligned to the reference space of ``pooling``, one ridge
    decoder (``ridge``'s settings) on all their aligned training rows. Fitted: ``subjects_`` (the order of the
    lists), ``alignments_`` (subject → ``Alignment``), ``decoder_`` (the ``RidgeDecoder`` over the aligned rows),
    ``alignment_`` (one row per subject: subject, reference, n_voxels, components, cv_r2, alpha) and
    ``training_clips_``."""

    options: typing.ClassVar[tuple] = (RidgeOptions, PooledOptions)  # what the constructor takes, in order
    pooled: typing.ClassVar[bool] = True
    needs_rois: typing.ClassVar[bool] = False
    ridge: RidgeOptions = RidgeOptions()
    pooling: PooledOptions = PooledOptions()

    def fit(self, X: list[np.ndarray], Y: list[np.ndarray], rows: list[pd.DataFrame], held_out,
            subjects: list[str]) -> "PooledDecoder":
        """Fit on each subject's training responses X (samples × voxels, theirs), targets Y (samples × dims) and
        rows (clip_id, window, group), lists in the order of ``subjects``; ``held_out``: every subject's outer
        test clips, none of which may be among any subject's rows (``check_training_rows``)."""
        for X_s, Y_s, rows_s in zip(X, Y, rows, strict=True):
            check_training_rows(X_s, rows_s, held_out)
            check_finite("the targets", Y_s)
        self.subjects_ = list(subjects)
        self.alignments_ = align_subjects(X, rows, self.subjects_, self.pooling, held_out, self.ridge)
        groups = clip_groups(rows)
        self.decoder_ = RidgeDecoder(self.ridge).fit(
            np.vstack([self.alignments_[s].transform(X_s) for s, X_s in zip(self.subjects_, X)]), np.vstack(Y),
            pd.concat([grouped(rows_s, groups) for rows_s in rows]), held_out)
        self.training_clips_ = self.decoder_.training_clips_
        self.alignment_ = pd.DataFrame([{"subject": s, "reference": self.pooling.reference, "n_voxels": X_s.shape[1],
                                         "components": self.alignments_[s].coef.shape[1],
                                         "cv_r2": self.alignments_[s].cv_r2, "alpha": self.alignments_[s].alpha}
                                        for s, X_s in zip(self.subjects_, X, strict=True)])
        log.info("pooled decoder over %d subjects: %d training rows; alignments:\n%s", len(X),
                 sum(len(rows_s) for rows_s in rows), self.alignment_.to_string(index=False))
        return self

    def predict(self, X: list[np.ndarray]) -> list[np.ndarray]:
        """Each subject's predicted targets (samples × dims, standardised) from their responses (samples ×
        voxels), a list in the order of ``subjects_``."""
        return [self.decoder_.predict(self.alignments_[s].transform(X_s))
                for s, X_s in zip(self.subjects_, X, strict=True)]

    def standardise(self, Y: np.ndarray) -> np.ndarray:
        """Targets (samples × dims) in the standardised space of the pooled training rows."""
        return self.decoder_.standardise(Y)


# ---------------------------------------------------------------- a new subject from minutes of its data


class Unaligned(ValueError):
    """A k-shot point that cannot be made (its reason: the message), recorded in the job's table, not fitted."""


def pool_options(spec: PooledOptions, left_out: str) -> PooledOptions:
    """``spec`` over every subject but ``left_out``: a reference subject that is left out gives way to the shared
    space (the left-out subject's responses may start nothing of the pool)."""
    reference = SHARED if spec.reference == left_out else spec.reference
    return dataclasses.replace(spec, subjects=tuple(s for s in spec.subjects if s != left_out), reference=reference)


def run_lengths(rows: pd.DataFrame) -> pd.Series:
    """Each training run's length in seconds, by run (``rows``: a subject's training rows): its last row's end
    (``run_end_s``, seconds from the run's start)."""
    return rows.groupby("run")["run_end_s"].max().sort_index()


def training_seconds(rows: pd.DataFrame, column: str = "run_start_s") -> pd.Series:
    """Each training row's ``column`` (``run_start_s``: its onset, ``run_end_s``: its end; seconds from its run's
    start) in the subject's training time (seconds): the training runs (``run``) in run order laid end to end, each
    as long as ``run_lengths`` says."""
    lengths = run_lengths(rows)
    return rows[column] + rows["run"].map(lengths.cumsum() - lengths)


def first_minutes(rows: pd.DataFrame, minutes: float) -> np.ndarray:
    """Indices (into ``rows``, a subject's training rows: run, run_start_s, run_end_s) of the rows of its first
    ``minutes`` of training data: those whose window ends in training time (``training_seconds``) within
    60 × ``minutes`` seconds of stimulus, in onset order (so in run order). A window's response is its scans
    shifted by the response lag, so the scans used reach that lag (seconds) past the last window's end."""
    onset, end = training_seconds(rows).to_numpy(), training_seconds(rows, "run_end_s").to_numpy()
    order = np.argsort(onset, kind="stable")
    return order[end[order] <= 60 * minutes]


@dataclass
class SharedTemplate:
    """The shared space's training rows of a fitted pool: for each (clip_id, window) every pool subject has
    (``keys``), the mean of the pool subjects' aligned rows (``rows``: pairs × components)."""

    keys: pd.MultiIndex
    rows: np.ndarray

    @classmethod
    def of(cls, decoder: "PooledDecoder", X: list[np.ndarray], rows: list[pd.DataFrame]) -> "SharedTemplate":
        """The template of ``decoder`` (fitted) from the training responses and rows it was fitted on (lists in
        the order of its ``subjects_``)."""
        index = paired_rows(rows, decoder.subjects_)
        aligned = [decoder.alignments_[s].transform(X_s[i]) for s, X_s, i in zip(decoder.subjects_, X, index,
                                                                                  strict=True)]
        return cls(pd.MultiIndex.from_frame(rows[0].iloc[index[0]][["clip_id", "window"]]),
                   np.mean(aligned, axis=0, dtype=np.float64).astype(np.float32))

    def pair(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Indices of ``rows`` (clip_id, window) whose pair the template holds, and the template's rows for them."""
        found = self.keys.get_indexer(pd.MultiIndex.from_frame(rows[["clip_id", "window"]]))
        inside = np.flatnonzero(found >= 0)
        return inside, self.rows[found[inside]]


def align_new_subject(template: SharedTemplate, X: np.ndarray, rows: pd.DataFrame, held_out,
                      ridge: RidgeOptions) -> Alignment:
    """A left-out subject's map to the shared space, learned from its training responses X (samples × voxels)
    and rows (clip_id, window: e.g. its ``first_minutes``) paired with the template's rows of the same (clip_id,
    window); the inner CV grouped by clip (the first minutes may lie in one run). No row may be of a
    ``held_out`` clip (``check_training_rows``, in ``fit_alignment``)."""
    inside, target = template.pair(rows)
    clips = rows["clip_id"].iloc[inside]
    if clips.nunique() < 2:
        raise Unaligned(f"{clips.nunique()} training clip(s) shared with the pool in these rows: the alignment's "
                        "inner CV needs two")
    grouped_rows = pd.DataFrame({"clip_id": clips.to_numpy(), "group": pd.factorize(clips)[0]})
    return fit_alignment(X[inside], target, grouped_rows, held_out, ridge)


def anatomical_alignment(decoder: "PooledDecoder", positions: dict, new_positions: np.ndarray) -> Alignment:
    """A left-out subject's map to the shared space without any of its responses: each of its voxels
    (``new_positions``: voxels × 3 grid indices) takes the mean map row (and mean) of the pool subjects' voxels at
    the same position (``positions``: subject → its voxels' grid indices, every pool subject's, on the same
    grid); a voxel no pool subject has maps to nothing. ``Unaligned`` where no voxel is shared."""
    new_keys = pd.MultiIndex.from_arrays(np.asarray(new_positions).T)
    n_components = decoder.alignments_[decoder.subjects_[0]].coef.shape[1]
    coef, mean = np.zeros((len(new_keys), n_components)), np.zeros(len(new_keys))
    count = np.zeros(len(new_keys))
    for subject in decoder.subjects_:
        found = pd.MultiIndex.from_arrays(np.asarray(positions[subject]).T).get_indexer(new_keys)
        hit = found >= 0
        coef[hit] += decoder.alignments_[subject].coef[found[hit]]
        mean[hit] += decoder.alignments_[subject].mean[found[hit]]
        count[hit] += 1
    if not count.any():
        raise Unaligned("no voxel of the left-out subject lies at a pool subject's voxel position")
    shared = np.maximum(count, 1)
    return Alignment((mean / shared).astype(np.float32), (coef / shared[:, None]).astype(np.float32), np.nan, np.nan)
