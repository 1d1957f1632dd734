"""Decoding: ridge regression from responses (samples × voxels) to embeddings (samples × dims).

One alpha per embedding dimension, chosen by cross-validation grouped by run (no run is split between
training and validation), in the primal form while voxels ≤ samples and the kernel form (linear kernel) beyond
(``b2m.models.ridge``). Targets are standardised with the training rows' mean and sd; predictions and scores are
in that standardised space.

The ridge models of a fold: the whole mask; as the paper, an ROI ensemble: one decoder per atlas ROI, the ``k``
ROIs with the best cross-validated score (on the training rows only) averaged; and an ROI-banded decoder: banded
ridge with one band per ROI (one linear kernel per ROI, himalaya's ``MultipleKernelRidgeCV`` model), whose band
weights say how much each ROI carries. Every ridge decoder's stimulus side comes from the fold's factorisation
(``b2m.models.factors``), shared by the feature spaces of one window. Beside them, where ``decoding.models``
asks, the contrastive linear decoder (``b2m.models.contrastive``); the pooled decoder over subjects is a job of
its own (``b2m.models.pooled``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from b2m.errors import InputError
from b2m.layout import ScanFiles
from b2m.evaluate import score_predictions
from b2m.models.factors import ROI_BANDED, WHOLE_MASK, ResponseFactors, decoder_roi, roi_decoder
from b2m.data.windowed import load_fold
from b2m.models.folds import check_training_rows, inner_groups, run_splits
from b2m.models.ridge import BandedRidgeCV, fit_within_memory, ridge_form
from b2m.options import DEFAULT_DECODING_MODELS, ContrastiveOptions, DecodingOptions, RidgeOptions

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


def label_space(features: pd.DataFrame) -> bool:
    """Whether a feature table is a label space (every embedding one-hot: ``b2m.evaluate.labels``), whose decoders
    are also scored by label accuracy. Read from the whole table, not a fold's rows: exact (the stored 0s and 1s,
    before any standardisation), the same for every fold and subject, and true of any one-hot table whatever
    extractor wrote it."""
    from b2m.evaluate.labels import is_label_space
    from b2m.features import embedding_matrix

    return is_label_space(embedding_matrix(features))


@dataclass
class TargetFold:
    """One outer fold with its targets: training and test rows (row tables), responses (samples × voxels) and the
    feature rows paired with them on (clip_id, window) (samples × dims)."""

    train_rows: pd.DataFrame
    X_train: np.ndarray
    Y_train: np.ndarray
    test_rows: pd.DataFrame
    X_test: np.ndarray
    Y_test: np.ndarray


def load_target_fold(responses_dir, features: pd.DataFrame, features_path, fold: str) -> TargetFold:
    """The fold of one subject's window responses (``load_fold``) with the targets of ``features`` (the table
    read from ``features_path``, which errors name)."""
    data = load_fold(responses_dir, fold)
    train_rows, Y_train = align(data.train_rows, features, features_path)
    test_rows, Y_test = align(data.test_rows, features, features_path)
    return TargetFold(train_rows, data.X_train, Y_train, test_rows, data.X_test, Y_test)


@dataclass
class RidgeDecoder:
    """Ridge decoder with run-grouped CV over ``alphas``; fitted state in trailing-underscore attributes.

    ``solver_params`` go to the solver (``n_targets_batch``, ``n_alphas_batch``) and ``Y_in_cpu`` keeps the
    targets in host memory on a GPU backend: the knobs that bound memory. With ``bands`` (the band of every
    column: ROI labels) it is banded ridge over them, searching the band weights ``gammas`` (draws × bands)."""

    alphas: np.ndarray
    n_folds: int = RidgeOptions.cv_folds
    solver_params: dict = field(default_factory=dict)
    Y_in_cpu: bool = False
    bands: np.ndarray | None = None
    gammas: np.ndarray | None = None

    def model(self, splits, sides, solver_params: dict):
        """The CV ridge estimator of this decoder (unfitted)."""
        from b2m.models.ridge import RidgeCV

        if self.bands is None:
            return RidgeCV(self.alphas, splits, solver_params, self.Y_in_cpu, self.form_, sides)
        return BandedRidgeCV(self.bands, self.alphas, splits, solver_params=solver_params, Y_in_cpu=self.Y_in_cpu,
                             form=self.form_, sides=sides, gammas=self.gammas)

    def fit(self, X: np.ndarray, Y: np.ndarray, rows: pd.DataFrame, held_out, sides=None) -> "RidgeDecoder":
        """Fit on responses X (samples × voxels) and targets Y (samples × dims); ``rows`` (clip_id, run) describe
        the samples and group the inner CV by run; ``held_out`` are the outer test fold's clips, none of which
        may be among ``rows`` (``check_training_rows``). ``sides``: the decoder's stimulus sides from the fold's
        factorisation (default: computed here)."""
        from b2m.models.backend import get_backend

        self.training_clips_ = check_training_rows(X, rows, held_out)
        splits = run_splits(inner_groups(rows), self.n_folds)
        backend = get_backend()
        self.target_mean_ = Y.mean(axis=0)
        self.target_sd_ = Y.std(axis=0)
        self.target_sd_[self.target_sd_ == 0] = 1.0
        self.feature_mean_ = X.mean(axis=0)
        Xc = (X - self.feature_mean_).astype(np.float32)
        Yz = ((Y - self.target_mean_) / self.target_sd_).astype(np.float32)
        self.form_ = ridge_form(*X.shape)
        self.model_ = fit_within_memory(lambda params: self.model(splits, sides, params), Xc, Yz,
                                        self.solver_params)
        self.best_alphas_ = backend.to_numpy(self.model_.best_alphas_)
        self.cv_scores_ = backend.to_numpy(self.model_.cv_scores_)
        log.info("decoder fitted (%s form%s): %d samples × %d voxels → %d dims, %d CV folds by run", self.form_,
                 "" if sides is None else ", factorised before", *X.shape, Y.shape[1], len(splits))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted targets in the standardised space (samples × dims)."""
        from b2m.models.backend import get_backend

        return get_backend().to_numpy(self.model_.predict((X - self.feature_mean_).astype(np.float32)))

    def standardise(self, Y: np.ndarray) -> np.ndarray:
        return ((Y - self.target_mean_) / self.target_sd_).astype(np.float32)


