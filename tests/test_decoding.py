"""Decoding on the synthetic study: beats chance by a wide margin where signal is planted, sits at chance
where none is, and never trains on a test clip, for every kind of outer fold."""

from __future__ import annotations

import dataclasses
import shutil
import weakref
from inspect import signature

import numpy as np
import pandas as pd
import pytest

from b2m.data.decoding_inputs import StoredSide, load_target_fold, read_factors, voxel_labels, write_factors
from b2m.data.windowed import load_fold
from b2m.layout import ScanFiles
from b2m.models.decoding import RidgeDecoder, label_space
from b2m.models.encoding import BandedEncoder, RidgeEncoder
from b2m.models.factors import WHOLE_MASK, fold_decoders, fold_factors, roi_decoder
from b2m.models.folds import LeakageError, check_no_leakage
from b2m.options import (DEFAULT_DECODING_MODELS, ContrastiveOptions, DecodingOptions, FactorOptions, RidgeOptions,
                         SelectionOptions)
from b2m.stages.models import fit_decoders, score_decoders

ALPHAS = np.logspace(-1, 7, 17)


def factor_inputs(folder, fold="test"):
    """The fold's training responses, rows and ROI labels, as the factorise stage reads them."""
    data = load_fold(folder / "clean/w", fold)
    return data.X_train, data.train_rows, voxel_labels(ScanFiles(folder / "clean"))


def factors_of(folder, fold="test", n_iter=3):
    return fold_factors(*factor_inputs(folder, fold), FactorOptions(n_iter=n_iter))


def decode(folder, n_permutations=100, fold="test", models=DEFAULT_DECODING_MODELS,
           contrastive=ContrastiveOptions(), selection=SelectionOptions()):
    """The decode stage's fits and scores (``fit_decoders``, ``score_decoders``) on the prepared folder, with the
    default ridge options, ``models`` and ``contrastive``'s and ``selection``'s settings."""
    features = pd.read_parquet(folder / "acoustic.parquet")
    data = load_target_fold(folder / "clean/w", features, folder / "acoustic.parquet", fold)
    options = {RidgeOptions: RidgeOptions(), ContrastiveOptions: contrastive, SelectionOptions: selection,
               DecodingOptions: DecodingOptions(models=models, n_permutations=n_permutations, n_bootstrap=200)}
    fitted = fit_decoders(options, data, factors_of(folder, fold))
    return score_decoders(fitted, data, label_space(features), options)


def scores_by_level(result, model="whole-mask"):
    scores = result.scores
    return scores[(scores.metric == "identification_accuracy") & (scores.model == model)].set_index("level")


@pytest.mark.parametrize("model", ["whole-mask", "roi-ensemble", "roi-banded"])
def test_planted_signal_is_decoded_well_above_chance(planted, model):
    scores = scores_by_level(decode(planted), model)
    window = scores.loc["window"]
    assert window.n_items == 100 and abs(window.chance_mean - 0.5) < 0.02
    assert window.value > 0.65 and window.value > window.chance_mean + 5 * window.chance_sd
    assert window.ci_low < window.value < window.ci_high and window.ci_low > 0.55
    assert scores.loc["clip", "value"] > 0.6  # 10 clips: chance sd is about 0.1


def test_roi_ensemble_picks_the_planted_rois(tiny_study, planted):
    """Signal is planted in the temporal ROIs of the synthetic atlas: they lead the CV ranking."""
    rois = decode(planted, n_permutations=10).rois
    atlas = pd.read_parquet(tiny_study["truth"] / "sub-001_voxels.parquet")
    planted_rois = set(atlas[atlas.planted].roi_label.unique())
    assert len(rois) == 12 and rois.selected.sum() == 6
    assert set(rois.roi.head(len(planted_rois))) == planted_rois


def test_roi_banded_weight_falls_on_the_planted_rois(tiny_study, planted):
    """The banded decoder's ROIs: the planted (temporal) ROIs carry almost all of its prediction, and the ROI of
    the largest kernel weight is a planted one (the uniform draw, chosen by many dims, spreads γ evenly)."""
    rois = decode(planted, n_permutations=10).rois
    atlas = pd.read_parquet(tiny_study["truth"] / "sub-001_voxels.parquet")
    planted_rois = set(atlas[atlas.planted].roi_label.unique())
    assert np.isclose(rois.banded_weight.sum(), 1) and np.isclose(rois.banded_share.sum(), 1)
    assert rois.banded_share[rois.roi.isin(planted_rois)].sum() > 0.8, rois
    assert rois.roi[rois.banded_weight.idxmax()] in planted_rois, rois


