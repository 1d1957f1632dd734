"""Encoding: ridge regression from embeddings (samples × dims) to responses (samples × voxels).

One alpha per voxel by cross-validation grouped by run. Features are z-scored with the training rows' mean
and sd; optional FIR delays stack copies of the features shifted by whole windows within each clip. Scores:
voxelwise Pearson r on the fold's test rows, one-sided p against the null of correlations between independent
Gaussian vectors (the paper; r·√(n−2)/√(1−r²) follows Student's t with n−2 dof) and, as an option, against a
null that exchanges whole test clips (which keeps the autocorrelation of consecutive windows: the Gaussian null
ignores it and runs liberal), Benjamini–Hochberg FDR across the voxels, and on the official test fold the noise
ceiling from the 4 test repeats. Fold ``cv-all`` fits each cv fold on its training rows and predicts its test rows
as that fold would, and scores every held-out row together (each stimulus once): a design without a declared test
set gets one map whose clip-block null exchanges every stimulus of the study, where a fold's few blocks could
never reach q < 0.05.

The encoders are estimators registered in ``ENCODERS`` (settings in the constructor, ``fit`` and ``predict`` on
arrays, fitted state in trailing-underscore attributes): ``RidgeEncoder``, and ``BandedEncoder``, which fits
several feature spaces jointly (``BandedRidgeCV``, one regularisation per space); ``score_banded`` splits the
joint prediction's R² among the spaces (variance partitioning). Nothing here reads a file: the encode stages
load a fold's arrays (``b2m.data.windowed``), fit, score here and write.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import special

from b2m.errors import ConfigError, InputError
from b2m.layout import CV_ALL
from b2m.models.decoding import DEFAULT_ALPHAS
from b2m.models.folds import check_finite, check_training_rows, inner_groups, run_splits
from b2m.models.ridge import BandedRidgeCV, fit_ridge_cv, fit_within_memory, ridge_form
from b2m.options import BandedOptions, EncodingOptions, RidgeOptions

if TYPE_CHECKING:
    from b2m.data.windowed import EncodingFold, TestRepeats

log = logging.getLogger(__name__)


def delay_features(X: np.ndarray, rows: pd.DataFrame, delays) -> np.ndarray:
    """Features shifted by each of ``delays`` (whole windows, ≥ 0) within each clip presentation, stacked
    side by side: samples × (dims · len(delays)); windows before a clip's start are zero."""
    keys = [key for key in ("run", "event", "clip_id") if key in rows.columns]
    order = rows.groupby(keys, sort=False).cumcount().to_numpy()
    blocks = []
    for delay in delays:
        shifted = np.zeros_like(X)
        source = np.flatnonzero(order >= delay)
        shifted[source] = X[source - delay]
        blocks.append(shifted)
    return np.hstack(blocks)


