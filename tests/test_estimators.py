"""Every registered estimator behaves as scikit-learn's and himalaya's do, on small random arrays: ``fit`` returns
the estimator, ``predict`` gives one row per test sample and one column per target, two fits give the same bits,
a held-out clip among the training rows stops the fit (``LeakageError``), and so do NaN responses. A registry
joins the test with one line of ``REGISTRIES``: the registry and the function that makes a member's problem."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from b2m.models.backend import use_backend
from b2m.models.decoders import DECODERS, make_decoder
from b2m.models.factors import fold_factors
from b2m.models.folds import LeakageError
from b2m.options import (DEFAULT_DECODING_MODELS, ContrastiveOptions, DecodingOptions, FactorOptions,
                         PooledOptions, RidgeOptions)

N_VOXELS, N_DIMS, HELD_OUT = 18, 4, ["test-0", "test-1"]
# Every option class a decoder takes, at its defaults, but smaller searches.
DECODER_OPTIONS = {**{option: option() for cls in DECODERS.values() for option in cls.options},
                   RidgeOptions: RidgeOptions(cv_folds=3, n_alphas=5), DecodingOptions: DecodingOptions(roi_k=2),
                   ContrastiveOptions: ContrastiveOptions(temperatures=(0.1,), weight_decays=(0.01,), epochs=(2,),
                                                          components=4, batch_size=16),
                   PooledOptions: PooledOptions(n_iter=1, components=4)}


@dataclass
class Problem:
    """One estimator's small problem: ``make()`` an unfitted estimator, ``fit(estimator, leak=False, nan=False)``
    it (``leak``: a held-out clip among the training rows; ``nan``: a NaN among the responses), ``predict`` with a
    fitted one, and the shapes of its predictions (a list: one per subject of a pooled decoder)."""

    make: Callable
    fit: Callable
    predict: Callable
    shapes: list


def training_rows(n_runs: int = 3, clips_per_run: int = 4, windows: int = 3) -> pd.DataFrame:
    """Rows (clip_id, window, run, group) of ``n_runs`` runs of distinct clips."""
    return pd.DataFrame([{"clip_id": f"clip-{run}-{clip}", "window": window, "run": run, "group": run}
                         for run in range(n_runs) for clip in range(clips_per_run) for window in range(windows)])


def subject_arrays(rows: pd.DataFrame, n_voxels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training responses (rows × voxels) carrying the targets, and test responses (6 × voxels)."""
    rng = np.random.default_rng(seed)
    Y = np.random.default_rng(0).standard_normal((len(rows), N_DIMS))  # every subject heard the same clips
    X = (Y @ rng.standard_normal((N_DIMS, n_voxels)) + rng.standard_normal((len(rows), n_voxels))).astype(np.float32)
    return X, rng.standard_normal((6, n_voxels)).astype(np.float32)


