"""Every registered estimator behaves as scikit-learn's and himalaya's do, on small random arrays of a planted linear
map: settings (no arrays) in the constructor, fitted state only in trailing-underscore attributes set by ``fit``,
which returns the estimator, ``predict`` gives one row per test sample and one column per target and learns the map,
two fits give the same bits, a held-out clip among the training rows or rows that do not match the samples stop the
fit (``LeakageError``) and leave no fitted state, and so do NaN inputs or targets (``ValueError``). A registry joins
the test with one line of ``REGISTRIES``: the registry and the function that makes a member's problem."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from b2m.errors import InputError
from b2m.models.backend import use_backend
from b2m.models.decoders import DECODERS, ONE_SUBJECT, RECONSTRUCTED, make_decoder
from b2m.models.encoding import ENCODERS, pearson_per_column
from b2m.models.factors import fold_factors
from b2m.models.folds import LeakageError
from b2m.options import (DEFAULT_DECODING_MODELS, ContrastiveOptions, DecodingOptions, FactorOptions,
                         PooledOptions, RidgeOptions, SelectionOptions)

N_VOXELS, N_DIMS, HELD_OUT = 18, 4, [f"test-{n}" for n in range(3)]
# Every option class a decoder takes, at its defaults, but smaller searches.
DECODER_OPTIONS = {**{option: option() for cls in DECODERS.values() for option in cls.options},
                   RidgeOptions: RidgeOptions(cv_folds=3, n_alphas=5), DecodingOptions: DecodingOptions(roi_k=2),
                   ContrastiveOptions: ContrastiveOptions(temperatures=(0.1,), weight_decays=(0.01,), epochs=(2,),
                                                          components=4, batch_size=16),
                   PooledOptions: PooledOptions(n_iter=1, components=4),
                   SelectionOptions: SelectionOptions(candidates=(6, 12, "all"))}
ENCODER_SETTINGS = {"ridge": {"alphas": (0.1, 10.0, 1000.0), "delays": (0, 1)},
                    "banded": {"alphas": (0.1, 10.0, 1000.0), "n_iter": 3}}


def same(table):
    return table


@dataclass
class Problem:
    """One estimator's small problem: ``make()`` an unfitted estimator, ``fit(estimator, rows=same, inputs=same,
    targets=same)`` it (each function changes the training rows, inputs or targets before the fit: of a pooled
    decoder, those of its second subject), ``predict`` with a fitted one, and the true targets of the predicted
    samples (a list: one per subject of a pooled decoder), and the median Pearson r of a prediction of them the
    estimator reaches at least (None: it needs more data or epochs than a test of seconds gives)."""

    make: Callable
    fit: Callable
    predict: Callable
    truth: list
    learns: float | None


def training_rows(n_runs: int = 3, clips_per_run: int = 4, windows: int = 3) -> pd.DataFrame:
    """Rows (clip_id, window, run, group) of ``n_runs`` runs of distinct clips."""
    return pd.DataFrame([{"clip_id": f"clip-{run}-{clip}", "window": window, "run": run, "group": run}
                         for run in range(n_runs) for clip in range(clips_per_run) for window in range(windows)])


def held_out_rows(windows: int = 3) -> pd.DataFrame:
    """Rows (clip_id, window, run, group) of the held-out clips, one run."""
    return pd.DataFrame([{"clip_id": clip, "window": window, "run": 9, "group": 9}
                         for clip in HELD_OUT for window in range(windows)])


def planted(n_train: int, n_test: int, n_in: int, n_out: int, seed: int):
    """Inputs (training, test) and the training outputs with noise (sd 0.5) and the test outputs without, of one
    linear map from ``n_in`` to ``n_out`` columns."""
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((n_in, n_out))
    train, test = rng.standard_normal((n_train, n_in)), rng.standard_normal((n_test, n_in))
    return train, test, train @ weights + 0.5 * rng.standard_normal((n_train, n_out)), test @ weights


def leaked(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(clip_id=[HELD_OUT[0], *rows.clip_id.iloc[1:]])


def poisoned(X: np.ndarray) -> np.ndarray:
    X = X.copy()
    X[5, 1] = np.nan
    return X


def subject_arrays(n_voxels: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A subject's responses (training rows × voxels, test rows × voxels, float32) carrying the targets (training
    rows × dims, test rows × dims): every subject heard the same clips, whose targets are drawn from seed 0."""
    targets = np.random.default_rng(0)
    Y_train, Y_test = (targets.standard_normal((len(rows), N_DIMS)) for rows in (training_rows(), held_out_rows()))
    rng = np.random.default_rng(seed + 1)
    weights = rng.standard_normal((N_DIMS, n_voxels))
    X_train, X_test = (Y @ weights + 0.5 * rng.standard_normal((len(Y), n_voxels)) for Y in (Y_train, Y_test))
    return X_train.astype(np.float32), X_test.astype(np.float32), Y_train, Y_test