def roi_ensemble(X_train: np.ndarray, Y_train: np.ndarray, rows: pd.DataFrame, X_test: np.ndarray, held_out,
                 factors: ResponseFactors, k_best: int, **decoder_options) -> tuple[np.ndarray, pd.DataFrame]:
    """One decoder per ROI of the factorisation; the ``k_best`` ROIs by mean CV score averaged. Returns the
    ensemble's test predictions and a table of every ROI (roi, n_voxels, cv_score, selected)."""
    records, predictions = [], {}
    for name, decoder_factors in factors.decoders.items():
        roi, columns = decoder_roi(name), decoder_factors.columns
        if roi is None:
            continue
        decoder = RidgeDecoder(**decoder_options).fit(X_train[:, columns], Y_train, rows, held_out,
                                                      decoder_factors.sides)
        records.append({"roi": roi, "n_voxels": len(columns), "cv_score": float(decoder.cv_scores_.mean())})
        log.info("ROI %d: %d voxels, mean CV score %.3f", roi, len(columns), records[-1]["cv_score"])
        predictions[roi] = decoder.predict(X_test[:, columns])
    table = pd.DataFrame(records).sort_values("cv_score", ascending=False, kind="stable").reset_index(drop=True)
    table["selected"] = table.index < k_best
    chosen = table.loc[table.selected, "roi"].tolist()
    log.info("ROI ensemble: best %d of %d ROIs by CV score: %s", len(chosen), len(table), chosen)
    return np.mean([predictions[roi] for roi in chosen], axis=0), table


