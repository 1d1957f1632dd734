"""b2m's CV ridge against its references: himalaya's ``RidgeCV`` and ``KernelRidgeCV`` (same selection, primal
and kernel form), scikit-learn's ``Ridge`` at the chosen alphas (same refit) and ``GroupKFold`` (same splits), on
every CPU backend, with batching that changes nothing; banded ridge against himalaya's ``BandedRidgeCV`` and
``MultipleKernelRidgeCV``."""

from __future__ import annotations

import numpy as np
import pytest
from himalaya.ridge import RidgeCV as HimalayaRidgeCV
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold

from b2m.models.backend import get_backend, use_backend
from b2m.models.folds import run_splits
from b2m.models.ridge import BandedRidgeCV, RidgeCV

ALPHAS = np.logspace(-1, 7, 17)


@pytest.fixture(scope="module")
def problem():
    """Centred float32 data: 1200 samples (12 runs) × 64 features → 300 targets whose signal falls from
    strong to none, so the chosen alphas spread over the grid; run-grouped splits."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1200, 64), dtype=np.float32)
    weights = rng.standard_normal((64, 300)) * np.logspace(0, -3, 300) / 8
    Y = (X @ weights + rng.standard_normal((1200, 300))).astype(np.float32)
    X, Y = X - X.mean(0), Y - Y.mean(0)
    cv = list(GroupKFold(n_splits=5).split(X, groups=np.repeat(np.arange(12), 100)))
    return X, Y, cv


@pytest.fixture(params=["numpy", "torch"])
def backend(request):
    use_backend(request.param)
    yield get_backend()
    use_backend("numpy")


def fit(problem, **options):
    X, Y, cv = problem
    return RidgeCV(alphas=ALPHAS, cv=cv, **options).fit(X, Y)


@pytest.mark.parametrize("rows_per_run", [[100] * 12, [80, 120, 95, 101, 99, 130, 60, 77]])
def test_run_splits_are_group_kfold_splits(rows_per_run):
    runs = np.random.default_rng(0).permutation(np.repeat(np.arange(len(rows_per_run)), rows_per_run))
    ours = run_splits(runs, 5)
    reference = list(GroupKFold(n_splits=5).split(runs, groups=runs))
    assert len(ours) == len(reference) == 5
    for (train, validation), (expected_train, expected_validation) in zip(ours, reference):
        np.testing.assert_array_equal(train, expected_train)
        np.testing.assert_array_equal(validation, expected_validation)
    assert len(run_splits(np.repeat([0, 1], 150), 5)) == 2  # at most one split per run
    with pytest.raises(ValueError, match="at least two training runs"):
        run_splits(np.zeros(10), 5)


@pytest.fixture(scope="module")
def exact_losses(problem):
    """Mean validation loss of every alpha and target over the splits, from the ridge solution in float64
    (alphas × targets): the definition the selection approximates in float32."""
    X, Y, cv = (np.asarray(a, np.float64) if i < 2 else a for i, a in enumerate(problem))
    losses = np.zeros((len(ALPHAS), Y.shape[1]))
    for train, validation in cv:
        for a, alpha in enumerate(ALPHAS):
            weights = np.linalg.solve(X[train].T @ X[train] + alpha * np.eye(X.shape[1]), X[train].T @ Y[train])
            losses[a] += ((Y[validation] - X[validation] @ weights) ** 2).mean(0) / len(cv)
    return losses


def near_ties(losses: np.ndarray, chosen: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Targets where two choices of alpha differ but their exact mean losses differ by less than float32
    resolves (1e-6 of the loss): which of them a float32 computation picks is its rounding's."""
    first, second = (loss_at(losses, picks) for picks in (chosen, other))
    return np.abs(first - second) < 1e-6 * second


