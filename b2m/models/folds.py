"""Outer folds: which response rows train a model and which test it.

- ``test``: the official split, the training runs against the test clips (mean over their repeats).
- ``cv-<k>``: k-fold over the training runs (``n_outer_folds`` contiguous groups of runs); fold k tests on the
  clips of its runs, heard once each, and trains on the other runs.
- ``genre-<g>``: the paper's cross-genre experiment: train on the training runs without genre g, test on the
  training runs' clips of genre g (48 in ds003720), which no model row has seen.

Every split is checked: no clip of the test rows may be among the training rows (``LeakageError``), when the
fold is cut and again when a model is fit (``check_training_rows``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from b2m import GTZAN_GENRES
from b2m.errors import ConfigError, InputError
from b2m.io import load_npy
from b2m.layout import WindowFiles
from b2m.options import RidgeOptions

log = logging.getLogger(__name__)


class LeakageError(RuntimeError):
    """A clip of an outer test fold reached its training rows."""


def check_no_leakage(train_clips, test_clips) -> None:
    """Raise if any test clip is among the training clips; not switchable."""
    shared = sorted(set(train_clips) & set(test_clips))
    if shared:
        raise LeakageError(f"{len(shared)} test clip(s) in the training rows, e.g. {shared[:3]}")


def check_training_rows(X, rows: pd.DataFrame, held_out) -> frozenset:
    """The fit-time guard of every estimator: ``X`` has one row per row of ``rows`` (clip_id, run), whose runs
    make the inner CV that chooses the hyperparameters, and no clip of ``rows`` is among ``held_out``, the outer
    test fold's clips. Returns the training clips (the fitted ``training_clips_``); not switchable."""
    if len(X) != len(rows):
        raise LeakageError(f"{len(X)} training samples but {len(rows)} training rows: the rows must describe "
                           "exactly the samples the inner CV splits")
    check_no_leakage(rows["clip_id"], held_out)
    return frozenset(rows["clip_id"])


def fold_names(n_outer_folds: int) -> list[str]:
    """Every outer fold b2m knows: test, cv-1..cv-n, genre-<g>."""
    return ["test", *(f"cv-{k}" for k in range(1, n_outer_folds + 1)), *(f"genre-{g}" for g in GTZAN_GENRES)]


def check_outer_folds(n_outer_folds: int, n_training_runs: int) -> None:
    """``outer_folds`` groups of training runs need as many runs: refused (``ConfigError``) by the study model
    where the runs are known at planning, else by the job of a cv-<k> fold before it reads the responses."""
    if n_outer_folds > n_training_runs:
        raise ConfigError(f"config: outer_folds = {n_outer_folds} exceeds the training runs of a subject "
                          f"({n_training_runs}): each cv-<k> fold holds out a group of runs; fix: set outer_folds "
                          f"to at most {n_training_runs}, or leave the cv-<k> folds out of `folds`")


def cv_runs(runs, n_outer_folds: int, k: int) -> list:
    """The training runs held out by fold ``cv-k`` (1-based): the k-th of ``n_outer_folds`` contiguous groups."""
    unique = sorted(set(runs))
    check_outer_folds(n_outer_folds, len(unique))
    if not 1 <= k <= n_outer_folds:
        raise ValueError(f"fold cv-{k} needs 1 ≤ k ≤ outer_folds = {n_outer_folds}")
    return list(np.array_split(np.asarray(unique), n_outer_folds)[k - 1])


@dataclass
class FoldData:
    """One outer fold: training and test rows (row tables), responses (samples × voxels) and targets."""

    train_rows: pd.DataFrame
    X_train: np.ndarray
    test_rows: pd.DataFrame
    X_test: np.ndarray


def select_fold(fold: str, train_rows: pd.DataFrame, test_rows: pd.DataFrame,
                n_outer_folds: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Row indices into the training responses for the fold's training rows, and for its test rows
    (None: the fold tests on the official test rows)."""
    everything = np.arange(len(train_rows))
    if fold == "test":
        return everything, None
    if fold.startswith("cv-") and fold[3:].isdigit():
        held_out = train_rows["run"].isin(cv_runs(train_rows["run"], n_outer_folds, int(fold[3:]))).to_numpy()
    elif fold.startswith("genre-") and fold[6:] in GTZAN_GENRES:
        held_out = (train_rows["genre"] == fold[6:]).to_numpy()
    else:
        raise ValueError(f"unknown fold {fold!r}; known: test, cv-<k>, genre-<{'|'.join(GTZAN_GENRES)}>")
    return everything[~held_out], everything[held_out]


def training_runs(responses_dir, fold: str, n_outer_folds: int = RidgeOptions.outer_folds) -> int:
    """The runs of the fold's training rows (read from the row table only)."""
    rows = pd.read_parquet(WindowFiles(responses_dir).rows("train"))
    train_index, _ = select_fold(fold, rows, rows, n_outer_folds)
    return rows["run"].iloc[train_index].nunique()


def inner_cv(n_folds: int, n_training_runs: int) -> dict:
    """The inner CV ``run_splits`` makes, for an output's provenance: ``ridge.cv_folds`` asked, the training runs
    and the splits (fewer than asked where the runs are fewer: one run each; logged)."""
    splits = min(n_folds, n_training_runs)
    if splits < n_folds:
        log.warning("ridge.cv_folds = %d but the fold trains on %d runs: the inner CV makes %d splits, one run each",
                    n_folds, n_training_runs, splits)
    return {"cv_folds": n_folds, "training_runs": n_training_runs, "splits": splits}


def load_fold(responses_dir, fold: str, n_outer_folds: int = RidgeOptions.outer_folds) -> FoldData:
    """Read the windowed responses of one subject and cut them into the fold's training and test sets."""
    files = WindowFiles(responses_dir)
    tables, arrays = {}, {}
    for name in ("train", "test"):
        tables[name] = pd.read_parquet(files.rows(name))
        arrays[name] = load_npy(files.array(name))
        if len(tables[name]) != len(arrays[name]):
            raise InputError(files.array(name), f"{len(arrays[name])} rows, its row table has "
                             f"{len(tables[name])}", "rerun the responses rule for this subject")
    if fold.startswith("genre-") and not (tables["train"]["genre"] == fold[6:]).any():
        raise InputError(files.train_rows, f"fold {fold}: no training clip of genre {fold[6:]} to test on",
                         f"leave {fold} out of `folds` (the training runs play no {fold[6:]} clip)")
    train_index, test_index = select_fold(fold, tables["train"], tables["test"], n_outer_folds)
    if test_index is None:
        test_rows, X_test = tables["test"], arrays["test"]
    else:
        test_rows, X_test = tables["train"].iloc[test_index].reset_index(drop=True), arrays["train"][test_index]
    train_rows = tables["train"].iloc[train_index].reset_index(drop=True)
    check_no_leakage(train_rows["clip_id"], test_rows["clip_id"])
    return FoldData(train_rows, arrays["train"][train_index], test_rows, X_test)


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