def decoder_problem(name: str) -> Problem:
    """A decoder's problem: 36 training rows of 3 runs, 18 voxels (3 ROIs of 5, 3 voxels in none), 4 target dims,
    the fold's factorisation; a pooled decoder's, two subjects (18 and 14 voxels) who heard the same clips."""
    rows = training_rows()
    make = lambda: make_decoder(name, DECODER_OPTIONS)  # noqa: E731
    if DECODERS[name].pooled:
        subjects = [subject_arrays(n, seed) for seed, n in enumerate((N_VOXELS, 14))]
        (X_a, _, Y, Y_test), (X_b, _, _, _) = subjects

        def fit(decoder, rows_of=same, inputs=same, targets=same):
            return decoder.fit([X_a, inputs(X_b)], [Y, targets(Y)], [rows, rows_of(rows)], HELD_OUT, ["sub-a", "sub-b"])

        return Problem(make, fit, lambda decoder: decoder.predict([test for _, test, _, _ in subjects]), [Y_test] * 2,
                       0.5)
    X, X_test, Y, Y_test = subject_arrays(N_VOXELS, 0)
    labels = np.repeat([1, 2, 3, 0], [5, 5, 5, 3])
    factors = fold_factors(X, rows, labels, FactorOptions(cv_folds=3, n_iter=2))

    def fit(decoder, rows_of=same, inputs=same, targets=same):
        return decoder.fit(inputs(X), targets(Y), rows_of(rows), HELD_OUT, factors)

    # the contrastive loss learns no map from 36 rows in the 2 epochs of a test (r about 0.1; 30 epochs, 24 s: 0.2)
    learns = None if ContrastiveOptions in DECODERS[name].options else 0.5
    return Problem(make, fit, lambda decoder: [decoder.predict(X_test)], [Y_test], learns)


def encoder_problem(name: str) -> Problem:
    """An encoder's problem: 36 training rows of 3 runs (run, event, window: the delays), features (rows × 6; for
    banded ridge two spaces of 4 and 2 columns), 12 voxels of responses."""
    rows, held_out = training_rows(), held_out_rows()
    rows["event"], held_out["event"] = rows.clip_id, held_out.clip_id
    X, X_test, Y, Y_test = planted(len(rows), len(held_out), 6, 12, 3)
    spaces = (lambda X: {"a": X[:, :4], "b": X[:, 4:]}) if name == "banded" else same

    def fit(encoder, rows_of=same, inputs=same, targets=same):
        return encoder.fit(spaces(inputs(X)), targets(Y).astype(np.float32), rows_of(rows), HELD_OUT)

    return Problem(lambda: ENCODERS[name](**ENCODER_SETTINGS[name]), fit,
                   lambda encoder: [encoder.predict(spaces(X_test), held_out)], [Y_test], 0.8)


REGISTRIES = {"decoder": (DECODERS, decoder_problem), "encoder": (ENCODERS, encoder_problem)}
MEMBERS = [pytest.param(kind, name, id=f"{kind}-{name}") for kind, (registry, _) in REGISTRIES.items()
           for name in registry]


def problem_of(kind: str, name: str) -> Problem:
    return REGISTRIES[kind][1](name)


def fitted_state(estimator) -> list[str]:
    return [key for key in vars(estimator) if key.endswith("_")]


@pytest.fixture(autouse=True)
def numpy_backend():
    use_backend("numpy")


def test_every_encoder_has_settings_here():
    assert set(ENCODER_SETTINGS) == set(ENCODERS)


@pytest.mark.parametrize("kind, name", MEMBERS)
def test_fit_returns_the_estimator_and_predict_one_row_per_sample(kind, name):
    case = problem_of(kind, name)
    estimator = case.make()
    assert not any(isinstance(getattr(estimator, item.name), np.ndarray) for item in dataclasses.fields(estimator))
    assert not fitted_state(estimator)
    assert case.fit(estimator) is estimator
    assert "training_clips_" in fitted_state(estimator)
    assert estimator.training_clips_ and not estimator.training_clips_ & set(HELD_OUT)
    predicted = case.predict(estimator)
    assert [p.shape for p in predicted] == [t.shape for t in case.truth]
    assert all(isinstance(p, np.ndarray) and np.isfinite(p).all() for p in predicted)
    if case.learns is not None:
        assert all(np.median(pearson_per_column(t, p)) > case.learns for t, p in zip(case.truth, predicted))


