"""Encoding: statistics against scipy references, and recovery of the synthetic study's planted voxels
(hits, false discoveries held by FDR, banded ridge crediting the planted space, noise ceiling, maps)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from b2m.data.bids import BidsDataset
from b2m.data.simulate import DESIGN
from b2m.options import CleaningOptions
from b2m.data.responses import clean_subject, window_responses
from b2m.features import extract_features, make_extractor
from b2m.io import read_parquet_provenance, write_parquet
from b2m.models.backend import use_backend
from b2m.errors import ConfigError, InputError
from b2m.layout import CV_ALL, WindowFiles
from b2m.models.encoding import (BandedEncoder, HeldOutPrediction, RidgeEncoder, block_cross_products,
                                 block_permutations, clip_blocks, delay_features, fdr_bh, gaussian_p,
                                 held_out_predictions, noise_ceiling, pearson_per_column, permutation_p, pool_held_out,
                                 predict_held_out, predict_held_out_bands, score_banded, score_encoding, voxel_scores)
from b2m.data.windowed import align, load_fold, load_test_repeats
from b2m.stages.models import predict_folds
from conftest import SUBPROCESS_ENV

ALPHAS = np.logspace(-1, 7, 17)


def prepare(study, folder):
    dataset = BidsDataset(study["bids_root"], dataclasses.replace(DESIGN, outer_folds=3))  # one run a cv fold
    clean_subject(dataset, "sub-001", folder / "clean",
                  CleaningOptions(mask=str(study["mask"]), atlas=str(study["atlas"])))
    window_responses(dataset, "sub-001", folder / "clean", folder / "clean/w", 1.5, 1.5)
    clips = dataset.stimulus_table()
    acoustic = extract_features(clips, study["stimuli"], make_extractor("acoustic", 1.5, 1.5))
    write_parquet(folder / "acoustic.parquet", acoustic, {})
    noise = acoustic.copy()
    noise["embedding"] = list(np.random.default_rng(5).standard_normal((len(noise), 20)).astype(np.float32))
    write_parquet(folder / "noise.parquet", noise, {})
    use_backend("numpy")
    voxels = pd.read_parquet(folder / "clean/voxels.parquet")
    truth = pd.read_parquet(study["truth"] / "sub-001_voxels.parquet")
    planted = voxels.merge(truth, on=["i", "j", "k"], how="left", validate="one_to_one").planted.to_numpy()
    return folder, planted


def encode_fold(responses, features, fold, n_permutations, pooled_folds=()):
    """The encode stage's load → fit → score of one feature table (``RidgeEncoder`` over ``ALPHAS``)."""
    held_out = predict_folds(responses, fold, pooled_folds, {"acoustic": features}, predict_held_out,
                             RidgeEncoder(alphas=ALPHAS))
    return score_encoding(held_out, fold, load_test_repeats(responses, fold), n_permutations)


def encode_banded(responses, spaces, fold, n_iter, pooled_folds=()):
    """The encode-banded stage's load → fit → score of the spaces (name → table)."""
    held_out = predict_folds(responses, fold, pooled_folds, spaces, predict_held_out_bands,
                             BandedEncoder(alphas=ALPHAS, n_iter=n_iter))
    return score_banded(held_out, list(spaces), fold, load_test_repeats(responses, fold))


@pytest.fixture(scope="module")
def planted_study(tiny_study, tmp_path_factory):
    return prepare(tiny_study, tmp_path_factory.mktemp("encoding"))


@pytest.fixture(scope="module")
def encoded(planted_study):
    folder, _ = planted_study
    return encode_fold(folder / "clean/w", folder / "acoustic.parquet", "test", n_permutations=1000)


def test_statistics_match_scipy():
    rng = np.random.default_rng(0)
    true, predicted = rng.standard_normal((50, 7)), rng.standard_normal((50, 7))
    predicted[:, 0] += true[:, 0]
    reference = [stats.pearsonr(true[:, v], predicted[:, v], alternative="greater") for v in range(7)]
    r = pearson_per_column(true, predicted)
    np.testing.assert_allclose(r, [ref.statistic for ref in reference])
    np.testing.assert_allclose(gaussian_p(r, 50), [ref.pvalue for ref in reference], rtol=1e-6)
    p = rng.random(200) ** 2
    np.testing.assert_allclose(fdr_bh(p), stats.false_discovery_control(p, method="bh"))