def test_the_factorisation_is_written_one_side_at_a_time(planted, tmp_path):
    """factorise's writer holds one side at a time besides the whole mask's (which the banded decoder may scale):
    each side is unreferenced by the time the next is made, whatever the number of ROIs and draws."""
    splits, decoders = fold_decoders(*factor_inputs(planted), FactorOptions(n_iter=3))
    made = []

    def watched(sides):
        for side in sides:
            assert sum(ref() is not None for ref in made) <= 1, "an earlier side is still held"
            made.append(weakref.ref(side))
            yield side

    stream = ((name, decoder if name == WHOLE_MASK else dataclasses.replace(decoder, sides=watched(decoder.sides)))
              for name, decoder in decoders)
    write_factors(tmp_path / "factors.npz", splits, stream, {})
    factors = read_factors(tmp_path / "factors.npz")
    assert len(made) == sum(len(decoder.sides) for name, decoder in factors.decoders.items() if name != WHOLE_MASK)
    assert len(made) > 12  # 12 ROIs and the banded decoder's draws


def test_shared_factors_give_the_same_bits_as_factorising_in_the_fit(planted, tmp_path):
    """The whole-mask and ROI decoders fitted from the fold's factorisation (written and read back, as the decode
    jobs of a window share it) give the bits of the same decoders computing their stimulus sides in their own
    fits, as they did before the factorisation was shared."""
    written = factors_of(planted)
    write_factors(tmp_path / "factors.npz", written.splits, written.decoders.items(), {})
    factors = read_factors(tmp_path / "factors.npz")
    assert all(isinstance(side, StoredSide) for decoder in factors.decoders.values() for side in decoder.sides)
    data = load_fold(planted / "clean/w", "test")
    targets = pd.read_parquet(planted / "acoustic.parquet")
    from b2m.data.windowed import align

    rows, Y = align(data.train_rows, targets, "acoustic")
    held_out = data.test_rows.clip_id
    for name in (WHOLE_MASK, roi_decoder(5), roi_decoder(11)):  # the responses as the ROI decoders give them
        decoder_factors = factors.decoders[name]
        X = data.X_train if name == WHOLE_MASK else data.X_train[:, decoder_factors.columns]
        shared = RidgeDecoder()._fit_sides(X, Y, rows, held_out, decoder_factors.sides)
        alone = RidgeDecoder()._fit_sides(X, Y, rows, held_out)
        X_test = data.X_test[:, decoder_factors.columns]
        assert shared.predict(X_test).tobytes() == alone.predict(X_test).tobytes()
        assert shared.cv_scores_.tobytes() == alone.cv_scores_.tobytes()


@pytest.mark.parametrize("fold, margin_sd", [("cv-1", 5), ("cv-3", 5), ("genre-jazz", 3)])
def test_other_folds_decode_above_chance(planted, fold, margin_sd):
    """A genre fold tests within one unseen genre: a harder task (0.62 here), still far above chance."""
    window = scores_by_level(decode(planted, n_permutations=50, fold=fold)).loc["window"]
    assert window.value > window.chance_mean + margin_sd * window.chance_sd


@pytest.mark.parametrize("fold", ["test", "cv-1", "cv-2", "cv-3", "genre-blues", "genre-rock"])
def test_no_clip_of_an_outer_test_fold_is_in_its_training_rows(planted, fold):
    data = load_fold(planted / "clean/w", fold)
    assert set(data.train_rows.clip_id).isdisjoint(data.test_rows.clip_id)
    assert len(data.train_rows) == len(data.X_train) and len(data.test_rows) == len(data.X_test)
    if fold.startswith("genre-"):
        assert set(data.test_rows.genre) == {fold[6:]} and fold[6:] not in set(data.train_rows.genre)
    if fold.startswith("cv-"):  # the k-th of 3 training runs (the fixture's design.outer_folds), its repeats none
        assert set(data.train_rows.run) == {1, 2, 3} - {int(fold[3:])} and not data.test_rows.duplicated(
            ["clip_id", "window"]).any()


