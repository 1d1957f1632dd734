"""Ridge with one alpha per target, chosen by cross-validation: the solver of ``RidgeEncoder``, ``RidgeDecoder``
and, with band weights searched at random, of ``BandedEncoder`` and the ROI-banded decoder; on the numpy backend
or himalaya's torch and torch_cuda ones (``b2m.models.backend``).

The model and the selection are himalaya's ``solve_ridge_cv_svd``: per split, the training rows' SVD X = U S Vᵀ,
predictions of the validation rows for every alpha, the l2 loss (-mean squared error) per split, its mean over
splits, the best alpha per target (ties to the larger alpha); then a refit on all rows. The difference is where
the alphas enter. himalaya builds one validation × training-rows matrix per alpha and multiplies the targets by
each: per target and alpha, 2 · n_val · n_train FLOPs. Here the targets are projected once, B = Uᵀ Y_train
(features × targets), and the validation predictions of all alphas are one product, [X_val V diag(s / (s² + α))
for α] @ B: per target and alpha, 2 · n_val · features FLOPs, n_train / features times fewer (7.5 at ds003720's
3840 training rows × 512 features).

A plain encoder's fit (``RidgeCV(reducible=True)``) goes one step further where the features span fewer
directions than a split has validation rows: with X_val V = E R (E orthonormal, R rank × rank), the loss of every
alpha is that of R's rows against Eᵀ y_val plus a term that does not depend on alpha (``reduced_scores``): per
target and alpha 2 · rank² FLOPs in place of 2 · n_val · rank.

With more features than samples the same search runs in the kernel form (himalaya's ``KernelRidgeCV`` with a
linear kernel): per split the eigendecomposition K_train = Q Λ Qᵀ of the linear kernel, the validation rows
projected as K_val,train Q, the weights 1 / (λ + α); the refit maps the dual solution back to feature weights,
Xᵀ Q diag(1 / (λ + α)) Qᵀ Y.

Banded ridge (``BandedRidgeCV``) is himalaya's ``BandedRidgeCV`` model and random search: for each draw of
band weights γ, the same CV ridge on the columns scaled by √γ of their band, keeping per target the best draw.

The two forms are b2m's solvers, registered by name in ``SOLVERS`` (as himalaya's estimators hold theirs in
``ALL_SOLVERS``): a model is given the name (``ridge_form`` picks it from the design's shape) and every step
that differs between the forms asks the named solver.

The decompositions depend on the features alone (the stimulus side, ``StimulusSide``): they are made once per
fit (per draw) and reused for every batch of targets, or made once for several fits (``b2m.models.factors``).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class SplitBasis:
    """One CV split's stimulus side: training rows, validation rows, the training rows' basis U (train × rank),
    the validation rows projected on it (validation × rank: X_val V in the primal form, K_val,train Q in the
    kernel form) and the basis' values (rank,: singular values, or kernel eigenvalues)."""

    train: object
    validation: object
    U: object
    projected: object
    values: object
    _reduced: tuple | None = field(default=None, init=False, repr=False)

    def reduced(self) -> tuple:
        """(E, R) with P = E R for the validation projections P (validation × rank), from P's thin SVD in float64
        (P = U S Wᵀ: E = U, R = S Wᵀ), directions whose singular value is below P's numerical rank tolerance
        left out (E: validation × kept, orthonormal columns; R: kept × rank); made once per basis."""
        from b2m.models.backend import get_backend

        if self._reduced is None:
            backend = get_backend()
            dtype, device = self.projected.dtype, getattr(self.projected, "device", None)
            U, values, Wt = backend.svd(backend.asarray(self.projected, dtype="float64", device=device),
                                        full_matrices=False)
            tolerance = float(values.max()) * max(self.projected.shape) * float(backend.finfo(values.dtype).eps) \
                if len(values) else 0.0
            kept = backend.flatnonzero(values > tolerance)
            self._reduced = tuple(backend.asarray(M, dtype=dtype, device=device)
                                  for M in (U[:, kept], values[kept][:, None] * Wt[kept]))
        return self._reduced


def shrinkage(form: str, values, alphas):
    """The ridge solution's weight of each direction of the basis for every alpha (alphas × rank), by the solver
    of ``form`` (``SOLVERS``)."""
    return SOLVERS[form].shrinkage(values, alphas)