def test_block_permutations_move_whole_clips():
    clips = ["a"] * 3 + ["b"] * 3 + ["c"] * 2 + ["d"] * 3 + ["e"] * 2
    for order in block_permutations(clips, 20, seed=0):
        assert sorted(order) == list(range(len(clips)))
        moved = np.asarray(clips)[order]
        starts = [0, 3, 6, 8, 11]
        for start, length in zip(starts, [3, 3, 2, 3, 2]):
            block = order[start:start + length]
            assert len(set(moved[start:start + length])) == 1 and (np.diff(block) == 1).all()


def permutation_p_by_rows(true, predicted, clips, n_permutations, seed):
    """The permutation null by its definition: r of every row order of ``block_permutations``."""
    observed = pearson_per_column(true, predicted)
    exceed = sum(pearson_per_column(true, predicted[order]) >= observed
                 for order in block_permutations(clips, n_permutations, seed))
    return (1 + exceed) / (1 + n_permutations)


@pytest.mark.parametrize("lengths, n_voxels, voxel_batch", [
    ([3, 3, 2, 3, 2], 40, 7),  # few blocks: the identity permutation is drawn often and must count as a tie
    (np.random.default_rng(5).choice([7, 9, 10, 10, 10], 60), 300, 128),  # the test fold's shape
])
def test_permutation_p_equals_the_row_permutation_definition(lengths, n_voxels, voxel_batch):
    rng = np.random.default_rng(6)
    clips = np.repeat([f"clip{i}" for i in range(len(lengths))], lengths)
    true = rng.standard_normal((len(clips), n_voxels)).astype(np.float32)
    predicted = (0.2 * true + rng.standard_normal(true.shape)).astype(np.float32)
    expected = permutation_p_by_rows(true.astype(np.float64), predicted.astype(np.float64), clips, 300, seed=2)
    np.testing.assert_array_equal(permutation_p(true, predicted, clips, 300, seed=2, voxel_batch=voxel_batch),
                                  expected)


def test_block_cross_products_against_brute_force():
    rng = np.random.default_rng(7)
    clips = np.repeat(["a", "b", "c", "d"], [2, 3, 2, 3])
    t, p = rng.standard_normal((10, 4)), rng.standard_normal((10, 4))
    starts, lengths = clip_blocks(clips)
    cross = block_cross_products(t, p, starts, lengths)
    for a, b in np.ndindex(4, 4):
        expected = ((t[starts[a]:starts[a] + lengths[a]] * p[starts[b]:starts[b] + lengths[b]]).sum(axis=0)
                    if lengths[a] == lengths[b] else 0)
        np.testing.assert_allclose(cross[:, a, b], expected, atol=1e-12)


def test_delays_shift_within_each_clip():
    rows = pd.DataFrame({"run": 1, "event": [1, 1, 1, 2, 2], "clip_id": ["a", "a", "a", "b", "b"]})
    X = np.arange(5, dtype=float)[:, None]
    np.testing.assert_array_equal(delay_features(X, rows, [0, 1, 2]),
                                  [[0, 0, 0], [1, 0, 0], [2, 1, 0], [3, 0, 0], [4, 3, 0]])


def test_noise_ceiling_recovers_a_known_signal_to_noise():
    rng = np.random.default_rng(1)
    n_windows, n_voxels, n_repeats, noise_sd = 400, 50, 4, 1.5
    signal = rng.standard_normal((n_windows, n_voxels))
    repeats = np.concatenate([signal + noise_sd * rng.standard_normal(signal.shape) for _ in range(n_repeats)])
    rows = pd.DataFrame({"clip_id": np.tile(np.repeat([f"c{i}" for i in range(40)], 10), n_repeats),
                         "window": np.tile(np.arange(10), 40 * n_repeats), "repeat": np.repeat(range(n_repeats),
                                                                                              n_windows)})
    ceiling, n = noise_ceiling(repeats, rows)
    expected = np.sqrt(1 / (1 + noise_sd ** 2 / n_repeats))
    assert n == 4 and abs(np.median(ceiling) - expected) < 0.03