def roi_banded(X_train: np.ndarray, Y_train: np.ndarray, rows: pd.DataFrame, X_test: np.ndarray, held_out,
               factors: ResponseFactors, **decoder_options) -> tuple[np.ndarray, pd.DataFrame]:
    """Banded ridge over the ROI columns, one band per ROI, its band weights searched among the factorisation's
    draws and the simplex's vertices (each ROI alone, whose stimulus sides are the ROI decoders'). Returns its
    test predictions and per ROI (index: roi): ``banded_weight``, its kernel weight γ averaged over the
    embedding dims, each weighted by its cross-validated R² (1 − MSE, clipped at 0), and ``banded_share``, its
    part of the test predictions' variance (Σ p_roi · p / Σ p · p over rows and dims, p the standardised
    predictions); each sums to 1 over the ROIs."""
    from b2m.models.backend import get_backend

    banded, backend = factors.decoders[ROI_BANDED], get_backend()
    rois = np.unique(banded.bands)
    vertices = [dataclasses.replace(factors.decoders[roi_decoder(int(roi))].sides[0],
                                    columns=np.flatnonzero(banded.bands == roi)) for roi in rois]
    gammas = np.vstack([banded.gammas, np.eye(len(rois), dtype=banded.gammas.dtype)])
    decoder = RidgeDecoder(**decoder_options, bands=banded.bands, gammas=gammas)
    decoder.fit(X_train[:, banded.columns], Y_train, rows, held_out, banded.sides + vertices)
    explained = np.clip(1 + decoder.cv_scores_, 0, None)
    carried = backend.to_numpy(decoder.model_.band_weights_) @ explained
    X_test = X_test[:, banded.columns]
    parts = backend.to_numpy(decoder.model_.predict((X_test - decoder.feature_mean_).astype(np.float32), split=True))
    predicted = parts.sum(axis=0)
    tiny = np.finfo(np.float32).tiny
    table = pd.DataFrame({"banded_weight": carried / max(carried.sum(), tiny),
                          "banded_share": (parts * predicted).sum(axis=(1, 2)) / max((predicted ** 2).sum(), tiny)},
                         index=pd.Index(rois.astype(int), name="roi"))
    log.info("ROI-banded decoder: kernel weights %s; shares of the prediction %s",
             *(", ".join(f"{roi}: {value:.2f}" for roi, value in table[column].items()) for column in table))
    return decoder.predict(X_test), table


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
    predictions (model → rows × dims), the scores (model, level, metric, ...; label accuracy rows in a label
    space), the whole-mask decoder and the ROI table of the ROI models (None without ROI labels)."""

    rows: pd.DataFrame
    true: np.ndarray
    predicted: dict
    scores: pd.DataFrame
    decoder: RidgeDecoder
    rois: pd.DataFrame | None


def decode_fold(responses_dir, features_path, factors: ResponseFactors, fold: str = "test", alphas=DEFAULT_ALPHAS,
                n_folds: int = RidgeOptions.cv_folds,
                roi_k: int = DecodingOptions.roi_k, n_permutations: int = DecodingOptions.n_permutations,
                n_bootstrap: int = DecodingOptions.n_bootstrap, seed: int = RidgeOptions.seed,
                solver_params: dict | None = None, Y_in_cpu: bool = False, models=DEFAULT_DECODING_MODELS,
                contrastive: ContrastiveOptions = ContrastiveOptions(),
                segment_s: float | None = DecodingOptions.segment_s) -> DecodingResult:
    """Train on the fold's training rows, predict its test rows, with the ``models`` asked for: the whole mask
    (always), the ROI ensemble and the ROI-banded decoder (when the factorisation has ROIs) and the contrastive
    decoder (``b2m.models.contrastive``, with ``contrastive``'s settings); ``factors`` is the fold's
    factorisation (``b2m.models.factors``). Scored by ``score_predictions``, in a label space (``label_space``)
    label accuracy too."""
    from b2m.models.contrastive import ContrastiveDecoder

    features = pd.read_parquet(features_path)
    data = load_target_fold(responses_dir, features, features_path, fold)
    train_rows, Y_train, test_rows, Y_test = data.train_rows, data.Y_train, data.test_rows, data.Y_test
    factors.check_rows(inner_groups(train_rows), n_folds)
    options = {"alphas": alphas, "n_folds": n_folds, "solver_params": solver_params or {}, "Y_in_cpu": Y_in_cpu}
    held_out = test_rows["clip_id"]
    decoder = RidgeDecoder(**options).fit(data.X_train, Y_train, train_rows, held_out,
                                          factors.decoders[WHOLE_MASK].sides)
    fit_data = (data.X_train, Y_train, train_rows, data.X_test, held_out, factors)
    true = decoder.standardise(Y_test)
    predicted, roi_table = {"whole-mask": decoder.predict(data.X_test)}, None
    if ROI_BANDED in factors.decoders:
        if "roi-ensemble" in models:
            predicted["roi-ensemble"], roi_table = roi_ensemble(*fit_data, roi_k, **options)
        if "roi-banded" in models:
            predicted["roi-banded"], weights = roi_banded(*fit_data, **options)
            roi_table = weights.reset_index() if roi_table is None else roi_table.merge(
                weights, left_on="roi", right_index=True, how="left")
    else:
        log.info("no ROI labels for these responses: no ROI decoders")
    if "contrastive" in models:
        predicted["contrastive"] = ContrastiveDecoder(contrastive, n_folds).fit(
            data.X_train, Y_train, train_rows, held_out).predict(data.X_test)
    label_scale = np.stack([decoder.target_mean_, decoder.target_sd_]) if label_space(features) else None
    scores = pd.concat([score_predictions(values, true, test_rows, n_permutations, n_bootstrap, seed, label_scale,
                                          segment_s).assign(model=model) for model, values in predicted.items()],
                       ignore_index=True)
    log.info("%s: %d training rows, %d test rows (%d clips)", fold, len(train_rows), len(test_rows),
             test_rows.clip_id.nunique())
    return DecodingResult(test_rows, true, predicted, scores, decoder, roi_table)