@dataclass
class StimulusSide:
    """What a fit computes from the features alone: every split's ``SplitBasis``, and the basis of all rows for
    the refit: U (samples × rank), values, and Vᵀ (rank × features) in the primal form (None in the kernel
    form, whose refit maps back through the features). ``columns``: the features it spans, where a draw of
    band weights is zero outside them (None: all)."""

    form: str
    splits: list[SplitBasis]
    U: object
    values: object
    Vt: object = None
    columns: object = None

    def load(self) -> "StimulusSide":
        """This side, in memory (a stored one, ``b2m.models.factors.StoredSide``, is read when its fit needs it)."""
        return self


def _eigenbasis(K):
    """Eigenvalues (clipped at 0: a linear kernel has none below) and eigenvectors of a kernel block."""
    from b2m.models.backend import get_backend

    values, Q = get_backend().eigh(K)
    values[values < 0] = 0
    return values, Q


class PrimalSolver:
    """CV ridge in the primal form, for features ≤ samples (himalaya's ``solve_ridge_cv_svd``): the SVD X = U S Vᵀ
    of the rows, weights s / (s² + α)."""

    @staticmethod
    def prepare(X):
        """What every split's basis is cut from: the features X themselves."""
        return X

    @staticmethod
    def split_basis(X, train, validation):
        """(U, singular values, X_val V) of the training rows' SVD."""
        from b2m.models.backend import get_backend

        backend = get_backend()
        U, values, Vt = backend.svd(X[train], full_matrices=False)
        return U, values, backend.matmul(X[validation], Vt.T)  # validation × rank

    @staticmethod
    def basis(X) -> tuple:
        """The refit's (U, singular values, Vᵀ) of all rows."""
        from b2m.models.backend import get_backend

        return tuple(get_backend().svd(X, full_matrices=False))

    @staticmethod
    def shrinkage(values, alphas):
        """s / (s² + α) for every alpha and singular value: alphas × rank."""
        return values[None, :] / (alphas[:, None] + values[None, :] ** 2)

    @staticmethod
    def value_scale(scale):
        """The factor on the basis' values (and projections) of the features times ``scale``."""
        return scale

    @staticmethod
    def coef(side, X, scale, weights):
        """Feature weights (features × targets) of the basis' weights (rank × targets): V · weights, unscaled."""
        from b2m.models.backend import get_backend

        return get_backend().matmul(side.Vt.T, weights) * scale[:, None]


class KernelSolver:
    """CV ridge in the kernel form, for features > samples (himalaya's ``KernelRidgeCV`` with a linear kernel,
    ``solve_kernel_ridge_cv_eigenvalues``): the eigendecomposition K = Q Λ Qᵀ of X Xᵀ, weights 1 / (λ + α)."""

    @staticmethod
    def prepare(X):
        """What every split's basis is cut from: the linear kernel X Xᵀ (samples × samples)."""
        from b2m.models.backend import get_backend

        return get_backend().matmul(X, X.T)

    @staticmethod
    def split_basis(K, train, validation):
        """(Q, eigenvalues, K_val,train Q) of the training rows' kernel."""
        from b2m.models.backend import get_backend

        values, U = _eigenbasis(K[train][:, train])
        return U, values, get_backend().matmul(K[validation][:, train], U)

    @staticmethod
    def basis(K) -> tuple:
        """The refit's (Q, eigenvalues) of all rows (no Vᵀ: the refit maps back through the features)."""
        return tuple(reversed(_eigenbasis(K)))

    @staticmethod
    def shrinkage(values, alphas):
        """1 / (λ + α) for every alpha and eigenvalue: alphas × rank."""
        return 1 / (alphas[:, None] + values[None, :])

    @staticmethod
    def value_scale(scale):
        """The factor on the basis' values (and projections) of the features times ``scale``."""
        return scale ** 2

    @staticmethod
    def coef(side, X, scale, weights):
        """Feature weights (features × targets) of the dual weights (rank × targets): (X · scale)ᵀ Q · weights,
        unscaled."""
        from b2m.models.backend import get_backend

        backend = get_backend()
        return backend.matmul((X * scale[None, :]).T, backend.matmul(side.U, weights)) * scale[:, None]


SOLVERS = {"primal": PrimalSolver, "kernel": KernelSolver}  # form name → solver, as himalaya's ``ALL_SOLVERS``