def test_encoding_finds_the_planted_voxels_and_holds_the_fdr(planted_study, encoded):
    _, planted = planted_study
    voxels = encoded.voxels
    discovered = voxels.q.to_numpy() < 0.05
    hits, false = (discovered & planted).sum(), (discovered & ~planted).sum()
    assert hits >= 0.7 * planted.sum()
    assert false <= 0.1 * discovered.sum()  # FDR 5 %, with room for a small study
    assert (voxels.p_permutation[~planted] < 0.05).mean() < 0.08
    # The paper's Gaussian null ignores the autocorrelation of consecutive windows and runs liberal here.
    assert (voxels.p_gaussian[~planted] < 0.05).mean() > (voxels.p_permutation[~planted] < 0.05).mean()
    assert voxels.noise_ceiling[planted].median() > 2 * voxels.noise_ceiling[~planted].median()


def test_without_signal_nothing_is_discovered(null_study, tmp_path):
    folder, _ = prepare(null_study, tmp_path)
    voxels = encode_fold(folder / "clean/w", folder / "acoustic.parquet", "test", n_permutations=500).voxels
    assert (voxels.q < 0.05).mean() < 0.02


@pytest.mark.parametrize("fold", ["cv-2", "genre-metal"])
def test_other_folds_find_planted_voxels(planted_study, fold):
    folder, planted = planted_study
    voxels = encode_fold(folder / "clean/w", folder / "acoustic.parquet", fold, n_permutations=500).voxels
    assert "noise_ceiling" not in voxels  # only the official test fold has repeats
    assert np.median(voxels.r[planted]) > 0.2 > np.median(np.abs(voxels.r[~planted]))


CV_FOLDS = ("cv-1", "cv-2", "cv-3")  # the planted study's cv folds: one training run each


def test_fold_cv_all_scores_every_cv_folds_predictions_together(planted_study):
    """Fold cv-all's voxel scores are voxel_scores over every cv fold's test responses and predictions, each
    fold's encoder fit here by hand on its own training rows; its permutation null exchanges every stimulus."""
    folder, planted = planted_study
    responses, features = folder / "clean/w", folder / "acoustic.parquet"
    table, rows, true, predicted, alphas = pd.read_parquet(features), [], [], [], []
    for fold in CV_FOLDS:
        data = load_fold(responses, fold)
        encoder = RidgeEncoder(alphas=ALPHAS).fit(align(data.train_rows, table, features)[1], data.X_train,
                                                  data.train_rows, data.test_rows["clip_id"])
        rows.append(data.test_rows)
        true.append(data.X_test)
        predicted.append(encoder.predict(align(data.test_rows, table, features)[1], data.test_rows))
        alphas.append(encoder.best_alphas_)
    clips = pd.concat(rows, ignore_index=True)["clip_id"]
    expected = voxel_scores(np.concatenate(true), np.concatenate(predicted), clips, 200)
    result = encode_fold(responses, features, CV_ALL, n_permutations=200, pooled_folds=CV_FOLDS)
    pd.testing.assert_frame_equal(result.voxels, expected)
    np.testing.assert_array_equal(result.alphas, np.stack(alphas))
    assert result.n_test == len(clips) and len(result.encoder) == len(CV_FOLDS)
    assert "not estimated" in result.noise_ceiling and "noise_ceiling" not in result.voxels
    discovered = result.voxels.q.to_numpy() < 0.05
    assert (discovered & planted).sum() >= 0.7 * planted.sum()
    assert (discovered & ~planted).sum() <= 0.1 * discovered.sum()


def test_pooled_rows_hold_each_held_out_stimulus_once(planted_study):
    """The pooled held-out rows of the cv folds (their true responses as the prediction, no fit): each fold's,
    in fold order, every training stimulus's windows once and together."""
    folder, _ = planted_study
    responses = folder / "clean/w"

    def unfitted(fold):
        data = load_fold(responses, fold)
        return HeldOutPrediction(fold, data.test_rows, data.X_test, data.X_test[None])  # one band

    pooled = held_out_predictions(unfitted, CV_ALL, CV_FOLDS, WindowFiles(responses).train_rows)
    clips = pooled.rows["clip_id"]
    assert set(clips) == set(pd.read_parquet(responses / "train_rows.parquet")["clip_id"])
    assert not pooled.rows.duplicated(["clip_id", "window"]).any() and len(clip_blocks(clips)[0]) == clips.nunique()
    assert pooled.rows["cv_fold"].is_monotonic_increasing and pooled.encoder == CV_FOLDS
    np.testing.assert_array_equal(pooled.predicted[0], pooled.true)  # bands × rows × voxels joined along the rows