def pearson_per_column(true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns (voxels,); 0 where either column is constant."""
    t = true - true.mean(axis=0)
    p = predicted - predicted.mean(axis=0)
    denominator = np.sqrt((t ** 2).sum(axis=0) * (p ** 2).sum(axis=0))
    return np.where(denominator > 0, (t * p).sum(axis=0) / np.where(denominator > 0, denominator, 1), 0.0)


def gaussian_p(r: np.ndarray, n: int) -> np.ndarray:
    """One-sided p of r > 0 under independent Gaussian vectors of length ``n``."""
    r = np.clip(r, -0.999999, 0.999999)
    return special.stdtr(n - 2, -r * np.sqrt((n - 2) / (1 - r ** 2)))  # Student's t survival function


CROSS_PRODUCTS_MAX = 2 ** 25  # float32 entries of the blocks' cross-products held at once (128 MiB)


def clip_blocks(clips) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths) of the blocks of consecutive rows of one clip, in row order."""
    codes, _ = pd.factorize(pd.Series(clips), sort=False)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    return starts, np.diff(np.r_[starts, len(codes)])


def permutation_units(rows: pd.DataFrame, block_s: float | None) -> pd.Series:
    """What the permutation null exchanges, per test row: its stimulus, or with ``block_s`` the ``block_s``-second
    part of its stimulus the row's window starts in (so long pieces give many blocks, each keeping the
    autocorrelation of its windows)."""
    if not block_s:
        return rows["clip_id"]
    return rows["clip_id"] + "#" + np.floor(rows["start_s"] / block_s + 1e-9).astype(int).astype(str)


def clip_permutations(lengths: np.ndarray, n_permutations: int, seed: int) -> np.ndarray:
    """For each permutation, the source block of every target block (n_permutations × blocks): blocks are
    exchanged only with blocks of the same length."""
    rng = np.random.default_rng(seed)
    sources = np.empty((n_permutations, len(lengths)), dtype=np.int64)
    for n in range(n_permutations):
        for length in np.unique(lengths):
            same = np.flatnonzero(lengths == length)
            sources[n, same] = rng.permutation(same)
    return sources


def block_permutations(clips, n_permutations: int, seed: int) -> np.ndarray:
    """Row orders (n_permutations × rows) that exchange whole clips of equal length (their windows kept in
    order), so a null keeps the autocorrelation of the windows within a clip."""
    starts, lengths = clip_blocks(clips)
    sources = clip_permutations(lengths, n_permutations, seed)
    within = np.concatenate([np.arange(length) for length in lengths])
    target_block = np.repeat(np.arange(len(lengths)), lengths)
    return starts[sources[:, target_block]] + within


def block_cross_products(t, p, starts: np.ndarray, lengths: np.ndarray):
    """M[v, a, b] = Σ_w t[start_a + w, v] · p[start_b + w, v] for blocks a, b of equal length (0 elsewhere):
    voxels × blocks × blocks, on the ridge backend of ``t`` and ``p`` (rows × voxels)."""
    from b2m.models.backend import get_backend

    backend = get_backend()
    cross = backend.zeros_like(t, shape=(t.shape[1], len(starts), len(starts)))
    for length in np.unique(lengths):
        same = np.flatnonzero(lengths == length)
        rows = (starts[same][:, None] + np.arange(length)).ravel()
        t_blocks = backend.transpose(t[rows].reshape(len(same), length, -1), (2, 0, 1))  # v × a × w
        p_blocks = backend.transpose(p[rows].reshape(len(same), length, -1), (2, 1, 0))  # v × w × b
        cross[:, same[:, None], same[None, :]] = backend.matmul(t_blocks, p_blocks)
    return cross


def block_selection(sources: np.ndarray, device=None):
    """The sparse selection (permutations × blocks²) whose row k picks M[a, sources[k, a]] of the flattened
    blocks' cross-products for every block a, in block order; float32, on the ridge backend (``device``: a torch
    backend's)."""
    from b2m.models.backend import get_backend

    backend = get_backend()
    n_rows, n_blocks = sources.shape
    rows, columns = np.repeat(np.arange(n_rows), n_blocks), (np.arange(n_blocks) * n_blocks + sources).ravel()
    if backend.name == "numpy":
        from scipy import sparse

        return sparse.csr_matrix((np.ones(columns.size, np.float32), (rows, columns)),
                                 shape=(n_rows, n_blocks * n_blocks))
    selection = backend.torch.sparse_coo_tensor(np.vstack([rows, columns]), np.ones(columns.size, np.float32),
                                                (n_rows, n_blocks * n_blocks), device=device, check_invariants=True)
    with warnings.catch_warnings():  # "sparse CSR tensor support is in beta state": products are what it has
        warnings.simplefilter("ignore", UserWarning)
        return selection.to_sparse_csr()


def permutation_p(true: np.ndarray, predicted: np.ndarray, clips, n_permutations: int, seed: int,
                  voxel_batch: int = 256) -> np.ndarray:
    """One-sided p of each voxel's r against its clip-block permutation null: (1 + #{r_perm ≥ r}) / (1 + n).

    The permutations are those of ``block_permutations``. A permuted correlation only pairs whole blocks, so
    r_perm = Σ_a M[a, π(a)] with M the blocks' cross-products (``block_cross_products``, once per voxel): every
    permutation is one row of a sparse selection matrix over the flattened M (``block_selection``), and all of
    them are one sparse × dense product. Its first row is the identity, the observed r; a drawn permutation that
    is the identity counts as reaching it whatever the rounding of the product (a GPU's sparse product need not
    sum two equal rows in one order). Runs on the ridge backend (a GPU job's GPU), in float32 from the z-scored
    columns (float64), ``voxel_batch`` voxels at a time (M in cache)."""
    from b2m.models.backend import get_backend

    backend = get_backend()

    def zscore(a):
        a = a.astype(np.float64) - a.mean(axis=0, dtype=np.float64)
        sd = np.sqrt((a ** 2).sum(axis=0))
        return backend.asarray((a / np.where(sd > 0, sd, 1)).astype(np.float32))

    t, p = zscore(true), zscore(predicted)
    starts, lengths = clip_blocks(clips)
    n_blocks = len(starts)
    sources = np.vstack([np.arange(n_blocks), clip_permutations(lengths, n_permutations, seed)])
    selection = block_selection(sources, getattr(t, "device", None))
    identity = backend.asarray((sources[1:] == np.arange(n_blocks)).all(axis=1)[:, None],
                               device=getattr(t, "device", None))  # drawn identities: ties by definition
    exceed = np.zeros(true.shape[1])
    voxel_batch = max(1, min(voxel_batch, CROSS_PRODUCTS_MAX // n_blocks ** 2))  # bounds M's memory
    for first in range(0, true.shape[1], voxel_batch):
        voxels = slice(first, first + voxel_batch)
        cross = block_cross_products(t[:, voxels], p[:, voxels], starts, lengths).reshape(-1, n_blocks * n_blocks)
        correlations = selection @ cross.T  # (1 + permutations) × voxels
        exceed[voxels] = backend.to_numpy(((correlations[1:] >= correlations[0]) | identity).sum(0))
    return (1 + exceed) / (1 + n_permutations)


def fdr_bh(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q), same shape as ``p``."""
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(q, 1.0)
    return adjusted


def noise_ceiling(repeats: np.ndarray, repeat_rows: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Highest Pearson r any model can reach with the repeat-mean response, per voxel, from the signal power
    (Sahani & Linden 2003): SP = (Var(Σ_r y_r) − Σ_r Var(y_r)) / (N(N−1)), ceiling = √(SP / Var(mean_r y_r)).
    Uses the windows heard in all N repeats; returns (voxels,) and N."""
    n_repeats = int(repeat_rows["repeat"].nunique())
    complete = repeat_rows.groupby(["clip_id", "window"])["repeat"].transform("nunique") == n_repeats
    rows = repeat_rows[complete].sort_values(["clip_id", "window", "repeat"], kind="stable")
    stacked = repeats[rows.index.to_numpy()].reshape(-1, n_repeats, repeats.shape[1])  # windows × repeats × voxels
    summed_var = stacked.sum(axis=1).var(axis=0)
    each_var = stacked.var(axis=0).sum(axis=0)
    signal_power = (summed_var - each_var) / (n_repeats * (n_repeats - 1))
    mean_var = stacked.mean(axis=1).var(axis=0)
    ceiling = np.sqrt(np.clip(signal_power, 0, None) / np.where(mean_var > 0, mean_var, 1))
    return np.minimum(ceiling, 1.0), n_repeats


@dataclass
class RidgeEncoder:
    """Ridge encoder of responses (samples × voxels) from one feature space (samples × dims): features z-scored
    with the training rows' mean and sd, delayed (``delay_features``), one alpha per voxel by run-grouped CV
    (``n_folds`` splits) over ``alphas``, by b2m's ``RidgeCV`` with the solver of the design's form
    (``b2m.models.ridge.SOLVERS``, named by ``ridge_form``). ``solver_params``: ``n_targets_batch``,
    ``n_alphas_batch``; ``Y_in_cpu``: the responses stay in host memory on a GPU backend. Fitted state:
    ``training_clips_``, ``feature_mean_`` and ``feature_sd_`` (dims,), ``response_mean_`` (voxels,), ``form_``,
    ``model_`` (the solver's model), ``best_alphas_`` (voxels,)."""

    alphas: tuple = tuple(DEFAULT_ALPHAS)
    n_folds: int = RidgeOptions.cv_folds
    delays: tuple = EncodingOptions.delays
    solver_params: dict = field(default_factory=dict)
    Y_in_cpu: bool = False

    @classmethod
    def from_options(cls, ridge: RidgeOptions, encoding: EncodingOptions) -> "RidgeEncoder":
        """The encoder of a job's ridge and encoding options, their values as they are."""
        return cls(alphas=tuple(ridge.alphas()), n_folds=ridge.cv_folds, delays=tuple(encoding.delays),
                   solver_params=ridge.solver_params(), Y_in_cpu=ridge.y_in_cpu)

    def design(self, X: np.ndarray, rows: pd.DataFrame) -> np.ndarray:
        """Features X (samples × dims) z-scored and delayed: samples × (dims · delays), float32."""
        Xz = (X - self.feature_mean_) / self.feature_sd_
        return delay_features(Xz, rows, self.delays).astype(np.float32)

    def fit(self, X: np.ndarray, Y: np.ndarray, rows: pd.DataFrame, held_out) -> "RidgeEncoder":
        """Fit responses Y (samples × voxels) from features X (samples × dims); ``rows`` (clip_id, group, and
        run, event for the delays) describe the samples, ``held_out`` are the outer test fold's clips
        (``check_training_rows``)."""
        from b2m.models.backend import get_backend

        check_finite("the training responses", Y)
        self.training_clips_ = check_training_rows(X, rows, held_out)
        self.feature_mean_, self.feature_sd_ = X.mean(axis=0), X.std(axis=0)
        self.feature_sd_[self.feature_sd_ == 0] = 1.0
        self.response_mean_ = Y.mean(axis=0)
        design = self.design(X, rows)
        self.form_ = ridge_form(*design.shape)
        self.model_ = fit_ridge_cv(self.form_, np.asarray(self.alphas), run_splits(inner_groups(rows), self.n_folds),
                                   design, (Y - self.response_mean_).astype(np.float32), self.solver_params,
                                   self.Y_in_cpu)
        self.best_alphas_ = get_backend().to_numpy(self.model_.best_alphas_)
        return self

    def predict(self, X: np.ndarray, rows: pd.DataFrame) -> np.ndarray:
        """Responses (samples × voxels) predicted from features X (samples × dims) of the samples ``rows``."""
        from b2m.models.backend import get_backend

        check_finite("the features", X)
        return get_backend().to_numpy(self.model_.predict(self.design(X, rows))) + self.response_mean_


@dataclass
class BandedEncoder:
    """Banded ridge encoder of responses (samples × voxels) from several feature spaces (name → samples × dims,
    each z-scored with its training rows' mean and sd): b2m's ``BandedRidgeCV`` (himalaya's ``BandedRidgeCV``
    model, primal solver), one regularisation per space by random search over the simplex
    (``n_iter`` draws from ``seed``) and ``alphas``, run-grouped CV (``n_folds`` splits). ``solver_params``,
    ``Y_in_cpu``: as ``RidgeEncoder``. Fitted state: ``training_clips_``, ``spaces_`` (names in band order),
    ``feature_mean_`` and ``feature_sd_`` (name → dims,), ``response_mean_`` (voxels,), ``model_``."""

    alphas: tuple = tuple(DEFAULT_ALPHAS)
    n_iter: int = BandedOptions.n_iter
    n_folds: int = RidgeOptions.cv_folds
    seed: int = RidgeOptions.seed
    solver_params: dict = field(default_factory=dict)
    Y_in_cpu: bool = False

    @classmethod
    def from_options(cls, ridge: RidgeOptions, banded: BandedOptions) -> "BandedEncoder":
        """The banded encoder of a job's ridge and banded options, their values as they are."""
        return cls(alphas=tuple(ridge.alphas()), n_iter=banded.n_iter, n_folds=ridge.cv_folds, seed=ridge.seed,
                   solver_params=ridge.solver_params(), Y_in_cpu=ridge.y_in_cpu)

    def design(self, spaces: dict) -> np.ndarray:
        """The spaces z-scored and side by side, in fitted order: samples × Σ dims (float32)."""
        return np.hstack([(spaces[name] - self.feature_mean_[name]) / self.feature_sd_[name]
                          for name in self.spaces_]).astype(np.float32)

    def fit(self, spaces: dict, Y: np.ndarray, rows: pd.DataFrame, held_out) -> "BandedEncoder":
        """Fit responses Y (samples × voxels) from the spaces (name → samples × dims); ``rows`` and ``held_out``
        as in ``RidgeEncoder.fit``."""
        for name, X in spaces.items():
            check_finite(f"the features of space {name}", X)
        self.training_clips_ = check_training_rows(Y, rows, held_out)
        self.spaces_ = list(spaces)
        self.feature_mean_ = {name: X.mean(axis=0) for name, X in spaces.items()}
        self.feature_sd_ = {name: np.where(X.std(axis=0) == 0, 1.0, X.std(axis=0)) for name, X in spaces.items()}
        self.response_mean_ = Y.mean(axis=0)
        groups = np.concatenate([np.full(X.shape[1], i) for i, X in enumerate(spaces.values())])
        splits = run_splits(inner_groups(rows), self.n_folds)
        self.model_ = fit_within_memory(
            lambda params: BandedRidgeCV(groups, np.asarray(self.alphas), splits, self.n_iter, self.seed, params,
                                         self.Y_in_cpu), self.design(spaces),
            (Y - self.response_mean_).astype(np.float32), self.solver_params)
        return self

    def predict_split(self, spaces: dict) -> np.ndarray:
        """Each space's part of the prediction, without the response mean: spaces × samples × voxels."""
        from b2m.models.backend import get_backend

        for name in self.spaces_:
            check_finite(f"the features of space {name}", spaces[name])
        return get_backend().to_numpy(self.model_.predict(self.design(spaces), split=True))

    def predict(self, spaces: dict, rows: pd.DataFrame | None = None) -> np.ndarray:
        """Responses (samples × voxels) predicted from the spaces (name → samples × dims): every space's part and
        the response mean. ``rows`` is not needed (no delays), taken as ``RidgeEncoder.predict`` takes it."""
        return self.predict_split(spaces).sum(axis=0) + self.response_mean_


ENCODERS = {"ridge": RidgeEncoder, "banded": BandedEncoder}  # name → estimator class (unfitted settings)


def voxel_scores(true: np.ndarray, predicted: np.ndarray, clips, n_permutations: int = EncodingOptions.n_permutations,
                 seed: int = RidgeOptions.seed) -> pd.DataFrame:
    """Per voxel: Pearson r, the Gaussian-null p (the paper's), with ``n_permutations`` the clip-block
    permutation p, and the BH q of the permutation p when there is one, else of the Gaussian p."""
    r = pearson_per_column(true, predicted)
    scores = pd.DataFrame({"r": r, "p_gaussian": gaussian_p(r, len(true))})
    smallest = 1 / (n_permutations + 1)
    if n_permutations and smallest > 0.05 * 0.01:
        log.warning("with %d permutations the smallest p is %.2g: BH at q < 0.05 can discover voxels only "
                    "when more than %.1f %% of the %d voxels are discoveries; raise n_permutations",
                    n_permutations, smallest, 100 * smallest / 0.05, true.shape[1])
    if n_permutations:
        scores["p_permutation"] = permutation_p(true, predicted, clips, n_permutations, seed)
    scores["q"] = fdr_bh(scores["p_permutation" if n_permutations else "p_gaussian"].to_numpy())
    return scores


def noise_ceiling_absence(fold: str, repeats) -> str:
    """Why a fold's encoding has no noise ceiling ("" where it has one): only the test fold's clips are repeated,
    and only responses kept per repeat (raw or fMRIPrep BOLD; ``repeats``, None for the authors' arrays) can
    estimate it."""
    if fold != "test":
        return f"not estimated: the {fold} fold's clips are heard once"
    if repeats is None:
        return "absent: the responses hold only the mean of the test repeats (the authors' arrays)"
    return ""


def ceiling_note(fold: str, repeats) -> str:
    """The summary's word on the noise ceiling: where it came from, or why there is none."""
    return noise_ceiling_absence(fold, repeats) or "from the test repeats (signal power, Sahani & Linden 2003)"


def add_noise_ceiling(scores: pd.DataFrame, fold: str, repeats: TestRepeats | None) -> pd.DataFrame:
    """On the test fold, the noise ceiling of each voxel from ``repeats`` (its responses kept per repeat) and r
    normalised by it (NaN where it is 0); without them the table is returned as it is, and the log says why."""
    absent = noise_ceiling_absence(fold, repeats)
    if absent:
        if fold == "test":
            log.warning("no noise ceiling: %s", absent)
        return scores
    ceiling, _ = noise_ceiling(repeats.responses, repeats.rows)
    return scores.assign(noise_ceiling=ceiling, r_normalised=scores["r"] / np.where(ceiling > 0, ceiling, np.nan))


@dataclass
class EncodingResult:
    """One fold's encoding: the fitted encoder (of fold cv-all, each pooled fold's, in order), the voxel table (one
    row per response column: r, p_gaussian[, p_permutation], q[, noise_ceiling, r_normalised][, r2_<space> for
    banded ridge]), the number of test rows and, for banded ridge, the spaces in band order; ``noise_ceiling``
    says where the voxels' noise ceiling came from, or why there is none; ``alphas`` the best alpha of each voxel
    (voxels,; of fold cv-all, pooled folds × voxels), for plain ridge."""

    encoder: object
    voxels: pd.DataFrame
    n_test: int
    spaces: list = field(default_factory=list)
    noise_ceiling: str = ""
    alphas: np.ndarray | None = None


@dataclass
class HeldOutPrediction:
    """A fold's fitted encoder (of pooled folds, a tuple of them) and its test rows: their row table (clip_id,
    ...), true responses (rows × voxels) and prediction (rows × voxels; per band, bands × rows × voxels)."""

    encoder: object
    rows: pd.DataFrame
    true: np.ndarray
    predicted: np.ndarray


def pool_held_out(folds: dict[str, HeldOutPrediction], where) -> HeldOutPrediction:
    """Every fold's test rows together, in fold order (the predictions joined along their rows axis, the
    second-to-last); a stimulus held out by two folds is an error naming both and ``where`` (the training rows'
    table they were cut from)."""
    held_out: dict[str, str] = {}
    for fold, prediction in folds.items():
        clips = prediction.rows["clip_id"].unique()
        twice = [clip for clip in clips if clip in held_out]
        if twice:
            raise InputError(where, f"{len(twice)} stimuli (e.g. {twice[0]}) are held out by fold {fold} and by "
                             f"fold {held_out[twice[0]]}", "pool only cv folds that test on distinct stimuli (the "
                             "cv-<k> folds of one design; rerun the responses rule)")
        held_out.update(dict.fromkeys(clips, fold))
    parts = list(folds.values())
    return HeldOutPrediction(tuple(part.encoder for part in parts),
                             pd.concat([part.rows for part in parts], ignore_index=True),
                             np.concatenate([part.true for part in parts]),
                             np.concatenate([part.predicted for part in parts], axis=-2))


def held_out_predictions(predict_fold, fold: str, pooled_folds, where) -> HeldOutPrediction:
    """``predict_fold(fold)``, the fold's ``HeldOutPrediction``; of fold cv-all, that of each of ``pooled_folds``
    (two or more, one at a time), pooled (``pool_held_out``, naming ``where``)."""
    if fold != CV_ALL:
        return predict_fold(fold)
    if len(pooled_folds) < 2:
        raise ConfigError(f"options: fold {CV_ALL} pools two cv folds or more (pooling.folds), not "
                          f"{list(pooled_folds)}; fix: name the cv-<k> folds to pool (--folds cv-1 cv-2 ...)")
    return pool_held_out({one: predict_fold(one) for one in pooled_folds}, where)


def predict_held_out(fold: EncodingFold, encoder: RidgeEncoder) -> HeldOutPrediction:
    """``encoder`` (unfitted) fit on the fold's training rows of its one feature space, and its prediction of the
    fold's test rows (rows × voxels)."""
    data, [(X_train, X_test)] = fold.data, list(fold.features.values())
    encoder.fit(X_train, data.X_train, data.train_rows, data.test_rows["clip_id"])
    return HeldOutPrediction(encoder, data.test_rows, data.X_test, encoder.predict(X_test, data.test_rows))


def predict_held_out_bands(fold: EncodingFold, encoder: BandedEncoder) -> HeldOutPrediction:
    """``encoder`` (unfitted) fit on the fold's training rows of its feature spaces, and each space's part of its
    prediction of the fold's test rows (bands × rows × voxels)."""
    data = fold.data
    encoder.fit({name: train for name, (train, _) in fold.features.items()}, data.X_train, data.train_rows,
                data.test_rows["clip_id"])
    return HeldOutPrediction(encoder, data.test_rows, data.X_test,
                             encoder.predict_split({name: test for name, (_, test) in fold.features.items()}))


def score_encoding(held_out: HeldOutPrediction, fold: str, repeats: TestRepeats | None,
                   n_permutations: int = EncodingOptions.n_permutations, seed: int = RidgeOptions.seed,
                   block_s: float | None = EncodingOptions.permutation_block_s) -> EncodingResult:
    """Every voxel of a ridge encoder's held-out prediction scored (``voxel_scores``, the permutation null over
    ``permutation_units``, the noise ceiling from ``repeats`` on the test fold), with each fitted encoder's best
    alphas (of fold cv-all, pooled folds × voxels)."""
    scores = add_noise_ceiling(voxel_scores(held_out.true, held_out.predicted,
                                            permutation_units(held_out.rows, block_s), n_permutations, seed),
                               fold, repeats)
    encoders = held_out.encoder if fold == CV_ALL else (held_out.encoder,)
    alphas = np.stack([encoder.best_alphas_ for encoder in encoders])
    log.info("%s: encoding r median %.3f, %d of %d voxels at q < 0.05 (%s form, %d test rows)", fold,
             np.median(scores.r), int((scores.q < 0.05).sum()), len(scores), encoders[0].form_, len(held_out.true))
    return EncodingResult(held_out.encoder, scores, len(held_out.true), noise_ceiling=ceiling_note(fold, repeats),
                          alphas=alphas if fold == CV_ALL else alphas[0])


def r2_split(true: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Each band's share of the joint prediction's R² (bands × voxels) by the product measure, summing to the
    joint R²: Σ_rows (2 y p_k − p_k Σ_j p_j) / Σ_rows y², for zero-mean responses ``true`` (rows × voxels) and
    the bands' predictions ``split`` (bands × rows × voxels); himalaya's ``r2_score_split``, in its order of
    operations (the same numbers without importing himalaya)."""
    total = (true ** 2).sum(0)
    return np.stack([((2 * (true * band) - (band * split).sum(0)) / total).sum(0) for band in split])


def score_banded(held_out: HeldOutPrediction, names: list, fold: str, repeats: TestRepeats | None,
                 n_permutations: int = BandedOptions.n_permutations, seed: int = RidgeOptions.seed,
                 block_s: float | None = BandedOptions.permutation_block_s) -> EncodingResult:
    """A banded encoder's held-out prediction (bands × rows × voxels, the spaces ``names`` in band order) scored:
    the joint prediction's r, p, q (as ``score_encoding``) and each space's share of the joint test R²
    (``r2_<name>``, summing to the joint R²: variance partitioning)."""
    split = held_out.predicted - held_out.predicted.mean(axis=1, keepdims=True)  # the R² split needs zero-mean columns
    true = (held_out.true - held_out.true.mean(axis=0)).astype(np.float32)
    shares = r2_split(true, split)
    joint = split.sum(axis=0)
    scores = voxel_scores(true, joint, permutation_units(held_out.rows, block_s), n_permutations, seed)
    for name, share in zip(names, shares):
        scores[f"r2_{name}"] = share
    scores = add_noise_ceiling(scores, fold, repeats)
    log.info("%s: banded ridge over %s, joint r median %.3f", fold, names, np.median(scores.r))
    return EncodingResult(held_out.encoder, scores, len(true), names, ceiling_note(fold, repeats))


def voxel_map(values: np.ndarray, voxels: pd.DataFrame, mask):
    """A NIfTI image of ``values`` (voxels,) placed at the (i, j, k) of each response column, on the grid of
    ``mask`` (a NIfTI image); NaN outside the columns."""
    import nibabel as nib

    volume = np.full(mask.shape[:3], np.nan, dtype=np.float32)
    volume[voxels.i.to_numpy(), voxels.j.to_numpy(), voxels.k.to_numpy()] = values
    return nib.Nifti1Image(volume, mask.affine)
