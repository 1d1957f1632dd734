"""Decoding: ridge regression from responses (samples × voxels) to embeddings (samples × dims).

One alpha per embedding dimension, chosen by cross-validation grouped by run (no run is split between
training and validation). The primal form (``RidgeCV``) is used when voxels ≤ samples, the kernel form
(``KernelRidgeCV``, linear kernel) otherwise. Targets are standardised with the training rows' mean and
sd; predictions and scores are in that standardised space.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from b2m.errors import InputError
from b2m.io import load_npy

log = logging.getLogger(__name__)


class LeakageError(RuntimeError):
    """A clip of the test set reached the training rows."""


def check_no_leakage(train_clips, test_clips) -> None:
    """Raise if any test clip is among the training clips; not switchable."""
    shared = sorted(set(train_clips) & set(test_clips))
    if shared:
        raise LeakageError(f"{len(shared)} test clip(s) in the training rows, e.g. {shared[:3]}")


def align(rows: pd.DataFrame, features: pd.DataFrame, where) -> tuple[pd.DataFrame, np.ndarray]:
    """The feature row of every response row, paired on (clip_id, window): rows and targets
    (rows × dims); a response row without a feature row is an error naming ``where``."""
    from b2m.features import embedding_matrix

    keyed = features.reset_index(drop=True).reset_index(names="feature_row")
    merged = rows.reset_index(drop=True).merge(keyed[["clip_id", "window", "feature_row"]],
                                               on=["clip_id", "window"], how="left", validate="many_to_one")
    missing = merged["feature_row"].isna()
    if missing.any():
        example = merged.loc[missing, ["clip_id", "window"]].iloc[0].tolist()
        raise InputError(where, f"{missing.sum()} response rows have no feature row (e.g. clip {example[0]}, "
                         f"window {example[1]})", "compute the features with the same events and window as the "
                         "responses (rerun the features rule)")
    targets = embedding_matrix(features)[merged["feature_row"].astype(int).to_numpy()]
    return merged.drop(columns="feature_row"), targets


@dataclass
class RidgeDecoder:
    """Ridge decoder with run-grouped CV over ``alphas``; fitted state in trailing-underscore attributes."""

    alphas: np.ndarray
    n_folds: int = 5

    def fit(self, X: np.ndarray, Y: np.ndarray, groups: np.ndarray) -> "RidgeDecoder":
        from himalaya.backend import get_backend
        from himalaya.kernel_ridge import KernelRidgeCV
        from himalaya.ridge import RidgeCV

        backend = get_backend()
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise ValueError("cross-validation grouped by run needs at least two training runs")
        splits = list(GroupKFold(n_splits=min(self.n_folds, n_groups)).split(X, groups=groups))
        self.target_mean_ = Y.mean(axis=0)
        self.target_sd_ = Y.std(axis=0)
        self.target_sd_[self.target_sd_ == 0] = 1.0
        self.feature_mean_ = X.mean(axis=0)
        Xc = (X - self.feature_mean_).astype(np.float32)
        Yz = ((Y - self.target_mean_) / self.target_sd_).astype(np.float32)
        self.form_ = "primal" if X.shape[1] <= X.shape[0] else "kernel"
        model_class = RidgeCV if self.form_ == "primal" else KernelRidgeCV
        self.model_ = model_class(alphas=self.alphas, cv=splits, fit_intercept=False)
        self.model_.fit(Xc, Yz)
        self.best_alphas_ = backend.to_numpy(self.model_.best_alphas_)
        self.cv_scores_ = backend.to_numpy(self.model_.cv_scores_)
        log.info("decoder fitted (%s form): %d samples × %d voxels → %d dims, %d CV folds by run",
                 self.form_, *X.shape, Y.shape[1], len(splits))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted targets in the standardised space (samples × dims)."""
        from himalaya.backend import get_backend

        return get_backend().to_numpy(self.model_.predict((X - self.feature_mean_).astype(np.float32)))

    def standardise(self, Y: np.ndarray) -> np.ndarray:
        return ((Y - self.target_mean_) / self.target_sd_).astype(np.float32)


def clip_means(rows: pd.DataFrame, values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Mean of each clip's window rows (clips in order of first appearance)."""
    codes, clips = pd.factorize(rows["clip_id"], sort=False)
    sums = np.zeros((len(clips), values.shape[1]))
    np.add.at(sums, codes, values)
    return list(clips), sums / np.bincount(codes)[:, None]


def score_identification(predicted: np.ndarray, true: np.ndarray, rows: pd.DataFrame,
                         n_permutations: int, seed: int) -> pd.DataFrame:
    """Identification accuracy per window and per clip (mean of the clip's windows), each with its
    permutation chance: one row per level."""
    from b2m.evaluate import identification_accuracy, permutation_chance

    _, clip_predicted = clip_means(rows, predicted)
    _, clip_true = clip_means(rows, true)
    records = []
    for level, (p, t) in {"window": (predicted, true), "clip": (clip_predicted, clip_true)}.items():
        accuracy = identification_accuracy(p, t).mean()
        null = permutation_chance(p, t, n_permutations, seed)
        records.append({"level": level, "metric": "identification_accuracy", "value": float(accuracy),
                        "chance_mean": float(null.mean()), "chance_sd": float(null.std()),
                        "p_permutation": float((1 + np.sum(null >= accuracy)) / (1 + len(null))),
                        "n_items": len(p)})
    return pd.DataFrame(records)


def decode_test_fold(responses_dir, features_path, alphas: np.ndarray, n_folds: int = 5,
                     n_permutations: int = 200, seed: int = 0) -> dict:
    """The official split: train on the training runs, predict the test clips (mean over repeats).

    Returns the fitted decoder, test rows, predicted and true targets (standardised) and the scores.
    """
    responses_dir = Path(responses_dir)
    features = pd.read_parquet(features_path)
    train_rows, Y_train = align(pd.read_parquet(responses_dir / "train_rows.parquet"), features, features_path)
    test_rows, Y_test = align(pd.read_parquet(responses_dir / "test_rows.parquet"), features, features_path)
    X_train, X_test = load_npy(responses_dir / "train.npy"), load_npy(responses_dir / "test.npy")
    for name, rows, X in (("train", train_rows, X_train), ("test", test_rows, X_test)):
        if len(rows) != len(X):
            raise InputError(responses_dir / f"{name}.npy", f"{len(X)} rows, its row table has {len(rows)}",
                             "rerun the responses rule for this subject")
    check_no_leakage(train_rows["clip_id"], test_rows["clip_id"])
    decoder = RidgeDecoder(alphas=alphas, n_folds=n_folds).fit(X_train, Y_train, train_rows["run"].to_numpy())
    predicted = decoder.predict(X_test)
    true = decoder.standardise(Y_test)
    scores = score_identification(predicted, true, test_rows, n_permutations, seed)
    return {"decoder": decoder, "rows": test_rows, "predicted": predicted, "true": true, "scores": scores}
