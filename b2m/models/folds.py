"""Outer folds: which response rows train a model and which test it.

- ``test``: the declared test set (``design.test``): every training row against the test stimuli (mean over their
  repeats).
- ``cv-<k>``: the rows the window stage dealt into fold k (``cv_fold``: groups of runs, or of stimuli stratified by
  the first label, ``design.cv``); fold k tests on them (mean over a stimulus's repeats) and trains on the rest.
- ``<label>-<value>`` (e.g. ``genre-rock``): leave one label value out: train on the training rows of the other
  values, test on this value's stimuli, which no model row has seen (the paper's cross-genre experiment).

Every split is checked: no stimulus of the test rows may be among the training rows (``LeakageError``), when the
fold is cut and again when a model is fit (``check_training_rows``). The inner CV that chooses hyperparameters
splits the training rows by ``group`` (the run where runs share no stimulus, else the stimulus).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


class LeakageError(RuntimeError):
    """A clip of an outer test fold reached its training rows."""


def check_no_leakage(train_clips, test_clips) -> None:
    """Raise if any test clip is among the training clips; not switchable."""
    shared = sorted(set(train_clips) & set(test_clips))
    if shared:
        raise LeakageError(f"{len(shared)} test clip(s) in the training rows, e.g. {shared[:3]}")


def all_finite(X) -> bool:
    """Whether the array holds no NaN or infinity, tested by a sum in float64 (no copy of the array)."""
    return bool(np.isfinite(np.sum(X, dtype=np.float64)))


def check_finite(what: str, X) -> None:
    """Refuse an estimator's input array (samples × columns) holding NaN or an infinity: a fit or prediction would
    spread it over every column silently. The first bad value is located only where there is one."""
    X = np.asarray(X)
    if all_finite(X):
        return
    bad = ~np.isfinite(X)
    row, column = np.argwhere(bad.reshape(len(bad), -1))[0]
    raise ValueError(f"{what} hold {int(bad.sum())} NaN or infinite values (first at sample {row}, column "
                     f"{column}): estimators take finite arrays only; drop or fill them before the fit")


def check_training_rows(X, rows: pd.DataFrame, held_out) -> frozenset:
    """The fit-time guard of every estimator: ``X`` has one row per row of ``rows`` (clip_id, run), whose runs
    make the inner CV that chooses the hyperparameters, no clip of ``rows`` is among ``held_out``, the outer
    test fold's clips, and ``X`` is finite (``check_finite``). Returns the training clips (the fitted
    ``training_clips_``); not switchable."""
    if len(X) != len(rows):
        raise LeakageError(f"{len(X)} training samples but {len(rows)} training rows: the rows must describe "
                           "exactly the samples the inner CV splits")
    check_no_leakage(rows["clip_id"], held_out)
    check_finite("the training samples", X)
    return frozenset(rows["clip_id"])


def inner_groups(rows: pd.DataFrame) -> np.ndarray:
    """The inner CV's group of every training row (``group``: its run, or its stimulus where runs share one)."""
    return rows["group"].to_numpy()


def label_fold(fold: str, rows: pd.DataFrame) -> tuple[str, str] | None:
    """(column, value) of a leave-one-label-out fold ``<column>-<value>`` over a label column of ``rows``."""
    for column in rows.columns:
        if fold.startswith(f"{column}-") and column not in ("clip_id", "cv_fold", "group"):
            return column, fold[len(column) + 1:]
    return None


def select_fold(fold: str, train_rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Row indices into the training responses for the fold's training rows, and for its test rows
    (None: the fold tests on the declared test rows)."""
    everything = np.arange(len(train_rows))
    if fold == "test":
        return everything, None
    labelled = label_fold(fold, train_rows)
    if fold.startswith("cv-") and fold[3:].isdigit():
        held_out = (train_rows["cv_fold"] == int(fold[3:])).to_numpy()
    elif labelled:
        held_out = (train_rows[labelled[0]].astype(str) == labelled[1]).to_numpy()
    else:
        raise ValueError(f"unknown fold {fold!r}; known: test, cv-<k>, <label column>-<value>")
    return everything[~held_out], everything[held_out]


def inner_cv(n_folds: int, n_training_groups: int) -> dict:
    """The inner CV ``run_splits`` makes, for an output's provenance: ``ridge.cv_folds`` asked, the training groups
    (runs, or stimuli where runs share them) and the splits (fewer than asked where the groups are fewer; logged)."""
    splits = min(n_folds, n_training_groups)
    if splits < n_folds:
        log.warning("ridge.cv_folds = %d but the fold trains on %d groups: the inner CV makes %d splits, one group "
                    "each", n_folds, n_training_groups, splits)
    return {"cv_folds": n_folds, "training_runs": n_training_groups, "splits": splits}


def run_splits(runs, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inner CV splits grouped by run, no run split between training and validation: (training rows,
    validation rows) index pairs, ``min(n_folds, runs)`` of them. The runs are dealt as scikit-learn's
    ``GroupKFold`` deals groups (the largest first, each to the fold with the fewest rows so far), so the
    splits are its splits, without importing scikit-learn."""
    unique, run_of_row = np.unique(np.asarray(runs), return_inverse=True)
    if len(unique) < 2:
        raise ValueError("cross-validation grouped by run needs at least two training runs")
    n_splits = min(n_folds, len(unique))
    rows_per_run = np.bincount(run_of_row)
    order = np.argsort(rows_per_run, kind="stable")[::-1]
    rows_per_fold, fold_of_run = np.zeros(n_splits), np.zeros(len(unique))
    for run in order:
        lightest = np.argmin(rows_per_fold)
        rows_per_fold[lightest] += rows_per_run[run]
        fold_of_run[run] = lightest
    fold_of_row, everything = fold_of_run[run_of_row], np.arange(len(run_of_row))
    return [(everything[fold_of_row != fold], everything[fold_of_row == fold]) for fold in range(n_splits)]