def loss_at(losses: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Each target's exact loss at its alpha (targets,; the grid's alpha nearest to each, as float32 holds it)."""
    nearest = np.abs(np.log(np.asarray(alphas, np.float64))[None] - np.log(ALPHAS)[:, None]).argmin(0)
    return losses[nearest, np.arange(len(nearest))]


@pytest.mark.parametrize("reducible", [False, True])
def test_selection_and_predictions_match_himalaya(problem, exact_losses, backend, reducible):
    """himalaya's alphas and scores; in the reduced form of the loss (``reduced_scores``: 64 features < 240
    validation rows), which rounds otherwise, except at near ties, where it picks the lower exact loss."""
    X, Y, cv = problem
    reference = HimalayaRidgeCV(alphas=ALPHAS, cv=cv, fit_intercept=False).fit(X, Y)
    ours = fit(problem, reducible=reducible)
    chosen, expected_alphas = (backend.to_numpy(model.best_alphas_) for model in (ours, reference))
    assert len(np.unique(chosen)) >= 5  # the test spans the grid
    differ = ~np.isclose(chosen, expected_alphas, rtol=1e-6)
    assert differ.mean() < (0.02 if reducible else 1e-9)
    assert near_ties(exact_losses[:, differ], chosen[differ], expected_alphas[differ]).all()
    assert (loss_at(exact_losses, chosen) <= exact_losses.min(0) * (1 + 1e-6)).all()
    np.testing.assert_allclose(backend.to_numpy(ours.cv_scores_)[~differ],
                               backend.to_numpy(reference.cv_scores_).ravel()[~differ], rtol=1e-5)
    predicted, expected = (backend.to_numpy(model.predict(X[:200]))[:, ~differ] for model in (ours, reference))
    np.testing.assert_allclose(predicted, expected, atol=1e-4 * expected.std())


def test_refit_is_ridge_at_the_chosen_alpha(problem):
    X, Y, _ = problem
    ours = fit(problem)
    for target in (0, 150, 299):
        alpha = float(ours.best_alphas_[target])
        sklearn = Ridge(alpha=alpha, fit_intercept=False, solver="svd").fit(X.astype(np.float64), Y[:, target])
        np.testing.assert_allclose(ours.coef_[:, target], sklearn.coef_, rtol=1e-3, atol=1e-5)


def test_chosen_alpha_has_the_best_mean_validation_loss(problem):
    """The selection recomputed from its definition, with scikit-learn's Ridge on every split."""
    X, Y, cv = problem
    ours = fit(problem)
    targets = [0, 100, 299]
    losses = np.zeros((len(ALPHAS), len(targets)))
    for train, validation in cv:
        for a, alpha in enumerate(ALPHAS):
            model = Ridge(alpha=alpha, fit_intercept=False, solver="svd").fit(X[train], Y[train][:, targets])
            losses[a] += ((Y[validation][:, targets] - model.predict(X[validation])) ** 2).mean(0) / len(cv)
    np.testing.assert_allclose(ours.best_alphas_[targets], ALPHAS[losses.argmin(0)], rtol=1e-6)
    np.testing.assert_allclose(ours.cv_scores_[targets], -losses.min(0), rtol=1e-4)


@pytest.mark.parametrize("options", [{"solver_params": {"n_targets_batch": 70}},
                                     {"solver_params": {"n_alphas_batch": 4}},
                                     {"solver_params": {"n_targets_batch": 128, "n_alphas_batch": 5},
                                      "Y_in_cpu": True}])
def test_batches_change_nothing(problem, options):
    whole = fit(problem)
    batched = fit(problem, **options)
    np.testing.assert_array_equal(batched.best_alphas_, whole.best_alphas_)
    np.testing.assert_allclose(batched.coef_, whole.coef_, rtol=1e-5, atol=1e-7)


def test_kernel_form_matches_himalaya_and_the_primal_form(backend):
    """More features than samples: the kernel form's selection and predictions are himalaya's KernelRidgeCV's
    (linear kernel), and the ridge solution is the primal form's."""
    from himalaya.kernel_ridge import KernelRidgeCV

    rng = np.random.default_rng(2)
    X = rng.standard_normal((300, 700), dtype=np.float32)
    Y = (X @ (rng.standard_normal((700, 40)) * np.logspace(0, -2.5, 40) / 20)
         + rng.standard_normal((300, 40))).astype(np.float32)
    X, Y = X - X.mean(0), Y - Y.mean(0)
    cv = run_splits(np.repeat(np.arange(6), 50), 5)
    ours = RidgeCV(alphas=ALPHAS, cv=cv, form="kernel").fit(X, Y)
    reference = KernelRidgeCV(alphas=ALPHAS, cv=cv, fit_intercept=False).fit(X, Y)
    chosen = backend.to_numpy(ours.best_alphas_)
    assert len(np.unique(chosen)) >= 4
    np.testing.assert_allclose(chosen, backend.to_numpy(reference.best_alphas_), rtol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(ours.cv_scores_), backend.to_numpy(reference.cv_scores_).ravel(),
                               rtol=1e-4)
    predicted, expected = (backend.to_numpy(model.predict(X[:50])) for model in (ours, reference))
    np.testing.assert_allclose(predicted, expected, atol=1e-3 * expected.std())
    primal = RidgeCV(alphas=ALPHAS, cv=cv, form="primal").fit(X, Y)
    np.testing.assert_allclose(backend.to_numpy(ours.coef_), backend.to_numpy(primal.coef_),
                               atol=1e-3 * np.abs(backend.to_numpy(primal.coef_)).max())