def stimulus_side(X, splits, form: str = "primal") -> StimulusSide:
    """The ``StimulusSide`` of features X (samples × features, on the backend) for these splits, by the solver of
    ``form`` (``SOLVERS``): the SVDs of X's rows (primal form, features ≤ samples) or the eigendecompositions of
    the linear kernel X Xᵀ (kernel form)."""
    from b2m.models.backend import get_backend

    backend = get_backend()
    solver = SOLVERS[form]
    device = getattr(X, "device", None)
    prepared = solver.prepare(X)
    bases = []
    for train, validation in splits:
        train = backend.asarray(np.asarray(train), device=device)
        validation = backend.asarray(np.asarray(validation), device=device)
        U, values, projected = solver.split_basis(prepared, train, validation)
        bases.append(SplitBasis(train, validation, U, projected, values))
    return StimulusSide(form, bases, *solver.basis(prepared))


def scaled_side(side: StimulusSide, scale: float) -> StimulusSide:
    """The ``StimulusSide`` of the features times ``scale`` from that of the features: the same bases, the singular
    values (and validation projections) times ``scale``, or the kernel's eigenvalues (and projections) times
    ``scale²``."""
    factor = SOLVERS[side.form].value_scale(scale)
    splits = [SplitBasis(basis.train, basis.validation, basis.U, basis.projected * factor, basis.values * factor)
              for basis in side.splits]
    return StimulusSide(side.form, splits, side.U, side.values * factor, side.Vt, side.columns)


def validation_scores(side: StimulusSide, Y, alphas, n_alphas_batch: int | None = None, reducible: bool = False):
    """l2 negative loss of every split, alpha and target (splits × alphas × targets) for targets Y
    (samples × targets, on the backend): ``prediction_scores`` of each split, or, ``reducible`` and where every
    split's basis has fewer directions than validation rows, ``reduced_scores`` (the same loss, in float64).

    ``RidgeCV(reducible=True)`` reduces its fit (the plain encoder's, ``fit_ridge_cv``): at 123 dimensions
    its validation scores take 3.3 times less on one thread (``benchmarks/encode_profile.py``). A banded search and a
    decoder's stored factorisation keep the predictions' form: they gain little (banded ridge 1.16 times, at
    645 dimensions) and the other rounding flips near-tied band weights and alphas, which changes their
    results beyond the encoding's tolerance."""
    from b2m.models.backend import get_backend

    backend = get_backend()
    reduce = reducible and all(basis.projected.shape[1] < len(basis.validation) for basis in side.splits)
    scores = []
    for basis in side.splits:
        Y_validation = Y[basis.validation]
        projected = backend.matmul(basis.U.T, Y[basis.train])  # rank × targets
        weights = shrinkage(side.form, basis.values, alphas)
        if reduce:
            scores.append(reduced_scores(basis, Y_validation, projected, weights, n_alphas_batch))
        else:
            scores.append(prediction_scores(basis.projected, Y_validation, projected, weights, len(basis.validation),
                                            n_alphas_batch))
    return backend.stack(scores)


def prediction_scores(predictors, Y_validation, projected, weights, n_validation: int, n_alphas_batch: int | None):
    """A split's l2 negative loss per alpha and target (alphas × targets) from the validation predictions
    themselves, [X_val V diag(w_α) for α] @ B (``predictors``: X_val V, validation × rank; B: the projected
    targets, rank × targets): 2 · n_val · rank FLOPs per target and alpha; ``n_alphas_batch`` alphas'
    predictions held at once. ``n_validation``: the rows the loss is the mean over."""
    from b2m.models.backend import get_backend

    backend = get_backend()
    n_alphas = len(weights)
    step = n_alphas_batch or n_alphas
    split_scores = []
    for first in range(0, n_alphas, step):
        scaled = predictors[None, :, :] * weights[first:first + step, None, :]
        scaled = scaled.reshape(-1, scaled.shape[-1])  # (alphas · rows) × rank
        errors = backend.matmul(scaled, projected).reshape(len(weights[first:first + step]), len(predictors),
                                                            Y_validation.shape[1])
        errors -= Y_validation[None]
        errors **= 2
        split_scores.append(-errors.sum(1) / n_validation)
        del errors, scaled
    return backend.concatenate(split_scores)


