"""Decoding: ridge regression from responses (samples × voxels) to embeddings (samples × dims).

One alpha per embedding dimension, chosen by cross-validation grouped by run (no run is split between
training and validation). The primal form (``RidgeCV``) is used when voxels ≤ samples, the kernel form
(``KernelRidgeCV``, linear kernel) otherwise. Targets are standardised with the training rows' mean and
sd; predictions and scores are in that standardised space.

Two models per fold, as the paper: the whole mask, and an ROI ensemble: one decoder per atlas ROI, the
``k`` ROIs with the best cross-validated score (on the training rows only) averaged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from b2m.errors import InputError
from b2m.layout import ScanFiles, WindowFiles
from b2m.evaluate import score_predictions
from b2m.models.folds import check_training_rows, load_fold
from b2m.models.ridge import fit_ridge_cv
from b2m.options import DecodingOptions, RidgeOptions

log = logging.getLogger(__name__)

DEFAULT_ALPHAS = RidgeOptions().alphas()  # the ridge penalties searched when none are given


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
    targets = embedding_matrix(features)[merged["feature_row"].astype(int).to_numpy()]
    return merged.drop(columns="feature_row"), targets


@dataclass
class RidgeDecoder:
    """Ridge decoder with run-grouped CV over ``alphas``; fitted state in trailing-underscore attributes.

    ``solver_params`` go to the solver (``n_targets_batch``, ``n_alphas_batch``) and ``Y_in_cpu`` keeps the
    targets in host memory on a GPU backend: the knobs that bound memory."""

    alphas: np.ndarray
    n_folds: int = RidgeOptions.cv_folds
    solver_params: dict = field(default_factory=dict)
    Y_in_cpu: bool = False

    def fit(self, X: np.ndarray, Y: np.ndarray, rows: pd.DataFrame, held_out) -> "RidgeDecoder":
        """Fit on responses X (samples × voxels) and targets Y (samples × dims); ``rows`` (clip_id, run) describe
        the samples and group the inner CV by run; ``held_out`` are the outer test fold's clips, none of which
        may be among ``rows`` (``check_training_rows``)."""
        from himalaya.backend import get_backend

        self.training_clips_ = check_training_rows(X, rows, held_out)
        groups = rows["run"].to_numpy()
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
        self.model_ = fit_ridge_cv(self.form_, self.alphas, splits, Xc, Yz, self.solver_params, self.Y_in_cpu)
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


def roi_ensemble(X_train: np.ndarray, Y_train: np.ndarray, rows: pd.DataFrame, X_test: np.ndarray, held_out,
                 labels: np.ndarray, k_best: int, **decoder_options) -> tuple[np.ndarray, pd.DataFrame]:
    """One decoder per ROI label (> 0) of ``labels`` (voxels,); the ``k_best`` ROIs by mean CV score averaged.
    Returns the ensemble's test predictions and a table of every ROI (roi, n_voxels, cv_score, selected)."""
    records, predictions = [], {}
    for roi in np.unique(labels[labels > 0]):
        columns = labels == roi
        decoder = RidgeDecoder(**decoder_options).fit(X_train[:, columns], Y_train, rows, held_out)
        records.append({"roi": int(roi), "n_voxels": int(columns.sum()), "cv_score": float(decoder.cv_scores_.mean())})
        log.info("ROI %d: %d voxels, mean CV score %.3f", roi, columns.sum(), records[-1]["cv_score"])
        predictions[int(roi)] = decoder.predict(X_test[:, columns])
    table = pd.DataFrame(records).sort_values("cv_score", ascending=False, kind="stable").reset_index(drop=True)
    table["selected"] = table.index < k_best
    chosen = table.loc[table.selected, "roi"].tolist()
    log.info("ROI ensemble: best %d of %d ROIs by CV score: %s", len(chosen), len(table), chosen)
    return np.mean([predictions[roi] for roi in chosen], axis=0), table


def voxel_labels(positions: ScanFiles) -> np.ndarray | None:
    """ROI label of every response column, from the subject's voxel table (None: no atlas given)."""
    path = positions.voxels
    voxels = pd.read_parquet(path) if path.exists() else pd.DataFrame()
    if "roi" not in voxels.columns or (voxels["roi"].fillna(0) <= 0).all():
        return None
    return voxels["roi"].fillna(0).to_numpy(dtype=int)


@dataclass
class DecodingResult:
    """One fold's decoding: the test rows, their standardised true targets (rows × dims), each model's
    predictions (model → rows × dims), the scores (model, level, metric, ...), the whole-mask decoder and the
    ROI table of the ensemble (None without ROI labels)."""

    rows: pd.DataFrame
    true: np.ndarray
    predicted: dict
    scores: pd.DataFrame
    decoder: RidgeDecoder
    rois: pd.DataFrame | None


def decode_fold(responses_dir, features_path, fold: str = "test", alphas=DEFAULT_ALPHAS,
                n_folds: int = RidgeOptions.cv_folds, n_outer_folds: int = RidgeOptions.outer_folds,
                roi_k: int = DecodingOptions.roi_k, n_permutations: int = DecodingOptions.n_permutations,
                n_bootstrap: int = DecodingOptions.n_bootstrap, seed: int = RidgeOptions.seed,
                solver_params: dict | None = None, Y_in_cpu: bool = False,
                positions: ScanFiles | None = None) -> DecodingResult:
    """Train on the fold's training rows, predict its test rows, with the whole mask and (when the subject has
    ROI labels in ``positions``, default the scans the responses were windowed from) the ROI ensemble."""
    features = pd.read_parquet(features_path)
    data = load_fold(responses_dir, fold, n_outer_folds)
    train_rows, Y_train = align(data.train_rows, features, features_path)
    test_rows, Y_test = align(data.test_rows, features, features_path)
    options = {"alphas": alphas, "n_folds": n_folds, "solver_params": solver_params or {}, "Y_in_cpu": Y_in_cpu}
    held_out = test_rows["clip_id"]
    decoder = RidgeDecoder(**options).fit(data.X_train, Y_train, train_rows, held_out)
    true = decoder.standardise(Y_test)
    predicted = {"whole-mask": decoder.predict(data.X_test)}
    labels, roi_table = voxel_labels(positions or WindowFiles(responses_dir).scans), None
    if labels is not None and len(labels) == data.X_train.shape[1]:
        predicted["roi-ensemble"], roi_table = roi_ensemble(data.X_train, Y_train, train_rows, data.X_test,
                                                            held_out, labels, roi_k, **options)
    else:
        log.info("no ROI labels for these responses: whole-mask decoding only")
    scores = pd.concat([score_predictions(values, true, test_rows, n_permutations, n_bootstrap, seed)
                        .assign(model=model) for model, values in predicted.items()], ignore_index=True)
    log.info("%s: %d training rows, %d test rows (%d clips)", fold, len(train_rows), len(test_rows),
             test_rows.clip_id.nunique())
    return DecodingResult(test_rows, true, predicted, scores, decoder, roi_table)