@pytest.mark.parametrize("kind, name", MEMBERS)
def test_two_fits_give_the_same_bits(kind, name):
    case = problem_of(kind, name)
    first, second = (case.predict(case.fit(case.make())) for _ in range(2))
    assert [p.tobytes() for p in first] == [p.tobytes() for p in second]


@pytest.mark.parametrize("kind, name", MEMBERS)
@pytest.mark.parametrize("rows_of, error, refusal", [
    (leaked, LeakageError, "1 test clip"),
    # a decoder that reads the factorisation may find there first that the rows are not those it was made for
    (lambda rows: rows.iloc[:-1], (LeakageError, InputError), "training samples but|made for other training rows")],
    ids=["held-out-clip", "rows-not-samples"])
def test_the_guard_refuses_bad_training_rows(kind, name, rows_of, error, refusal):
    case = problem_of(kind, name)
    estimator = case.make()
    with pytest.raises(error, match=refusal):
        case.fit(estimator, rows_of=rows_of)
    assert not fitted_state(estimator)


@pytest.mark.parametrize("kind, name", MEMBERS)
@pytest.mark.parametrize("where", ["inputs", "targets"])
def test_nan_is_refused(kind, name, where):
    case = problem_of(kind, name)
    estimator = case.make()
    with pytest.raises(ValueError, match=r"1 NaN or infinite values \(first at sample 5, column 1"):
        case.fit(estimator, **{where: poisoned})
    assert not fitted_state(estimator)


def test_the_schema_enums_are_the_registry():
    """The config's names of decoders (the schema's enums) are the registry's; reconstruction takes the one-subject
    decoders and the oracle."""
    from test_study import SCHEMA, schema_leaves

    leaves = schema_leaves(SCHEMA)
    assert leaves["decoding.models"]["items"]["enum"] == list(DECODERS)
    assert leaves["reconstruction.audio.model"]["enum"] == list(RECONSTRUCTED)
    assert leaves["reconstruction.generation.models"]["items"]["enum"] == list(RECONSTRUCTED)
    assert set(DEFAULT_DECODING_MODELS) <= set(DECODERS)


TYPO = "whole_mask"  # an unknown decoder name, typed by hand
STAGES_OF_DECODERS = {  # a stage that takes decoder names, with a typo among them and files it never reaches
    "generate": ["--backend", "musicldm", "--predictions", "p.parquet", "--target-scale", "s.npy", "--out", "out",
                 "--models", "oracle", TYPO],
    "retrieve": ["--predictions", "p.parquet", "--target-scale", "s.npy", "--index", "index", "--out", "out",
                 "--audio-model", TYPO],
    "brain-score": ["--responses", "w", "--features", "f.parquet", "--feature", "acoustic", "--out", "out",
                    "--audio-model", TYPO],
    "listening-page": ["--out", "out", "--predictions", "sub-1:acoustic=p.parquet", "--retrieved",
                       "sub-1:acoustic=audio", "--model", TYPO],
    "listening-test": ["--page", "out", "--key", "key.tsv", "--retrieved", "sub-1:acoustic=audio", "--model", TYPO],
}


@pytest.mark.parametrize("command", STAGES_OF_DECODERS)
def test_an_unknown_decoder_stops_the_stage_naming_the_known_ones(command, tmp_path, monkeypatch, caplog):
    """A hand-typed decoder name that is not registered stops the stage (exit status 2) before it reads or
    writes a file, with the names it takes; the config's names are held to the schema's enums instead."""
    from b2m.cli import main

    monkeypatch.chdir(tmp_path)
    for name in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # generate points the hub at its cache
        monkeypatch.delenv(name, raising=False)
    assert main([command, *STAGES_OF_DECODERS[command]]) == 2
    assert f"names {TYPO}, not among the decoders" in caplog.text
    assert f"fix: name one of {', '.join(RECONSTRUCTED)}" in caplog.text
    assert not list(tmp_path.iterdir())


def test_an_unknown_decoder_stops_decode_and_make_decoder():
    from b2m.errors import ConfigError
    from b2m.stages.models import decoders_of

    with pytest.raises(ConfigError, match=f"--models\\) names {TYPO}.*fix: name one of {', '.join(ONE_SUBJECT)}$"):
        decoders_of(("whole-mask", TYPO), factors=None)
    with pytest.raises(ConfigError, match=f"fix: name one of {', '.join(DECODERS)}$"):
        make_decoder(TYPO, DECODER_OPTIONS)


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