def test_cpu_is_numpy_and_auto_imports_no_torch_without_a_gpu_driver(monkeypatch):
    import subprocess
    import sys

    from b2m.models import backend as backends

    assert backends.resolve_backend("cpu") == "numpy" and backends.resolve_backend("torch") == "torch"
    monkeypatch.setattr(backends, "gpu_driver_present", lambda: False)
    assert backends.resolve_backend("auto") == "numpy"
    code = ("import sys; from b2m.models.backend import use_backend; use_backend('auto'); "
            "from b2m.models.ridge import RidgeCV; print(sorted({'torch', 'himalaya', 'sklearn'} & set(sys.modules)))")
    if not backends.gpu_driver_present():
        imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert imported.strip() == "[]"


@pytest.fixture(scope="module")
def banded_problem():
    """Three bands (40, 16, 4 columns); the targets draw on them in different mixtures, so the search's band
    weights differ between targets."""
    rng = np.random.default_rng(1)
    groups = np.repeat([0, 1, 2], [40, 16, 4])
    X = rng.standard_normal((1200, 60), dtype=np.float32)
    mixture = rng.dirichlet([0.3] * 3, size=200).T[groups]  # features × targets
    Y = (X @ (rng.standard_normal((60, 200)) * mixture / 3) + rng.standard_normal((1200, 200))).astype(np.float32)
    X, Y = X - X.mean(0), Y - Y.mean(0)
    cv = list(GroupKFold(n_splits=5).split(X, groups=np.repeat(np.arange(12), 100)))
    return X, Y, cv, groups


def test_banded_search_matches_himalaya(banded_problem, backend):
    from himalaya.ridge import BandedRidgeCV as HimalayaBandedRidgeCV

    X, Y, cv, groups = banded_problem
    reference = HimalayaBandedRidgeCV(groups=groups, cv=cv, random_state=3, solver_params={
        "n_iter": 12, "alphas": ALPHAS, "progress_bar": False}).fit(X, Y)
    ours = BandedRidgeCV(groups, ALPHAS, cv, n_iter=12, seed=3).fit(X, Y)
    deltas, expected_deltas = backend.to_numpy(ours.deltas_), backend.to_numpy(reference.deltas_)
    same = np.isclose(deltas, expected_deltas, rtol=1e-5).all(0)
    assert same.mean() > 0.95 and np.unique(deltas.round(3), axis=1).shape[1] > 10  # (γ, alpha) spread
    split, expected_split = (backend.to_numpy(model.predict(X[:200], split=True)) for model in (ours, reference))
    np.testing.assert_allclose(split[:, :, same], expected_split[:, :, same], atol=1e-4 * expected_split.std())
    predicted, expected = split.sum(0), expected_split.sum(0)
    assert np.abs(predicted - expected).max() < 0.05 * expected.std()  # a near-tie's other draw: close too


