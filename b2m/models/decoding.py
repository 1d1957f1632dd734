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
its own (``b2m.models.pooled``). ``b2m.models.decoders`` registers them all by name.

Each decoder is an estimator as scikit-learn and himalaya write them: its settings in the constructor (its option
objects, as the config gives them), ``fit(X, Y, rows, held_out, factors=None)`` returning itself, fitted state in
trailing-underscore attributes, ``predict(X)``; arrays in, arrays out. ``factors`` is the fold's factorisation
(``ResponseFactors``, as the factorise stage wrote it): the ridge decoders take their stimulus sides from it,
the ROI decoders their ROI columns (they need it); without it a ridge decoder computes its sides in its fit.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from dataclasses import dataclass

import numpy as np
import pandas as pd

from b2m.models.factors import ROI_BANDED, WHOLE_MASK, ResponseFactors, decoder_roi, roi_decoder
from b2m.models.folds import check_finite, check_training_rows, inner_groups, run_splits
from b2m.models.ridge import BandedRidgeCV, RidgeCV, fit_within_memory, ridge_form
from b2m.options import DecodingOptions, RidgeOptions

log = logging.getLogger(__name__)

DEFAULT_ALPHAS = RidgeOptions().alphas()  # the ridge penalties searched when none are given


def label_space(features: pd.DataFrame) -> bool:
    """Whether a feature table is a label space (every embedding one-hot: ``b2m.evaluate.labels``), whose decoders
    are also scored by label accuracy. Read from the whole table, not a fold's rows: exact (the stored 0s and 1s,
    before any standardisation), the same for every fold and subject, and true of any one-hot table whatever
    extractor wrote it."""
    from b2m.evaluate.labels import is_label_space
    from b2m.features import embedding_matrix

    return is_label_space(embedding_matrix(features))


def factor_sides(factors: ResponseFactors | None, name: str, rows: pd.DataFrame, n_folds: int) -> list | None:
    """The stimulus sides of the factorisation's decoder ``name`` (None: no factorisation given), once the training
    ``rows`` are checked to make the factorised inner splits (``ResponseFactors.check_rows``)."""
    if factors is None:
        return None
    factors.check_rows(inner_groups(rows), n_folds)
    return factors.decoders[name].sides


def needed(factors: ResponseFactors | None, decoder) -> ResponseFactors:
    """The factorisation a ROI decoder fits from, which must hold the ROIs' factors."""
    if factors is None or not factors.has_rois():
        raise ValueError(f"{type(decoder).__name__} fits from a factorisation with ROI labels (factors=)")
    return factors


