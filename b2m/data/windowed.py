"""The window stage's outputs as a model stage reads them: one subject's windowed responses cut into an outer
fold's training and test rows (``b2m.models.folds`` says which rows each fold holds). Models take the arrays;
stages read them here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from b2m.errors import InputError
from b2m.io import load_npy
from b2m.layout import WindowFiles
from b2m.models.folds import check_no_leakage, select_fold


@dataclass
class FoldData:
    """One outer fold: training and test rows (row tables), responses (samples × voxels) and targets."""

    train_rows: pd.DataFrame
    X_train: np.ndarray
    test_rows: pd.DataFrame
    X_test: np.ndarray


def training_runs(responses_dir, fold: str) -> int:
    """The inner CV groups of the fold's training rows (read from the row table only)."""
    rows = pd.read_parquet(WindowFiles(responses_dir).rows("train"))
    train_index, _ = select_fold(fold, rows)
    return rows["group"].iloc[train_index].nunique()


def load_fold(responses_dir, fold: str) -> FoldData:
    """Read the windowed responses of one subject and cut them into the fold's training and test sets (a held-out
    stimulus's repeats averaged)."""
    from b2m.data.responses import average_repeats, repeat_groups

    files = WindowFiles(responses_dir)
    tables, arrays = {}, {}
    for name in ("train", "test"):
        tables[name] = pd.read_parquet(files.rows(name))
        arrays[name] = load_npy(files.array(name))
        if len(tables[name]) != len(arrays[name]):
            raise InputError(files.array(name), f"{len(arrays[name])} rows, its row table has "
                             f"{len(tables[name])}", "rerun the responses rule for this subject")
    train_index, test_index = select_fold(fold, tables["train"])
    if test_index is None:
        test_rows, X_test = tables["test"], arrays["test"]
    else:
        test_rows, X_test = tables["train"].iloc[test_index].reset_index(drop=True), arrays["train"][test_index]
        if test_rows.duplicated(["clip_id", "window"]).any():
            test_rows, X_test = repeat_groups(test_rows)[0], average_repeats(test_rows, X_test)
    if not len(test_rows):
        why = ("the design deals its training runs or stimuli into `outer_folds` groups (design.cv), and this one "
               "holds none: set outer_folds to at most the subject's training runs (design.cv: run) or the "
               "training stimuli (design.cv: stimulus), or leave it out of `folds`") if fold.startswith("cv-") \
            else f"leave {fold} out of `folds` (no stimulus of the design falls in it)"
        raise InputError(files.train_rows if test_index is not None else files.test_rows,
                         f"fold {fold}: no row to test on", why)
    train_rows = tables["train"].iloc[train_index].reset_index(drop=True)
    check_no_leakage(train_rows["clip_id"], test_rows["clip_id"])
    return FoldData(train_rows, arrays["train"][train_index], test_rows, X_test)