def reduced_scores(basis: SplitBasis, Y_validation, projected, weights, n_alphas_batch: int | None):
    """The same loss on fewer rows: with P = E R (``SplitBasis.reduced``, E orthonormal), ‖y − P β‖² =
    ‖Eᵀy − R β‖² + ‖y‖² − ‖Eᵀy‖², so the predictions are R's rows (rank) in place of the validation rows:
    2 · rank² FLOPs per target and alpha. Returned in float64, the alpha-free part (its two sums made in float32)
    added there: large alphas change the loss by less than float32 resolves next to ‖y‖²."""
    from b2m.models.backend import get_backend

    backend = get_backend()
    device = getattr(projected, "device", None)
    E, R = basis.reduced()
    reduced = backend.matmul(E.T, Y_validation)  # kept × targets
    n_validation = len(basis.validation)
    rest = backend.asarray((Y_validation ** 2).sum(0), dtype="float64", device=device) \
        - backend.asarray((reduced ** 2).sum(0), dtype="float64", device=device)
    scores = prediction_scores(R, reduced, projected, weights, n_validation, n_alphas_batch)
    return backend.asarray(scores, dtype="float64", device=device) - rest[None, :] / n_validation


def best_alpha_indices(scores, alphas):
    """Per target, the index of the alpha with the best mean score over splits (ties to the larger alpha, as
    himalaya) and that mean score: (targets,), (targets,)."""
    from b2m.models.backend import get_backend

    backend = get_backend()
    mean = backend.mean_float64(scores, axis=0)  # alphas × targets
    best = backend.argmax(mean + (backend.log(alphas) * 1e-10)[:, None], 0)
    return best, backend.apply_argmax(mean, best, 0)


def refit_coef(side: StimulusSide, X, scale, alphas, Y):
    """The ridge weights (features × targets, for the unscaled features) of targets Y (samples × targets), each
    at its alpha, from the refit basis of ``side`` (of the features X · scale)."""
    from b2m.models.backend import get_backend

    backend = get_backend()
    if side.columns is not None:  # a side over some columns only: their weights, zero elsewhere
        coef = backend.zeros_like(X, shape=(X.shape[1], Y.shape[1]))
        spanned = StimulusSide(side.form, [], side.U, side.values, side.Vt)
        coef[side.columns] = refit_coef(spanned, X[:, side.columns], scale[side.columns], alphas, Y)
        return coef
    weights = shrinkage(side.form, side.values, alphas).T * backend.matmul(side.U.T, Y)  # rank × targets
    return SOLVERS[side.form].coef(side, X, scale, weights)


def on_backend(X, column_scales):
    """Features X (samples × features) and column scales (draws × features) on the backend, in X's dtype."""
    from b2m.models.backend import get_backend

    backend = get_backend()
    X = backend.asarray(X)
    return X, backend.asarray(np.asarray(column_scales), dtype=X.dtype, device=getattr(X, "device", None))


def scaled_sides(X, cv, column_scales, form: str):
    """The ``StimulusSide`` of X · scale for every draw of ``column_scales``, one at a time (X and the scales
    on the backend, as ``on_backend`` gives them)."""
    for scale in column_scales:
        yield stimulus_side(X * scale[None, :], cv, form)


def ridge_search(X, Y, alphas, cv, column_scales, form: str = "primal", sides=None, n_targets_batch: int | None = None,
                 n_alphas_batch: int | None = None, Y_in_cpu: bool = False, reducible: bool = False) -> dict:
    """Ridge over every draw of column scales (draws × features; banded ridge: √γ of each column's band) and
    every alpha, the best (draw, alpha) per target by mean CV score, then the refit on all rows. As himalaya's
    random search, a later draw replaces the best only when its score is higher by more than float eps.

    X: samples × features, Y: samples × targets, both centred. ``sides``: the ``StimulusSide`` of every draw,
    computed before (``b2m.models.factors``); by default each is computed here, one draw at a time. Returns, on
    the backend: ``draw`` (targets,), ``alpha`` (targets,), ``cv_score`` (targets,: mean l2 negative loss over
    splits), ``coef`` (features × targets, for the unscaled features). ``reducible``: as ``validation_scores``."""
    from b2m.models.backend import get_backend

    backend = get_backend()
    X, column_scales = on_backend(X, column_scales)
    device = getattr(X, "device", None)
    alphas = backend.asarray(np.asarray(alphas), dtype=X.dtype, device=device)
    n_targets = Y.shape[1]
    batch_size = n_targets_batch or n_targets
    batches = [slice(first, first + batch_size) for first in range(0, n_targets, batch_size)]
    Y = Y if Y_in_cpu else backend.asarray(Y, dtype=X.dtype, device=device)

    def targets(batch):
        return backend.asarray(Y[:, batch], dtype=X.dtype, device=device)

    best, refit_sides = best_draws(X, targets, n_targets, batches, alphas, cv, column_scales, form, sides,
                                   n_alphas_batch, reducible)
    coef = backend.zeros_like(X, shape=(X.shape[1], n_targets))
    for batch in batches:
        Y_batch, draws = targets(batch), best["draw"][batch]
        for draw in backend.unique(draws):
            chosen = backend.flatnonzero(draws == draw)
            coef[:, batch][:, chosen] = refit_coef(refit_sides[int(draw)], X, column_scales[int(draw)],
                                                   best["alpha"][batch][chosen], Y_batch[:, chosen])
        log.log(logging.INFO if len(batches) > 1 else logging.DEBUG,  # progress of batched fits
                "ridge refit: targets %d–%d of %d", batch.start + 1, min(batch.stop, n_targets), n_targets)
    return {**best, "coef": coef}