def test_pooling_refuses_a_stimulus_held_out_by_two_folds(tmp_path):
    def held_out(clips):
        rows = pd.DataFrame({"clip_id": clips, "window": range(len(clips))})
        return HeldOutPrediction(None, rows, np.zeros((len(clips), 2)), np.zeros((len(clips), 2)))

    where = tmp_path / "train_rows.parquet"
    pooled = pool_held_out({"cv-1": held_out(["a", "a", "b"]), "cv-2": held_out(["c", "d"])}, where)
    assert list(pooled.rows.clip_id) == ["a", "a", "b", "c", "d"] and pooled.encoder == (None, None)
    with pytest.raises(InputError, match="held out by fold cv-2 and by fold cv-1") as error:
        pool_held_out({"cv-1": held_out(["a", "b"]), "cv-2": held_out(["b", "c"])}, where)
    assert str(where) in str(error.value)
    with pytest.raises(ConfigError, match="pools two cv folds or more"):
        held_out_predictions(held_out, CV_ALL, ("cv-1",), where)


def test_banded_fold_cv_all_pools_every_cv_fold(planted_study):
    folder, planted = planted_study
    spaces = {"acoustic": folder / "acoustic.parquet", "noise": folder / "noise.parquet"}
    result = encode_banded(folder / "clean/w", spaces, CV_ALL, n_iter=5, pooled_folds=CV_FOLDS)
    assert result.n_test == sum(len(load_fold(folder / "clean/w", fold).test_rows) for fold in CV_FOLDS)
    assert len(result.encoder) == len(CV_FOLDS)
    voxels = result.voxels
    assert np.median(voxels.r[planted]) > 0.2 > np.median(np.abs(voxels.r[~planted]))
    assert voxels.r2_acoustic[planted].mean() > 10 * abs(voxels.r2_noise[planted].mean())


def test_banded_ridge_credits_the_planted_space(planted_study):
    folder, planted = planted_study
    result = encode_banded(folder / "clean/w", {"acoustic": folder / "acoustic.parquet",
                                                "noise": folder / "noise.parquet"}, "test", n_iter=10)
    voxels = result.voxels
    found = planted & (voxels.q.to_numpy() < 0.05)
    assert found.sum() >= 0.6 * planted.sum()
    assert voxels.r2_acoustic[found].mean() > 0.2 and abs(voxels.r2_noise[found].mean()) < 0.02
    joint = voxels.r2_acoustic + voxels.r2_noise
    assert np.corrcoef(joint[found], voxels.r[found] ** 2)[0, 1] > 0.9


def test_encode_command_writes_maps_on_the_mask_grid(planted_study, tmp_path):
    folder, _ = planted_study
    out = tmp_path / "encoding"
    done = subprocess.run([sys.executable, "-m", "b2m", "encode", "--responses", str(folder / "clean/w"),
                           "--features", str(folder / "acoustic.parquet"), "--out", str(out), "--subject", "sub-001",
                           "--feature", "acoustic", "--backend", "numpy", "--n-permutations", "1000"],
                          capture_output=True, text=True, env=SUBPROCESS_ENV)
    assert done.returncode == 0, done.stderr
    voxels, positions = pd.read_parquet(out / "voxels.parquet"), pd.read_parquet(folder / "clean/voxels.parquet")
    image = nib.load(out / "r.nii.gz")
    mask = nib.load(folder / "clean/mask.nii.gz")
    assert image.shape == mask.shape and np.allclose(image.affine, mask.affine)
    values = image.get_fdata()[positions.i, positions.j, positions.k]
    np.testing.assert_allclose(values, voxels.r, rtol=1e-6)
    assert np.isnan(image.get_fdata()).sum() == np.prod(mask.shape) - len(positions)
    summary = pd.read_parquet(out / "summary.parquet").iloc[0]
    assert summary.null == "permutation" and summary.n_significant_q05 > 0
    # a fold's job records the sections its document holds: the pooled folds only in a job of fold cv-all
    assert set(read_parquet_provenance(out / "summary.parquet")["params"]["options"]) == {"encoding", "ridge"}