def leaked(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(clip_id=[HELD_OUT[0], *rows.clip_id.iloc[1:]])


def poisoned(X: np.ndarray) -> np.ndarray:
    X = X.copy()
    X[0, 0] = np.nan
    return X


def decoder_problem(name: str) -> Problem:
    """A decoder's problem: 36 training rows of 3 runs, 18 voxels (3 ROIs of 5, 3 voxels in none), 4 target dims,
    the fold's factorisation; a pooled decoder's, two subjects (18 and 14 voxels) who heard the same clips."""
    rows, Y = training_rows(), np.random.default_rng(0).standard_normal((36, N_DIMS))
    make = lambda: make_decoder(name, DECODER_OPTIONS)  # noqa: E731
    if DECODERS[name].pooled:
        subjects = [subject_arrays(rows, n, seed) for seed, n in enumerate((N_VOXELS, 14))]

        def fit(decoder, leak=False, nan=False):
            X = [subjects[0][0], poisoned(subjects[1][0]) if nan else subjects[1][0]]
            return decoder.fit(X, [Y, Y], [rows, leaked(rows) if leak else rows], HELD_OUT, ["sub-a", "sub-b"])

        return Problem(make, fit, lambda decoder: decoder.predict([test for _, test in subjects]), [(6, N_DIMS)] * 2)
    X, X_test = subject_arrays(rows, N_VOXELS, 0)
    labels = np.repeat([1, 2, 3, 0], [5, 5, 5, 3])
    factors = fold_factors(X, rows, labels, FactorOptions(cv_folds=3, n_iter=2))

    def fit(decoder, leak=False, nan=False):
        return decoder.fit(poisoned(X) if nan else X, Y, leaked(rows) if leak else rows, HELD_OUT, factors)

    return Problem(make, fit, lambda decoder: [decoder.predict(X_test)], [(6, N_DIMS)])


REGISTRIES = {"decoder": (DECODERS, decoder_problem)}
MEMBERS = [pytest.param(problem, name, id=f"{kind}-{name}") for kind, (registry, problem) in REGISTRIES.items()
           for name in registry]


@pytest.fixture(autouse=True)
def numpy_backend():
    use_backend("numpy")


@pytest.mark.parametrize("problem, name", MEMBERS)
def test_fit_returns_the_estimator_and_predict_one_row_per_sample(problem, name):
    case = problem(name)
    estimator = case.make()
    assert case.fit(estimator) is estimator
    predicted = case.predict(estimator)
    assert [p.shape for p in predicted] == case.shapes and all(np.isfinite(p).all() for p in predicted)
    assert estimator.training_clips_ and not estimator.training_clips_ & set(HELD_OUT)


@pytest.mark.parametrize("problem, name", MEMBERS)
def test_two_fits_give_the_same_bits(problem, name):
    case = problem(name)
    first, second = (case.predict(case.fit(case.make())) for _ in range(2))
    assert [p.tobytes() for p in first] == [p.tobytes() for p in second]


@pytest.mark.parametrize("problem, name", MEMBERS)
def test_a_held_out_clip_among_the_training_rows_is_refused(problem, name):
    case = problem(name)
    with pytest.raises(LeakageError, match="1 test clip"):
        case.fit(case.make(), leak=True)


@pytest.mark.parametrize("problem, name", MEMBERS)
def test_nan_responses_are_refused(problem, name):
    case = problem(name)
    with pytest.raises(ValueError, match="NaN"):
        case.fit(case.make(), nan=True)


def test_the_schema_enums_are_the_registry():
    """The config's names of decoders (the schema's enums) are the registry's; reconstruction takes the one-subject
    decoders and the oracle."""
    from test_study import SCHEMA, schema_leaves

    leaves = schema_leaves(SCHEMA)
    one_subject = [name for name, cls in DECODERS.items() if not cls.pooled]
    assert leaves["decoding.models"]["items"]["enum"] == list(DECODERS)
    assert leaves["reconstruction.audio.model"]["enum"] == [*one_subject, "oracle"]
    assert leaves["reconstruction.generation.models"]["items"]["enum"] == [*one_subject, "oracle"]
    assert set(DEFAULT_DECODING_MODELS) <= set(DECODERS)


def test_registered_generators_are_the_generation_classes():
    """Each generator of ``GENERATORS`` names its class, which takes the captions exactly where the registry says
    so, and otherwise only ``GeneratorOptions`` fields (the generate stage hands it those its constructor names)."""
    from inspect import signature

    from b2m.options import GENERATORS, GeneratorOptions
    from b2m.reconstruct import generation

    fields = {item.name for item in dataclasses.fields(GeneratorOptions)}
    for name, info in GENERATORS.items():
        cls = getattr(generation, info.cls)
        parameters = set(signature(cls).parameters) - {"cache"}
        assert cls.name == name and ("caption_vectors" in parameters) == info.reads_captions
        assert parameters - {"caption_vectors"} <= fields
