"""Every registered encoder (``b2m.models.encoding.ENCODERS``) behaves as an estimator: settings in the constructor,
``fit`` on arrays returning itself with fitted state in trailing-underscore attributes, ``predict`` samples ×
voxels, two fits equal bit for bit, the leakage guard and the refusal of NaN at fit time. Small random arrays with
a planted linear map, seconds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from b2m.models.backend import use_backend
from b2m.models.encoding import ENCODERS, pearson_per_column
from b2m.models.folds import LeakageError

ALPHAS = (0.1, 10.0, 1000.0)
SETTINGS = {"ridge": {"alphas": ALPHAS, "delays": (0, 1)}, "banded": {"alphas": ALPHAS, "n_iter": 3}}


def spaces_of(name: str, X: np.ndarray):
    """An encoder's features from one array (samples × 6): the array, or for banded ridge two spaces of it."""
    return {"a": X[:, :4], "b": X[:, 4:]} if name == "banded" else X


def sample_rows(prefix: str, n_clips: int, n_runs: int) -> pd.DataFrame:
    """Rows of ``n_clips`` clips of 5 windows each, dealt over ``n_runs`` runs (the inner CV's groups)."""
    clips = np.repeat([f"{prefix}{c}" for c in range(n_clips)], 5)
    run = np.repeat(np.arange(n_clips) % n_runs, 5) + 1
    return pd.DataFrame({"clip_id": clips, "run": run, "group": run, "event": np.repeat(np.arange(n_clips), 5),
                         "window": np.tile(np.arange(5), n_clips)})


@pytest.fixture(scope="module")
def arrays():
    """Training and test rows, features (samples × 6) and responses (samples × 12) of one planted linear map."""
    use_backend("numpy")
    rng = np.random.default_rng(3)
    weights = rng.standard_normal((6, 12))
    train, test = sample_rows("train", 24, 4), sample_rows("test", 6, 1)
    X_train, X_test = rng.standard_normal((len(train), 6)), rng.standard_normal((len(test), 6))
    Y_train = (X_train @ weights + 0.5 * rng.standard_normal((len(train), 12))).astype(np.float32)
    Y_test = (X_test @ weights).astype(np.float32)
    return train, X_train, Y_train, test, X_test, Y_test


def test_every_encoder_has_settings_here():
    assert set(SETTINGS) == set(ENCODERS)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_fit_predict_shapes_and_fitted_state(name, arrays):
    train, X_train, Y_train, test, X_test, Y_test = arrays
    encoder = ENCODERS[name](**SETTINGS[name])
    assert not any(isinstance(getattr(encoder, f.name), np.ndarray) for f in dataclasses.fields(encoder))
    assert not [key for key in vars(encoder) if key.endswith("_")]  # no fitted state before fit
    assert encoder.fit(spaces_of(name, X_train), Y_train, train, test["clip_id"]) is encoder
    fitted = [key for key in vars(encoder) if key.endswith("_")]
    assert {"training_clips_", "response_mean_", "model_"} <= set(fitted)
    assert encoder.training_clips_ == frozenset(train.clip_id) and encoder.response_mean_.shape == (12,)
    predicted = encoder.predict(spaces_of(name, X_test), test)
    assert isinstance(predicted, np.ndarray) and predicted.shape == Y_test.shape
    assert np.median(pearson_per_column(Y_test, predicted)) > 0.8  # the planted map is learnt


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_two_fits_give_the_same_bits(name, arrays):
    train, X_train, Y_train, test, X_test, _ = arrays
    first, second = (ENCODERS[name](**SETTINGS[name]).fit(spaces_of(name, X_train), Y_train, train, test["clip_id"])
                     .predict(spaces_of(name, X_test), test) for _ in range(2))
    assert first.tobytes() == second.tobytes()


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_the_guard_refuses_a_held_out_clip_among_the_training_rows(name, arrays):
    train, X_train, Y_train, test, _, _ = arrays
    encoder = ENCODERS[name](**SETTINGS[name])
    with pytest.raises(LeakageError, match="1 test clip"):
        encoder.fit(spaces_of(name, X_train), Y_train, train, [*test["clip_id"].unique(), train.clip_id.iloc[7]])
    with pytest.raises(LeakageError, match="training samples but"):
        encoder.fit(spaces_of(name, X_train), Y_train, train.iloc[:-1], test["clip_id"])
    assert not hasattr(encoder, "model_")


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("where", ["features", "responses"])
def test_nan_is_refused_with_a_clear_error(name, where, arrays):
    train, X_train, Y_train, test, _, _ = arrays
    X, Y = X_train.copy(), Y_train.copy()
    (X if where == "features" else Y)[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN or infinite values \(first at sample 5"):
        ENCODERS[name](**SETTINGS[name]).fit(spaces_of(name, X), Y, train, test["clip_id"])
