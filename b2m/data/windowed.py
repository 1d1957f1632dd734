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
from b2m.models.folds import all_finite, check_no_leakage, select_fold


def finite(array: np.ndarray, path, what: str, fix: str) -> np.ndarray:
    """``array`` as read from ``path``, refused (``InputError``) where it holds NaN or an infinity, which a model
    would spread over every prediction (``all_finite``)."""
    if not all_finite(array):
        raise InputError(path, f"{what} hold {int((~np.isfinite(array)).sum())} NaN or infinite values", fix)
    return array


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
        arrays[name] = finite(load_npy(files.array(name)), files.array(name), "the window responses",
                              "rerun the responses rules for this subject (clean-bold, then window-responses)")
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


def align(rows: pd.DataFrame, features: pd.DataFrame, where) -> tuple[pd.DataFrame, np.ndarray]:
    """The feature row of every response row, paired on (clip_id, window): rows and targets
    (rows × dims); a response row without a feature row, or a (clip, window) with two, is an error naming
    ``where``."""
    from b2m.features import embedding_matrix

    keyed = features.reset_index(drop=True).reset_index(names="feature_row")
    repeated = keyed.duplicated(["clip_id", "window"])
    if repeated.any():
        example = keyed.loc[repeated, ["clip_id", "window"]].iloc[0].tolist()
        raise InputError(where, f"more than one feature row for {repeated.sum()} (clip, window) pairs (e.g. clip "
                         f"{example[0]}, window {example[1]})", "recompute the features (rerun the features rule)")
    merged = rows.reset_index(drop=True).merge(keyed[["clip_id", "window", "feature_row"]],
                                               on=["clip_id", "window"], how="left")
    missing = merged["feature_row"].isna()
    if missing.any():
        example = merged.loc[missing, ["clip_id", "window"]].iloc[0].tolist()
        raise InputError(where, f"{missing.sum()} response rows have no feature row (e.g. clip {example[0]}, "
                         f"window {example[1]})", "compute the features with the same events and window as the "
                         "responses (rerun the features rule)")
    targets = finite(embedding_matrix(features)[merged["feature_row"].astype(int).to_numpy()], where,
                     "the feature rows", "recompute the features (rerun the features rule); a space whose extractor "
                     "gives NaN for some audio (silence) needs that audio left out")
    return merged.drop(columns="feature_row"), targets


@dataclass
class EncodingFold:
    """One outer fold as an encoder takes it: the responses (``FoldData``) and each feature table's rows paired
    with the training and test rows on (clip_id, window): name → (training × dims, test × dims)."""

    data: FoldData
    features: dict[str, tuple[np.ndarray, np.ndarray]]


def load_encoding_fold(responses_dir, features_paths: dict, fold: str) -> EncodingFold:
    """The fold's responses, read once, and the rows of each feature table of ``features_paths`` (name → Parquet)
    aligned to them (``align``: a response row without a feature row names the table)."""
    data = load_fold(responses_dir, fold)
    features = {}
    for name, path in features_paths.items():
        table = pd.read_parquet(path)
        features[name] = (align(data.train_rows, table, path)[1], align(data.test_rows, table, path)[1])
    return EncodingFold(data, features)


@dataclass
class TestRepeats:
    """The test fold's responses kept per repeat (rows × voxels) and their rows (clip_id, window, repeat)."""

    responses: np.ndarray
    rows: pd.DataFrame


def load_test_repeats(responses_dir, fold: str) -> TestRepeats | None:
    """The responses of every repeat of the test stimuli, for the noise ceiling; None on any other fold (its
    stimuli are heard once) and where the window stage kept only their mean (the authors' arrays)."""
    files = WindowFiles(responses_dir)
    if fold != "test" or not files.test_repeats.exists():
        return None
    return TestRepeats(load_npy(files.test_repeats), pd.read_parquet(files.test_repeats_rows))
