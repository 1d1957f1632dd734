"""Primal ridge with one alpha per target, chosen by cross-validation: the solver of ``RidgeEncoder``, of
``RidgeDecoder``'s primal form and, with band weights searched at random, of ``BandedEncoder``; on any himalaya
backend (numpy, torch, torch_cuda).

The model and the selection are himalaya's ``solve_ridge_cv_svd``: per split, the training rows' SVD X = U S Vᵀ,
predictions of the validation rows for every alpha, the l2 loss (-mean squared error) per split, its mean over
splits, the best alpha per target (ties to the larger alpha); then a refit on all rows. The difference is where
the alphas enter. himalaya builds one validation × training-rows matrix per alpha and multiplies the targets by
each: per target and alpha, 2 · n_val · n_train FLOPs. Here the targets are projected once, B = Uᵀ Y_train
(features × targets), and the validation predictions of all alphas are one product, [X_val V diag(s / (s² + α))
for α] @ B: per target and alpha, 2 · n_val · features FLOPs, n_train / features times fewer (7.5 at ds003720's
3840 training rows × 512 features).

Banded ridge (``PrimalBandedRidgeCV``) is himalaya's ``BandedRidgeCV`` model and random search: for each draw of
band weights γ, the same CV ridge on the columns scaled by √γ of their band, keeping per target the best draw.

The decompositions depend on the features alone (the stimulus side): they are made once per fit (per draw) and
reused for every batch of targets.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class SplitBasis:
    """One CV split's stimulus side: training rows, validation rows, U of the training rows' SVD
    (train × rank), and the validation predictors of every alpha stacked (alphas · validation × rank)."""

    train: object
    validation: object
    U: object
    predictors: object


def shrinkage(singular_values, alphas):
    """s / (s² + α) for every alpha (alphas × rank), the ridge solution's weight of each singular direction."""
    return singular_values[None, :] / (alphas[:, None] + singular_values[None, :] ** 2)


@dataclass
class StimulusSide:
    """What a fit computes from the features alone: every split's ``SplitBasis``, and the SVD of all rows for
    the refit (U: samples × rank, singular values, Vᵀ: rank × features)."""

    splits: list[SplitBasis]
    U: object
    singular_values: object
    Vt: object


def stimulus_side(X, splits, alphas) -> StimulusSide:
    """The ``StimulusSide`` of features X (samples × features, on the backend) for these splits and alphas."""
    from himalaya.backend import get_backend

    backend = get_backend()
    bases = []
    for train, validation in splits:
        train = backend.asarray(np.asarray(train), device=getattr(X, "device", None))
        validation = backend.asarray(np.asarray(validation), device=getattr(X, "device", None))
        U, singular_values, Vt = backend.svd(X[train], full_matrices=False)
        projected = backend.matmul(X[validation], Vt.T)  # validation × rank
        predictors = projected[None, :, :] * shrinkage(singular_values, alphas)[:, None, :]
        bases.append(SplitBasis(train, validation, U, predictors.reshape(-1, predictors.shape[-1])))
    return StimulusSide(bases, *backend.svd(X, full_matrices=False))


def validation_scores(bases: list[SplitBasis], Y, n_alphas: int, n_alphas_batch: int | None = None):
    """l2 negative loss of every split, alpha and target (splits × alphas × targets) for targets Y
    (samples × targets, on the backend); the predictions of ``n_alphas_batch`` alphas are held at once."""
    from himalaya.backend import get_backend

    backend = get_backend()
    step = n_alphas_batch or n_alphas
    scores = []
    for basis in bases:
        n_validation = len(basis.validation)
        Y_validation = Y[basis.validation]
        projected = backend.matmul(basis.U.T, Y[basis.train])  # rank × targets
        split_scores = []
        for first in range(0, n_alphas, step):
            predictors = basis.predictors[first * n_validation:(first + step) * n_validation]
            errors = backend.matmul(predictors, projected).reshape(-1, n_validation, Y.shape[1])
            errors -= Y_validation[None]
            errors **= 2
            split_scores.append(-errors.sum(1) / n_validation)
            del errors
        scores.append(backend.concatenate(split_scores))
    return backend.stack(scores)


def best_alpha_indices(scores, alphas):
    """Per target, the index of the alpha with the best mean score over splits (ties to the larger alpha, as
    himalaya) and that mean score: (targets,), (targets,)."""
    from himalaya.backend import get_backend

    backend = get_backend()
    mean = backend.mean_float64(scores, axis=0)  # alphas × targets
    best = backend.argmax(mean + (backend.log(alphas) * 1e-10)[:, None], 0)
    return best, backend.apply_argmax(mean, best, 0)