def test_out_of_gpu_memory_halves_the_target_batch_with_the_same_result(problem, monkeypatch, caplog):
    """A GPU that holds at most 80 targets a batch (simulated: torch's OutOfMemoryError is what himalaya's
    torch_cuda backend raises) fits after two halvings, logs each, and gives the unbatched result."""
    import torch

    from b2m.models import ridge

    search = ridge.ridge_search

    def small_gpu(X, Y, *args, n_targets_batch=None, **options):
        if (n_targets_batch or Y.shape[1]) > 80:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return search(X, Y, *args, n_targets_batch=n_targets_batch, **options)

    X, Y, cv = problem
    reference = fit(problem, reducible=True)  # fit_ridge_cv's, the plain encoder's
    monkeypatch.setattr(ridge, "ridge_search", small_gpu)
    caplog.set_level("WARNING")
    fitted = ridge.fit_ridge_cv("primal", ALPHAS, cv, X, Y, {"n_targets_batch": 300})
    assert [r.getMessage() for r in caplog.records] == [
        "GPU out of memory with 300 targets a batch: fitting again with 150",
        "GPU out of memory with 150 targets a batch: fitting again with 75"]
    np.testing.assert_array_equal(fitted.best_alphas_, reference.best_alphas_)
    np.testing.assert_allclose(fitted.coef_, reference.coef_, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("form, n_features", [("primal", 40), ("kernel", 400)])
def test_a_scaled_side_is_the_side_of_the_scaled_features(form, n_features):
    """``scaled_side`` (the roi-banded decoder's equal-weight draw from the whole mask's factorisation) scores
    and refits as the stimulus side computed from the scaled features."""
    from b2m.models.ridge import ridge_search, scaled_side, stimulus_side

    rng = np.random.default_rng(4)
    X = rng.standard_normal((300, n_features), dtype=np.float32)
    Y = (X[:, :5] @ rng.standard_normal((5, 20)) + rng.standard_normal((300, 20))).astype(np.float32)
    X, Y = X - X.mean(0), Y - Y.mean(0)
    cv = run_splits(np.repeat(np.arange(6), 50), 5)
    scale = np.full((1, n_features), 0.3, dtype=np.float32)
    direct = ridge_search(X, Y, ALPHAS, cv, scale, form)
    derived = ridge_search(X, Y, ALPHAS, cv, scale, form, sides=[scaled_side(stimulus_side(X, cv, form), 0.3)])
    np.testing.assert_array_equal(derived["alpha"], direct["alpha"])
    np.testing.assert_allclose(derived["cv_score"], direct["cv_score"], rtol=1e-4)
    np.testing.assert_allclose(derived["coef"], direct["coef"], atol=1e-4 * np.abs(direct["coef"]).max())


@pytest.mark.parametrize("n_iter, n_bands, seed", [(1, 3, 0), (20, 3, 0), (7, 2, 5), (10, 148, 1)])
def test_band_weights_are_himalayas_dirichlet_draws(n_iter, n_bands, seed):
    """b2m's draws are himalaya's ``generate_dirichlet_samples`` (concentrations 0.1 and 1), the first replaced
    by equal weights."""
    from himalaya.kernel_ridge import generate_dirichlet_samples

    from b2m.models.ridge import band_weights

    expected = np.asarray(generate_dirichlet_samples(n_iter, n_bands, concentration=[0.1, 1.0], random_state=seed))
    expected[0] = 1 / n_bands
    np.testing.assert_array_equal(band_weights(n_iter, n_bands, seed), expected)


def test_reduced_loss_is_the_loss_on_ill_conditioned_features():
    """The reduced form (``reduced_scores``) keeps every direction the validation projections have: on features
    with singular values over three decades its mean validation losses are float64 ridge's as closely as the
    predictions' form's, and its alphas have the least exact loss within that precision."""
    rng = np.random.default_rng(3)
    basis, _ = np.linalg.qr(rng.standard_normal((60, 60)))
    X = (rng.standard_normal((1200, 60)) @ (basis * np.logspace(0, -3, 60)) @ basis.T).astype(np.float32)
    Y = (X @ rng.standard_normal((60, 50)) + 0.05 * rng.standard_normal((1200, 50))).astype(np.float32)
    X, Y = X - X.mean(0), Y - Y.mean(0)
    cv = run_splits(np.repeat(np.arange(12), 100), 5)
    losses = np.zeros((len(ALPHAS), Y.shape[1]))
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    for train, validation in cv:
        for a, alpha in enumerate(ALPHAS):
            weights = np.linalg.solve(X64[train].T @ X64[train] + alpha * np.eye(60), X64[train].T @ Y64[train])
            losses[a] += ((Y64[validation] - X64[validation] @ weights) ** 2).mean(0) / len(cv)
    ours, predictions = (RidgeCV(alphas=ALPHAS, cv=cv, reducible=reducible).fit(X, Y) for reducible in (True, False))
    # float32 data: both forms are within float32's reach of the exact loss (here 7e-4 of it; a dropped direction
    # of the basis was 9-12 %)
    for model in (ours, predictions):
        np.testing.assert_allclose(-model.cv_scores_, loss_at(losses, model.best_alphas_), rtol=2e-3)
    assert (loss_at(losses, ours.best_alphas_) <= losses.min(0) * (1 + 2e-3)).all()


def test_reduced_loss_of_a_split_without_variance_is_the_targets_sum_of_squares():
    """A split whose validation projections are all zero keeps no direction: every alpha's loss is ‖y‖² / n."""
    from b2m.models.ridge import SplitBasis, reduced_scores

    rng = np.random.default_rng(4)
    basis = SplitBasis(np.arange(8), np.arange(8, 12), np.eye(8, 3, dtype=np.float32),
                       np.zeros((4, 3), np.float32), np.ones(3, np.float32))
    Y_validation = rng.standard_normal((4, 5)).astype(np.float32)
    scores = reduced_scores(basis, Y_validation, rng.standard_normal((3, 5)).astype(np.float32),
                            np.ones((2, 3), np.float32), None)
    np.testing.assert_allclose(scores, np.tile(-(Y_validation.astype(np.float64) ** 2).mean(0), (2, 1)), rtol=1e-6)
