"""The contrastive linear decoder: recovers the planted truth above chance, sits at chance without signal, chooses
its settings by inner CV among those given, never trains on a test clip, and is the same bits every time."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from b2m.models.contrastive import Basis, ContrastiveDecoder, info_nce, settings
from b2m.data.decoding_inputs import load_target_fold
from b2m.models.folds import LeakageError
from b2m.options import ContrastiveOptions, RidgeOptions
from test_decoding import decode, scores_by_level

SMALL = ContrastiveOptions(temperatures=(0.1,), weight_decays=(0.01,), epochs=(4, 10), components=48,
                           learning_rate=5e-3, batch_size=256)


def fold_of(folder):
    fold = load_target_fold(folder / "clean/w", pd.read_parquet(folder / "acoustic.parquet"), "f", "test")
    return fold, fold.train_rows, fold.Y_train, fold.test_rows, fold.Y_test


def test_the_planted_signal_is_decoded_well_above_chance(planted):
    window = scores_by_level(decode(planted, models=("whole-mask", "contrastive"), contrastive=SMALL),
                             "contrastive").loc["window"]
    assert window.value > 0.65 and window.value > window.chance_mean + 5 * window.chance_sd


def test_without_planted_signal_it_is_at_chance(unplanted):
    window = scores_by_level(decode(unplanted, models=("whole-mask", "contrastive"), contrastive=SMALL),
                             "contrastive").loc["window"]
    assert abs(window.value - window.chance_mean) < 4 * window.chance_sd + 0.02


def test_settings_are_chosen_by_inner_cv_grouped_by_run(planted):
    data, rows, Y, test_rows, _ = fold_of(planted)
    spec = dataclasses.replace(SMALL, temperatures=(0.1, 0.3))
    decoder = ContrastiveDecoder(RidgeOptions(cv_folds=3), spec).fit(data.X_train, Y, rows, test_rows.clip_id)
    table = decoder.cv_table_
    assert len(table) == len(settings(spec)) * len(spec.epochs) * rows.run.nunique() == 12
    best = table.groupby(["temperature", "weight_decay", "epochs"])["accuracy"].mean().idxmax()
    assert (decoder.temperature_, decoder.weight_decay_, decoder.epochs_) == best
    assert decoder.coef_.shape == (48, Y.shape[1]) and decoder.basis_.axes.shape == (data.X_train.shape[1], 48)


def test_it_is_the_same_bits_every_time(planted):
    data, rows, Y, test_rows, _ = fold_of(planted)
    spec = dataclasses.replace(SMALL, epochs=(3,))
    first, second = (ContrastiveDecoder(contrastive=spec).fit(data.X_train, Y, rows, test_rows.clip_id)
                     .predict(data.X_test) for _ in range(2))
    assert first.tobytes() == second.tobytes()


def test_a_test_clip_among_the_training_rows_is_refused(planted):
    data, rows, Y, test_rows, _ = fold_of(planted)
    with pytest.raises(LeakageError, match="1 test clip"):
        ContrastiveDecoder(contrastive=SMALL).fit(data.X_train, Y, rows,
                                                  [*test_rows.clip_id.unique()[:2], rows.clip_id.iloc[0]])


def test_info_nce_leaves_the_other_windows_of_a_clip_out_of_the_negatives():
    import torch

    predicted, true = torch.eye(3), torch.eye(3)
    same_clip_twice = info_nce(predicted, true, torch.tensor([0, 0, 1]), 1.0)
    # row 0's negatives are row 2 only (row 1 is its own clip): log(e + 1) - 1, as rows 1 and 2 alike
    expected = np.log(np.e + 1) - 1
    assert same_clip_twice.item() == pytest.approx((2 * expected + (np.log(np.e + 2) - 1)) / 3)


@pytest.mark.parametrize("shape", [(60, 20), (20, 60)])
def test_the_basis_is_the_principal_axes_of_the_svd(shape):
    """More samples than voxels (the voxels' Gram matrix) or fewer (the samples'): the SVD's axes, up to sign."""
    X = np.random.default_rng(1).standard_normal(shape) @ np.diag(np.linspace(3, 1, shape[1]))
    _, singular, vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    basis = Basis.of(X.astype(np.float32), 5)
    axes = basis.axes * np.sqrt(np.mean(singular[:5] ** 2) / len(X))
    assert np.allclose(np.abs(np.sum(axes * vt[:5].T, axis=0)), 1, atol=1e-4)
    assert Basis.of(X.astype(np.float32), 0).axes.shape[1] == min(shape[0] - 1, shape[1])  # null directions out


def test_the_basis_scales_the_training_rows_to_unit_mean_square():
    X = np.random.default_rng(0).standard_normal((50, 20)) * 7 + 3
    basis = Basis.of(X, 5)
    projected = basis.project(X)
    assert projected.shape == (50, 5) and np.mean(projected ** 2) == pytest.approx(1, rel=1e-5)
    assert np.allclose(projected.mean(axis=0), 0, atol=1e-5)