def best_draws(X, targets, n_targets: int, batches, alphas, cv, column_scales, form: str, sides, n_alphas_batch,
               reducible: bool = False):
    """The search of ``ridge_search``: per target the best draw, its alpha and mean CV score (``cv_score``,
    ``draw``, ``alpha``: n_targets,), over the batches of targets (``targets(batch)``: samples × batch, on the
    backend); and every draw's side without its splits, for the refit."""
    from b2m.models.backend import get_backend

    backend = get_backend()
    best = {"cv_score": backend.full_like(X, -np.inf, shape=(n_targets,)),
            "draw": backend.zeros_like(X, shape=(n_targets,), dtype="int64"),
            "alpha": backend.zeros_like(X, shape=(n_targets,))}
    eps = float(backend.finfo(X.dtype).eps)
    refit_sides = []
    for draw, side in enumerate(sides if sides is not None else scaled_sides(X, cv, column_scales, form)):
        side = side.load()
        refit_sides.append(StimulusSide(side.form, [], side.U, side.values, side.Vt, side.columns))
        for batch in batches:
            scores = validation_scores(side, targets(batch), alphas, n_alphas_batch, reducible)
            index, score = best_alpha_indices(scores, alphas)
            score = backend.asarray(score, dtype=X.dtype)
            improved = score > best["cv_score"][batch] + eps
            best["cv_score"][batch][improved] = score[improved]
            best["draw"][batch][improved] = draw
            best["alpha"][batch][improved] = alphas[index][improved]
        del side
        if len(column_scales) > 1:
            log.info("ridge search: draw %d of %d scored", draw + 1, len(column_scales))
    return best, refit_sides


def ridge_form(n_samples: int, n_features: int) -> str:
    """The form a CV ridge is solved in: primal while features ≤ samples (an SVD of the rows), kernel beyond."""
    return "primal" if n_features <= n_samples else "kernel"


@dataclass
class RidgeCV:
    """Ridge regression with one alpha per target by cross-validation over ``alphas``, in the primal or kernel
    form (``ridge_form``; both give the ridge solution, they differ in cost).

    ``cv``: (train, validation) row-index pairs. ``solver_params``: ``n_targets_batch`` and ``n_alphas_batch``
    (targets and alphas solved at once; they bound the validation predictions, alphas × validation rows ×
    targets, held in memory). ``Y_in_cpu`` keeps the targets in host memory on a GPU backend. ``sides``: the
    stimulus side computed before (one draw; ``b2m.models.factors``). ``reducible``: the validation loss in its
    reduced form where that is cheaper (``validation_scores``; the plain encoder's). Fitted state:
    ``best_alphas_`` (targets,), ``cv_scores_`` (targets,: mean l2 negative loss over splits at the best alpha),
    ``coef_`` (features × targets, on the backend)."""

    alphas: np.ndarray
    cv: list
    solver_params: dict = field(default_factory=dict)
    Y_in_cpu: bool = False
    form: str = "primal"
    sides: list | None = None
    reducible: bool = False

    def fit(self, X: np.ndarray, Y: np.ndarray) -> "RidgeCV":
        """X: samples × features, Y: samples × targets, both already centred (no intercept is fitted)."""
        fitted = ridge_search(X, Y, self.alphas, self.cv, np.ones((1, X.shape[1])), self.form, self.sides,
                              Y_in_cpu=self.Y_in_cpu, reducible=self.reducible, **self.solver_params)
        self.best_alphas_, self.cv_scores_, self.coef_ = fitted["alpha"], fitted["cv_score"], fitted["coef"]
        return self

    def predict(self, X: np.ndarray):
        """Predictions (samples × targets, on the backend)."""
        from b2m.models.backend import get_backend

        backend = get_backend()
        return backend.matmul(backend.asarray(X, device=getattr(self.coef_, "device", None)), self.coef_)