def test_without_planted_signal_decoding_is_at_chance(unplanted):
    window = scores_by_level(decode(unplanted)).loc["window"]
    assert window.ci_low < 0.5 < window.ci_high
    assert abs(window.value - window.chance_mean) < 4 * window.chance_sd + 0.02


def test_decoding_is_reproducible_bit_for_bit(planted):
    first, second = decode(planted, n_permutations=20), decode(planted, n_permutations=20)
    for model in ("whole-mask", "roi-ensemble", "roi-banded"):
        assert first.predicted[model].tobytes() == second.predicted[model].tobytes()
    assert first.scores.equals(second.scores)


def test_leakage_is_refused():
    with pytest.raises(LeakageError, match="1 test clip"):
        check_no_leakage(["pop.00001", "jazz.00002"], ["jazz.00002", "rock.00003"])
    check_no_leakage(["pop.00001"], ["rock.00003"])


@pytest.mark.parametrize("estimator", ["decoder", "encoder", "banded"])
def test_every_estimator_refuses_a_test_clip_at_fit_time(planted, estimator):
    """The guard is in each estimator's fit, with no switch: a held-out clip among the training rows, or rows
    that do not describe the samples the inner CV splits, stop the fit before any hyperparameter is chosen."""
    data = load_fold(planted / "clean/w", "test")
    X, rows, held_out = data.X_train, data.train_rows, data.test_rows["clip_id"]
    features = np.random.default_rng(0).standard_normal((len(rows), 4))
    fits = {"decoder": lambda r, h: RidgeDecoder().fit(X, features, r, h),
            "encoder": lambda r, h: RidgeEncoder(ALPHAS).fit(features, X, r, h),
            "banded": lambda r, h: BandedEncoder(ALPHAS, n_iter=2).fit({"a": features, "b": features}, X, r, h)}
    fit = fits[estimator]
    with pytest.raises(LeakageError, match="1 test clip"):
        fit(rows, [*held_out.unique()[:3], rows.clip_id.iloc[-1]])
    with pytest.raises(LeakageError, match="training samples but"):
        fit(rows.iloc[:-1], held_out)
    assert fit(rows, held_out).training_clips_ == frozenset(rows.clip_id)
    assert "held_out" in signature(type(fit(rows, held_out)).fit).parameters


def test_decoder_never_trains_on_a_test_clip(planted, tmp_path):
    """Plant a test clip into the training rows: decoding must refuse to fit."""
    shutil.copytree(planted, tmp_path / "copy")
    rows = pd.read_parquet(tmp_path / "copy/clean/w/train_rows.parquet")
    rows.loc[0, "clip_id"] = pd.read_parquet(tmp_path / "copy/clean/w/test_rows.parquet").clip_id.iloc[0]
    rows.to_parquet(tmp_path / "copy/clean/w/train_rows.parquet")
    with pytest.raises(LeakageError):
        decode(tmp_path / "copy", n_permutations=10)


def test_nan_in_the_responses_or_the_features_is_bad_input_naming_the_file(planted, tmp_path):
    """A NaN in a window-responses array or a feature table stops the fold's loading with an InputError naming the
    file (the stage exits 2, nothing written), before any estimator's own refusal."""
    from b2m.errors import InputError
    from b2m.io import load_npy, write_npy
    from b2m.layout import WindowFiles

    responses = tmp_path / "w"
    shutil.copytree(planted / "clean/w", responses)
    array = WindowFiles(responses).array("train")
    X = load_npy(array)
    X[3, 2] = np.nan
    write_npy(array, X, {})
    features = pd.read_parquet(planted / "acoustic.parquet")
    with pytest.raises(InputError, match="the window responses hold 1 NaN") as err:
        load_target_fold(responses, features, planted / "acoustic.parquet", "test")
    assert str(array) in str(err.value)
    broken = features.assign(embedding=[np.where(np.arange(len(e)) == 0, np.nan, e) for e in features.embedding])
    with pytest.raises(InputError, match="the feature rows hold") as err:
        load_target_fold(planted / "clean/w", broken, "features.parquet", "test")
    assert "features.parquet" in str(err.value)