@dataclass
class RidgeDecoder:
    """The ``whole-mask`` decoder: ridge with run-grouped CV over ``ridge``'s alphas (``ridge.cv_folds`` inner
    folds); ``n_targets_batch`` and ``n_alphas_batch`` go to the solver and ``y_in_cpu`` keeps the targets in host
    memory on a GPU backend: the knobs that bound memory. Fitted: ``best_alphas_`` (dims,), ``cv_scores_``
    (dims,), the targets' training ``target_mean_`` and ``target_sd_`` (dims,), ``feature_mean_`` (voxels,),
    ``form_``, the solver's ``model_`` and ``training_clips_``."""

    options: typing.ClassVar[tuple] = (RidgeOptions,)  # the option classes the constructor takes, in order
    pooled: typing.ClassVar[bool] = False  # fit on every subject of a fold at once (``decode-pooled``)
    needs_rois: typing.ClassVar[bool] = False  # fit only where the responses have ROI labels
    ridge: RidgeOptions = RidgeOptions()

    def fit(self, X: np.ndarray, Y: np.ndarray, rows: pd.DataFrame, held_out,
            factors: ResponseFactors | None = None) -> "RidgeDecoder":
        """Fit on responses X (samples × voxels) and targets Y (samples × dims); ``rows`` (clip_id, group) describe
        the samples and group the inner CV; ``held_out`` are the outer test fold's clips, none of which may be
        among ``rows`` (``check_training_rows``); ``factors``: the fold's factorisation, whose whole-mask
        stimulus sides it fits from (default: computed here)."""
        return self._fit_sides(X, Y, rows, held_out, factor_sides(factors, WHOLE_MASK, rows, self.ridge.cv_folds))

    def _fit_sides(self, X: np.ndarray, Y: np.ndarray, rows: pd.DataFrame, held_out, sides: list | None = None,
                  bands: np.ndarray | None = None, gammas: np.ndarray | None = None) -> "RidgeDecoder":
        """``fit`` from the stimulus sides of these columns of the responses (``sides``; default: computed here);
        with ``bands`` (the band of every column: ROI labels) banded ridge over them, searching the band weights
        ``gammas`` (draws × bands), whose sides ``sides`` are, draw by draw."""
        from b2m.models.backend import get_backend

        check_finite("the targets", Y)
        self.training_clips_ = check_training_rows(X, rows, held_out)
        splits = run_splits(inner_groups(rows), self.ridge.cv_folds)
        backend = get_backend()
        self.target_mean_ = Y.mean(axis=0)
        self.target_sd_ = Y.std(axis=0)
        self.target_sd_[self.target_sd_ == 0] = 1.0
        self.feature_mean_ = X.mean(axis=0)
        Xc = (X - self.feature_mean_).astype(np.float32)
        Yz = ((Y - self.target_mean_) / self.target_sd_).astype(np.float32)
        self.form_ = ridge_form(*X.shape)
        self.model_ = fit_within_memory(lambda params: self._model(splits, sides, params, bands, gammas), Xc, Yz,
                                        self.ridge.solver_params())
        self.best_alphas_ = backend.to_numpy(self.model_.best_alphas_)
        self.cv_scores_ = backend.to_numpy(self.model_.cv_scores_)
        log.info("decoder fitted (%s form%s): %d samples × %d voxels → %d dims, %d CV folds by run", self.form_,
                 "" if sides is None else ", factorised before", *X.shape, Y.shape[1], len(splits))
        return self

    def _model(self, splits, sides, solver_params: dict, bands, gammas):
        """The CV ridge estimator of this decoder (unfitted)."""
        if bands is None:
            return RidgeCV(self.ridge.alphas(), splits, solver_params, self.ridge.y_in_cpu, self.form_, sides)
        return BandedRidgeCV(bands, self.ridge.alphas(), splits, solver_params=solver_params,
                             Y_in_cpu=self.ridge.y_in_cpu, form=self.form_, sides=sides, gammas=gammas)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted targets in the standardised space (samples × dims)."""
        from b2m.models.backend import get_backend

        return get_backend().to_numpy(self.model_.predict((X - self.feature_mean_).astype(np.float32)))

    def standardise(self, Y: np.ndarray) -> np.ndarray:
        """Targets (samples × dims) in the standardised space of the training rows."""
        return ((Y - self.target_mean_) / self.target_sd_).astype(np.float32)


@dataclass
class RoiEnsembleDecoder:
    """As the paper: one ridge decoder per atlas ROI of the factorisation (``factors``, which it needs), the
    ``decoding.roi_k`` ROIs with the best mean CV score (on the training rows) averaged. Fitted: ``rois_`` (one row
    per ROI: roi, n_voxels, cv_score, selected; best first), ``selected_`` (the ROIs averaged), ``columns_`` and
    ``decoders_`` (ROI → its columns, its fitted ``RidgeDecoder``; the selected ROIs')."""

    options: typing.ClassVar[tuple] = (RidgeOptions, DecodingOptions)
    pooled: typing.ClassVar[bool] = False
    needs_rois: typing.ClassVar[bool] = True
    ridge: RidgeOptions = RidgeOptions()
    decoding: DecodingOptions = DecodingOptions()

    def fit(self, X: np.ndarray, Y: np.ndarray, rows: pd.DataFrame, held_out,
            factors: ResponseFactors | None = None) -> "RoiEnsembleDecoder":
        """Fit every ROI's decoder on its columns of X (samples × voxels) and Y (samples × dims), as
        ``RidgeDecoder.fit`` (``rows``, ``held_out``), from its stimulus sides in ``factors``."""
        check_finite("the targets", Y)
        training_clips = check_training_rows(X, rows, held_out)
        needed(factors, self).check_rows(inner_groups(rows), self.ridge.cv_folds)
        self.training_clips_ = training_clips
        records, decoders, columns = [], {}, {}
        for name, decoder_factors in factors.decoders.items():
            roi = decoder_roi(name)
            if roi is None:
                continue
            columns[roi] = decoder_factors.columns
            decoders[roi] = RidgeDecoder(self.ridge)._fit_sides(X[:, columns[roi]], Y, rows, held_out,
                                                               decoder_factors.sides)
            records.append({"roi": roi, "n_voxels": len(columns[roi]),
                            "cv_score": float(decoders[roi].cv_scores_.mean())})
            log.info("ROI %d: %d voxels, mean CV score %.3f", roi, len(columns[roi]), records[-1]["cv_score"])
        table = pd.DataFrame(records).sort_values("cv_score", ascending=False, kind="stable").reset_index(drop=True)
        table["selected"] = table.index < self.decoding.roi_k
        self.rois_, self.selected_ = table, table.loc[table.selected, "roi"].tolist()
        self.columns_ = {roi: columns[roi] for roi in self.selected_}
        self.decoders_ = {roi: decoders[roi] for roi in self.selected_}
        log.info("ROI ensemble: best %d of %d ROIs by CV score: %s", len(self.selected_), len(table), self.selected_)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The selected ROIs' predictions averaged (samples × dims, standardised)."""
        return np.mean([self.decoders_[roi].predict(X[:, self.columns_[roi]]) for roi in self.selected_], axis=0)


@dataclass
class RoiBandedDecoder:
    """Banded ridge over the ROI columns of the factorisation (``factors``, which it needs), one band per ROI, its
    band weights searched among the factorisation's draws and the simplex's vertices (each ROI alone, whose
    stimulus sides are the ROI decoders'). Fitted: ``rois_`` (ROI labels,), ``columns_`` (its columns of the
    responses), ``decoder_`` (the banded ``RidgeDecoder``) and ``band_weights_`` (rois,): each ROI's kernel weight
    γ averaged over the embedding dims, each weighted by its cross-validated R² (1 − MSE, clipped at 0), summing
    to 1."""

    options: typing.ClassVar[tuple] = (RidgeOptions,)
    pooled: typing.ClassVar[bool] = False
    needs_rois: typing.ClassVar[bool] = True
    ridge: RidgeOptions = RidgeOptions()

    def fit(self, X: np.ndarray, Y: np.ndarray, rows: pd.DataFrame, held_out,
            factors: ResponseFactors | None = None) -> "RoiBandedDecoder":
        """Fit on the ROI columns of X (samples × voxels) and Y (samples × dims), as ``RidgeDecoder.fit`` (``rows``,
        ``held_out``), from the banded decoder's stimulus sides in ``factors``."""
        from b2m.models.backend import get_backend

        check_finite("the targets", Y)
        training_clips = check_training_rows(X, rows, held_out)
        sides = factor_sides(needed(factors, self), ROI_BANDED, rows, self.ridge.cv_folds)
        self.training_clips_ = training_clips
        banded = factors.decoders[ROI_BANDED]
        self.rois_, self.columns_ = np.unique(banded.bands), banded.columns
        vertices = [dataclasses.replace(factors.decoders[roi_decoder(int(roi))].sides[0],
                                        columns=np.flatnonzero(banded.bands == roi)) for roi in self.rois_]
        gammas = np.vstack([banded.gammas, np.eye(len(self.rois_), dtype=banded.gammas.dtype)])
        self.decoder_ = RidgeDecoder(self.ridge)._fit_sides(X[:, banded.columns], Y, rows, held_out,
                                                           sides + vertices, banded.bands, gammas)
        explained = np.clip(1 + self.decoder_.cv_scores_, 0, None)
        carried = get_backend().to_numpy(self.decoder_.model_.band_weights_) @ explained
        self.band_weights_ = carried / max(carried.sum(), np.finfo(np.float32).tiny)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted targets (samples × dims, standardised) from the ROI columns of X (samples × voxels)."""
        return self.decoder_.predict(X[:, self.columns_])

    def roi_weights(self, X: np.ndarray) -> pd.DataFrame:
        """Per ROI (index: roi): ``banded_weight`` (``band_weights_``) and ``banded_share``, its part of the
        variance of the predictions of X (Σ p_roi · p / Σ p · p over rows and dims, p the standardised
        predictions); each sums to 1 over the ROIs."""
        from b2m.models.backend import get_backend

        tiny, decoder = np.finfo(np.float32).tiny, self.decoder_
        parts = get_backend().to_numpy(decoder.model_.predict(
            (X[:, self.columns_] - decoder.feature_mean_).astype(np.float32), split=True))
        predicted = parts.sum(axis=0)
        table = pd.DataFrame({"banded_weight": self.band_weights_,
                              "banded_share": (parts * predicted).sum(axis=(1, 2)) / max((predicted ** 2).sum(), tiny)},
                             index=pd.Index(self.rois_.astype(int), name="roi"))
        log.info("ROI-banded decoder: kernel weights %s; shares of the prediction %s",
                 *(", ".join(f"{roi}: {value:.2f}" for roi, value in table[column].items()) for column in table))
        return table


def roi_table(decoders, X: np.ndarray) -> pd.DataFrame | None:
    """The ROI table of a fold's fitted ``decoders`` (None: no ROI decoder among them): the ROI ensemble's ``rois_``
    beside the ROI-banded decoder's ``roi_weights`` on the test responses X (samples × voxels)."""
    ensemble = next((d for d in decoders if isinstance(d, RoiEnsembleDecoder)), None)
    banded = next((d for d in decoders if isinstance(d, RoiBandedDecoder)), None)
    weights = None if banded is None else banded.roi_weights(X)
    if ensemble is None:
        return None if weights is None else weights.reset_index()
    return ensemble.rois_ if weights is None else ensemble.rois_.merge(weights, left_on="roi", right_index=True,
                                                                        how="left")