def band_weights(n_iter: int, n_bands: int, seed: int) -> np.ndarray:
    """The band weights γ a random search tries (n_iter × bands, each row on the simplex): the first draw equal
    weights, then himalaya's Dirichlet draws (``generate_dirichlet_samples`` with concentrations 0.1 and 1 in
    turn, from ``seed``; the same numbers, without importing himalaya and scikit-learn: 1.3 s of a demo job)."""
    concentrations = (0.1, 1.0)
    per_concentration = -(-n_iter // len(concentrations))
    generator = np.random.RandomState(seed)
    drawn = np.stack([generator.dirichlet([concentration] * n_bands, per_concentration)
                      for concentration in concentrations], axis=1).reshape(-1, n_bands)[:n_iter]
    return np.vstack([np.full((1, n_bands), 1 / n_bands), drawn[1:]])


@dataclass
class BandedRidgeCV:
    """Banded ridge: one weight γ per feature band on the simplex, by random search over ``n_iter`` draws
    (``band_weights``), and one alpha per target, both by cross-validation; ``ridge_search`` with the columns
    of band k scaled by √γ_k, in the primal or kernel form (one linear kernel per band: himalaya's
    ``MultipleKernelRidgeCV``).

    ``groups``: band of every feature column (features,). ``solver_params``, ``Y_in_cpu``, ``form``: as
    ``RidgeCV``; ``sides``: each draw's stimulus side computed before, for the draws ``gammas``. Fitted state:
    ``band_weights_`` (bands × targets: γ), ``deltas_`` (bands × targets, log(γ / alpha), himalaya's),
    ``best_alphas_`` (targets,), ``cv_scores_`` (targets,), ``coef_``
    (features × targets, on the backend)."""

    groups: np.ndarray
    alphas: np.ndarray
    cv: list
    n_iter: int = 20
    seed: int = 0
    solver_params: dict = field(default_factory=dict)
    Y_in_cpu: bool = False
    form: str = "primal"
    sides: list | None = None
    gammas: np.ndarray | None = None

    def band_weights(self) -> np.ndarray:
        """The searched band weights γ (draws × bands): ``gammas`` where given (the draws ``sides`` were made
        for), else ``band_weights(n_iter, bands, seed)``."""
        if self.gammas is not None:
            return np.asarray(self.gammas)
        return band_weights(self.n_iter, len(np.unique(self.groups)), self.seed)

    def column_scales(self) -> np.ndarray:
        """√γ of every column's band, for every draw (n_iter × features)."""
        return np.sqrt(self.band_weights()[:, np.unique(self.groups, return_inverse=True)[1]])

    def fit(self, X: np.ndarray, Y: np.ndarray) -> "BandedRidgeCV":
        """X: samples × features (columns of every band, as ``groups``), Y: samples × targets, both centred."""
        from b2m.models.backend import get_backend

        backend = get_backend()
        gammas = self.band_weights()
        fitted = ridge_search(X, Y, self.alphas, self.cv, self.column_scales(), self.form, self.sides,
                              Y_in_cpu=self.Y_in_cpu, **self.solver_params)
        chosen = backend.asarray(gammas, dtype=fitted["alpha"].dtype, device=getattr(fitted["alpha"], "device", None))
        self.band_weights_ = chosen[fitted["draw"]].T  # bands × targets, each column on the simplex
        with np.errstate(divide="ignore"):  # a band of weight 0 (a vertex of the simplex): log 0 = -inf
            self.deltas_ = backend.log(self.band_weights_ / fitted["alpha"][None, :])
        self.best_alphas_, self.cv_scores_, self.coef_ = fitted["alpha"], fitted["cv_score"], fitted["coef"]
        return self

    def predict(self, X: np.ndarray, split: bool = False):
        """Predictions (samples × targets), or each band's part of them (bands × samples × targets), on the
        backend."""
        from b2m.models.backend import get_backend

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


def fit_ridge_cv(form: str, alphas, cv, X, Y, solver_params: dict | None = None, Y_in_cpu: bool = False):
    """The plain encoder's ``RidgeCV`` of this form (its validation loss reduced: ``validation_scores``) fitted on
    X (samples × features) and Y (samples × targets), within the GPU's memory (``fit_within_memory``)."""
    return fit_within_memory(lambda params: RidgeCV(alphas, cv, params, Y_in_cpu, form, reducible=True), X, Y,
                             solver_params)