def ridge_search(X, Y, alphas, cv, column_scales, n_targets_batch: int | None = None,
                 n_alphas_batch: int | None = None, Y_in_cpu: bool = False) -> dict:
    """Ridge over every draw of column scales (draws × features; banded ridge: √γ of each column's band) and
    every alpha, the best (draw, alpha) per target by mean CV score, then the refit on all rows. As himalaya's
    random search, a later draw replaces the best only when its score is higher by more than float eps.

    X: samples × features, Y: samples × targets, both centred. Returns, on the backend: ``draw`` (targets,),
    ``alpha`` (targets,), ``cv_score`` (targets,: mean l2 negative loss over splits), ``coef`` (features ×
    targets, for the unscaled features)."""
    from himalaya.backend import get_backend

    backend = get_backend()
    X = backend.asarray(X)
    device = getattr(X, "device", None)
    alphas = backend.asarray(np.asarray(alphas), dtype=X.dtype, device=device)
    column_scales = backend.asarray(np.asarray(column_scales), dtype=X.dtype, device=device)
    n_targets = Y.shape[1]
    batch_size = n_targets_batch or n_targets
    batches = [slice(first, first + batch_size) for first in range(0, n_targets, batch_size)]
    Y = Y if Y_in_cpu else backend.asarray(Y, dtype=X.dtype, device=device)

    def targets(batch):
        return backend.asarray(Y[:, batch], dtype=X.dtype, device=device)

    best = {"cv_score": backend.full_like(X, -np.inf, shape=(n_targets,)),
            "draw": backend.zeros_like(X, shape=(n_targets,), dtype="int64"),
            "alpha": backend.zeros_like(X, shape=(n_targets,))}
    eps = float(backend.finfo(X.dtype).eps)
    refit_bases = []
    for draw, scale in enumerate(column_scales):
        side = stimulus_side(X * scale[None, :], cv, alphas)
        refit_bases.append((side.U, side.singular_values, side.Vt))
        for batch in batches:
            index, score = best_alpha_indices(validation_scores(side.splits, targets(batch), len(alphas),
                                                                n_alphas_batch), alphas)
            score = backend.asarray(score, dtype=X.dtype)
            improved = score > best["cv_score"][batch] + eps
            best["cv_score"][batch][improved] = score[improved]
            best["draw"][batch][improved] = draw
            best["alpha"][batch][improved] = alphas[index][improved]
        if len(column_scales) > 1:
            log.info("ridge search: draw %d of %d scored", draw + 1, len(column_scales))
    coef = backend.zeros_like(X, shape=(X.shape[1], n_targets))
    for batch in batches:
        Y_batch, draws = targets(batch), best["draw"][batch]
        for draw in backend.unique(draws):
            U, singular_values, Vt = refit_bases[int(draw)]
            chosen = backend.flatnonzero(draws == draw)
            weights = shrinkage(singular_values, best["alpha"][batch][chosen]).T * backend.matmul(
                U.T, Y_batch[:, chosen])  # rank × chosen targets
            coef[:, batch][:, chosen] = backend.matmul(Vt.T, weights) * column_scales[int(draw)][:, None]
        log.log(logging.INFO if len(batches) > 1 else logging.DEBUG,  # progress of batched fits
                "ridge refit: targets %d–%d of %d", batch.start + 1, min(batch.stop, n_targets), n_targets)
    return {**best, "coef": coef}


@dataclass
class PrimalRidgeCV:
    """Ridge regression (primal form) with one alpha per target by cross-validation over ``alphas``.

    ``cv``: (train, validation) row-index pairs. ``solver_params``: ``n_targets_batch`` and ``n_alphas_batch``
    (targets and alphas solved at once; they bound the validation predictions, alphas × validation rows ×
    targets, held in memory). ``Y_in_cpu`` keeps the targets in host memory on a GPU backend. Fitted state:
    ``best_alphas_`` (targets,), ``cv_scores_`` (targets,: mean l2 negative loss over splits at the best
    alpha), ``coef_`` (features × targets, on the backend)."""

    alphas: np.ndarray
    cv: list
    solver_params: dict = field(default_factory=dict)
    Y_in_cpu: bool = False

    def fit(self, X: np.ndarray, Y: np.ndarray) -> "PrimalRidgeCV":
        """X: samples × features, Y: samples × targets, both already centred (no intercept is fitted)."""
        fitted = ridge_search(X, Y, self.alphas, self.cv, np.ones((1, X.shape[1])), Y_in_cpu=self.Y_in_cpu,
                              **self.solver_params)
        self.best_alphas_, self.cv_scores_, self.coef_ = fitted["alpha"], fitted["cv_score"], fitted["coef"]
        return self

    def predict(self, X: np.ndarray):
        """Predictions (samples × targets, on the backend)."""
        from himalaya.backend import get_backend

        backend = get_backend()
        return backend.matmul(backend.asarray(X, device=getattr(self.coef_, "device", None)), self.coef_)


