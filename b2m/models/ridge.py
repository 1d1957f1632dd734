"""Primal ridge with one alpha per target, chosen by cross-validation: the solver of ``RidgeEncoder`` and of
``RidgeDecoder``'s primal form, on any himalaya backend (numpy, torch, torch_cuda).

The model and the selection are himalaya's ``solve_ridge_cv_svd``: per split, the training rows' SVD X = U S Vᵀ,
predictions of the validation rows for every alpha, the l2 loss (-mean squared error) per split, its mean over
splits, the best alpha per target (ties to the larger alpha); then a refit on all rows. The difference is where
the alphas enter. himalaya builds one validation × training-rows matrix per alpha and multiplies the targets by
each: per target and alpha, 2 · n_val · n_train FLOPs. Here the targets are projected once, B = Uᵀ Y_train
(features × targets), and the validation predictions of all alphas are one product, [X_val V diag(s / (s² + α))
for α] @ B: per target and alpha, 2 · n_val · features FLOPs, n_train / features times fewer (7.5 at ds003720's
3840 training rows × 512 features).

The decompositions depend on the features alone (the stimulus side): they are made once per fit and reused for
every batch of targets.
"""

from __future__ import annotations

import logging
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


@dataclass
class PrimalRidgeCV:
    """Ridge regression (primal form) with one alpha per target by cross-validation over ``alphas``.

    ``cv``: (train, validation) row-index pairs. ``solver_params``: ``n_targets_batch`` and ``n_alphas_batch``
    (targets and alphas solved at once; they bound the validation predictions, alphas × validation rows ×
    targets, held in memory). ``Y_in_cpu``
    keeps the targets in host memory on a GPU backend. Fitted state: ``best_alphas_`` (targets,),
    ``cv_scores_`` (targets,: mean l2 negative loss over splits at the best alpha), ``coef_`` (features ×
    targets, on the backend)."""

    alphas: np.ndarray
    cv: list
    solver_params: dict = field(default_factory=dict)
    Y_in_cpu: bool = False

    def fit(self, X: np.ndarray, Y: np.ndarray) -> "PrimalRidgeCV":
        """X: samples × features, Y: samples × targets, both already centred (no intercept is fitted)."""
        from himalaya.backend import get_backend

        backend = get_backend()
        X = backend.asarray(X)
        device = getattr(X, "device", None)
        alphas = backend.asarray(np.asarray(self.alphas, dtype=np.float32), device=device)
        side = stimulus_side(X, self.cv, alphas)
        n_targets = Y.shape[1]
        batch_size = self.solver_params.get("n_targets_batch") or n_targets
        Y = Y if self.Y_in_cpu else backend.asarray(Y, dtype=X.dtype, device=device)
        best_alphas, cv_scores, coefs = [], [], []
        for first in range(0, n_targets, batch_size):
            batch = backend.asarray(Y[:, first:first + batch_size], dtype=X.dtype, device=device)
            scores = validation_scores(side.splits, batch, len(alphas), self.solver_params.get("n_alphas_batch"))
            best, score = best_alpha_indices(scores, alphas)
            weights = shrinkage(side.singular_values, alphas[best]).T * backend.matmul(side.U.T, batch)  # rank × batch
            coefs.append(backend.matmul(side.Vt.T, weights))
            best_alphas.append(alphas[best])
            cv_scores.append(score)
            log.debug("ridge CV: targets %d–%d of %d", first, first + batch.shape[1], n_targets)
        self.best_alphas_ = backend.concatenate(best_alphas)
        self.cv_scores_ = backend.concatenate(cv_scores)
        self.coef_ = backend.concatenate(coefs, 1)
        return self

    def predict(self, X: np.ndarray):
        """Predictions (samples × targets, on the backend)."""
        from himalaya.backend import get_backend

        backend = get_backend()
        return backend.matmul(backend.asarray(X, device=getattr(self.coef_, "device", None)), self.coef_)


def ridge_cv_model(form: str, alphas, cv, solver_params: dict | None = None, Y_in_cpu: bool = False):
    """The CV ridge estimator of a form: ``PrimalRidgeCV`` (features ≤ samples) or himalaya's ``KernelRidgeCV``
    (linear kernel, features > samples); no intercept (inputs are centred)."""
    if form == "primal":
        return PrimalRidgeCV(alphas=alphas, cv=cv, solver_params=solver_params or {}, Y_in_cpu=Y_in_cpu)
    from himalaya.kernel_ridge import KernelRidgeCV

    return KernelRidgeCV(alphas=alphas, cv=cv, fit_intercept=False, solver_params=solver_params or None,
                         Y_in_cpu=Y_in_cpu)