def test_encode_command_of_fold_cv_all_writes_one_map_of_every_cv_fold(planted_study, tmp_path):
    """`b2m encode --fold cv-all --folds ...` (the pooled folds an option, as the rule's document gives them):
    the encoding folder of a fold, summary named cv-all, each pooled fold's alphas; without two folds it stops."""
    folder, _ = planted_study

    def encode(out, *folds):
        return subprocess.run([sys.executable, "-m", "b2m", "encode", "--responses", str(folder / "clean/w"),
                               "--features", str(folder / "acoustic.parquet"), "--out", str(out), "--subject",
                               "sub-001", "--feature", "acoustic", "--backend", "numpy", "--fold", CV_ALL,
                               "--folds", *folds], capture_output=True, text=True, env=SUBPROCESS_ENV)

    done = encode(tmp_path / "encoding", *CV_FOLDS)
    assert done.returncode == 0, done.stderr
    summary = pd.read_parquet(tmp_path / "encoding/summary.parquet").iloc[0]
    voxels = pd.read_parquet(tmp_path / "encoding/voxels.parquet")
    assert summary.fold == CV_ALL and summary.n_test_rows == sum(len(load_fold(folder / "clean/w", fold).test_rows)
                                                                for fold in CV_FOLDS)
    assert np.load(tmp_path / "encoding/alphas.npy").shape == (len(CV_FOLDS), len(voxels))
    provenance = read_parquet_provenance(tmp_path / "encoding/summary.parquet")["params"]
    assert provenance["options"]["pooling"] == {"folds": list(CV_FOLDS)} and list(provenance["inner_cv"]) == list(
        CV_FOLDS)
    assert (tmp_path / "encoding/r.nii.gz").exists() and (tmp_path / "encoding/q.nii.gz").exists()
    alone = encode(tmp_path / "alone", "cv-1")
    assert alone.returncode == 2 and "pools two cv folds or more" in alone.stderr
    assert "Traceback" not in alone.stderr
    assert not (tmp_path / "alone").exists()


def test_encoding_without_voxel_positions_writes_no_maps(planted_study, tmp_path):
    """The authors' arrays have no voxel coordinates: tables are written, maps are not."""
    folder, _ = planted_study
    shutil.copytree(folder / "clean/w", tmp_path / "responses/w")
    out = tmp_path / "encoding"
    done = subprocess.run([sys.executable, "-m", "b2m", "encode", "--responses", str(tmp_path / "responses/w"),
                           "--features", str(folder / "acoustic.parquet"), "--out", str(out), "--subject", "sub-001",
                           "--backend", "numpy"], capture_output=True, text=True, env=SUBPROCESS_ENV)
    assert done.returncode == 0, done.stderr
    assert (out / "voxels.parquet").exists() and (out / "summary.parquet").exists()
    assert not list(out.glob("*.nii.gz")) and "no maps written" in done.stderr


def test_r2_split_is_himalayas_product_measure():
    """The bands' R² shares are himalaya's ``r2_score_split`` (include_correlation), bit for bit, and sum to the
    joint R²."""
    from himalaya.backend import set_backend
    from himalaya.scoring import r2_score_split

    from b2m.models.encoding import r2_split

    set_backend("numpy")
    rng = np.random.default_rng(8)
    true = rng.standard_normal((50, 30)).astype(np.float32)
    true -= true.mean(0)
    split = (0.3 * true[None] + rng.standard_normal((3, 50, 30))).astype(np.float32)
    split -= split.mean(axis=1, keepdims=True)
    shares = r2_split(true, split)
    np.testing.assert_array_equal(shares, r2_score_split(true, split))
    joint = 1 - ((true - split.sum(0)) ** 2).sum(0) / (true ** 2).sum(0)
    np.testing.assert_allclose(shares.sum(0), joint, rtol=1e-4, atol=1e-5)


def test_permutation_p_on_the_torch_backend_is_numpys():
    """The null on a torch backend (a GPU job's path; here torch's CPU) gives numpy's p-values, blocks of unequal
    lengths and drawn identity permutations included."""
    from b2m.models.backend import use_backend

    rng = np.random.default_rng(9)
    lengths = rng.choice([2, 3, 9, 10, 10], 24)
    clips = np.repeat([f"clip{i}" for i in range(len(lengths))], lengths)
    true = rng.standard_normal((len(clips), 200)).astype(np.float32)
    predicted = (0.2 * true + rng.standard_normal(true.shape)).astype(np.float32)
    expected = permutation_p(true, predicted, clips, 500, seed=3)
    use_backend("torch")
    try:
        np.testing.assert_array_equal(permutation_p(true, predicted, clips, 500, seed=3, voxel_batch=64), expected)
    finally:
        use_backend("numpy")