@dataclass
class PrimalBandedRidgeCV:
    """Banded ridge (primal form): one weight γ per feature band on the simplex, by random search over
    ``n_iter`` Dirichlet draws (himalaya's: the first draw equal weights, then concentrations 0.1 and 1 in
    turn, from ``seed``), and one alpha per target, both by cross-validation; ``ridge_search`` with the columns
    of band k scaled by √γ_k.

    ``groups``: band of every feature column (features,). ``solver_params``, ``Y_in_cpu``: as
    ``PrimalRidgeCV``. Fitted state: ``deltas_`` (bands × targets, log(γ / alpha), himalaya's), ``best_alphas_``
    (targets,), ``cv_scores_`` (targets,), ``coef_`` (features × targets, on the backend)."""

    groups: np.ndarray
    alphas: np.ndarray
    cv: list
    n_iter: int = 20
    seed: int = 0
    solver_params: dict = field(default_factory=dict)
    Y_in_cpu: bool = False

    def band_weights(self) -> np.ndarray:
        """The searched band weights γ (n_iter × bands), each row on the simplex."""
        from himalaya.backend import get_backend
        from himalaya.kernel_ridge import generate_dirichlet_samples

        n_bands = len(np.unique(self.groups))
        gammas = get_backend().to_numpy(generate_dirichlet_samples(self.n_iter, n_bands, concentration=[0.1, 1.0],
                                                                   random_state=self.seed))
        gammas[0] = 1 / n_bands
        return gammas

    def fit(self, X: np.ndarray, Y: np.ndarray) -> "PrimalBandedRidgeCV":
        """X: samples × features (bands side by side, as ``groups``), Y: samples × targets, both centred."""
        from himalaya.backend import get_backend

        backend = get_backend()
        gammas = self.band_weights()
        fitted = ridge_search(X, Y, self.alphas, self.cv, np.sqrt(gammas[:, np.asarray(self.groups)]),
                              Y_in_cpu=self.Y_in_cpu, **self.solver_params)
        chosen = backend.asarray(gammas, dtype=fitted["alpha"].dtype, device=getattr(fitted["alpha"], "device", None))
        self.deltas_ = backend.log(chosen[fitted["draw"]].T / fitted["alpha"][None, :])
        self.best_alphas_, self.cv_scores_, self.coef_ = fitted["alpha"], fitted["cv_score"], fitted["coef"]
        return self

    def predict(self, X: np.ndarray, split: bool = False):
        """Predictions (samples × targets), or each band's part of them (bands × samples × targets), on the
        backend."""
        from himalaya.backend import get_backend

        backend = get_backend()
        X = backend.asarray(X, device=getattr(self.coef_, "device", None))
        if not split:
            return backend.matmul(X, self.coef_)
        groups = np.asarray(self.groups)
        return backend.stack([backend.matmul(X[:, np.flatnonzero(groups == band)],
                                             self.coef_[np.flatnonzero(groups == band)])
                              for band in np.unique(groups)])


def fit_within_memory(build, X, Y, solver_params: dict | None = None):
    """``build(solver_params).fit(X, Y)``: the fitted model. When the GPU runs out of memory the fit is tried
    again with half the targets a batch (``n_targets_batch``), with a log line, down to one target; batches
    change no result."""
    torch = sys.modules.get("torch")  # imported by himalaya's torch backends, the only ones that can run out
    out_of_memory = (torch.OutOfMemoryError,) if torch is not None else ()
    params = dict(solver_params or {})
    while True:
        try:
            return build(params).fit(X, Y)
        except out_of_memory:
            batch = params.get("n_targets_batch") or Y.shape[1]
            if batch <= 1:
                raise
            params["n_targets_batch"] = batch // 2
            torch.cuda.empty_cache()
            log.warning("GPU out of memory with %d targets a batch: fitting again with %d", batch,
                        params["n_targets_batch"])


def ridge_cv_model(form: str, alphas, cv, solver_params: dict | None = None, Y_in_cpu: bool = False):
    """The CV ridge estimator of a form: ``PrimalRidgeCV`` (features ≤ samples) or himalaya's ``KernelRidgeCV``
    (linear kernel, features > samples); no intercept (inputs are centred)."""
    if form == "primal":
        return PrimalRidgeCV(alphas=alphas, cv=cv, solver_params=solver_params or {}, Y_in_cpu=Y_in_cpu)
    from himalaya.kernel_ridge import KernelRidgeCV

    return KernelRidgeCV(alphas=alphas, cv=cv, fit_intercept=False, solver_params=solver_params or None,
                         Y_in_cpu=Y_in_cpu)


def fit_ridge_cv(form: str, alphas, cv, X, Y, solver_params: dict | None = None, Y_in_cpu: bool = False):
    """``ridge_cv_model(form, …)`` fitted on X (samples × features) and Y (samples × targets), within the GPU's
    memory (``fit_within_memory``)."""
    return fit_within_memory(lambda params: ridge_cv_model(form, alphas, cv, params, Y_in_cpu), X, Y, solver_params)
