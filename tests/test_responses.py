"""Response preparation: drift, z-scoring, lagged windows, streaming reads, and the round trip
simulate → clean → window against the planted truth."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from b2m.data import responses as resp
from b2m.data.authors import authors_responses
from b2m.options import CleaningOptions
from b2m.data.bids import BidsDataset
from b2m.data.responses import (average_windows, clean_subject, read_masked_run, remove_drift,
                                window_responses, window_scan_ranges, zscore_scans)
from b2m.data.simulate import DESIGN, simulate_study
from b2m.errors import InputError
from b2m.io import load_npy
from conftest import TINY


@pytest.mark.parametrize("n_scans", [410, 120, 7])
def test_running_median_matches_brute_force(n_scans):
    """A centred 161-scan median that shrinks at the edges; runs shorter than the window included."""
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((n_scans, 4)) + np.linspace(0, 5, n_scans)[:, None]).astype(np.float32)
    expected = data - np.array([[np.median(data[max(0, t - 80):t + 81, v]) for v in range(4)]
                                for t in range(n_scans)])
    out = remove_drift(data.copy(), 1.5, CleaningOptions(drift="median", drift_window_s=240))
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_polynomial_drift_is_removed_exactly():
    x = np.linspace(-1, 1, 300)[:, None]
    data = (3 + 2 * x - 4 * x ** 2 + x ** 3).astype(np.float32) * np.ones((1, 3), np.float32)
    out = remove_drift(data, 1.5, CleaningOptions(drift="polynomial", polynomial_order=3))
    assert np.abs(out).max() < 1e-4


def test_zscore_uses_the_analysed_scans_and_flags_constant_voxels():
    rng = np.random.default_rng(1)
    data = rng.normal(5, 3, (410, 3)).astype(np.float32)
    data[:, 2] = 7.0
    bad = zscore_scans(data, slice(10, 410))
    assert bad.tolist() == [False, False, True]
    np.testing.assert_allclose(data[10:, :2].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(data[10:, :2].std(axis=0), 1, atol=1e-5)


def test_lagged_windows_pick_scans_by_midpoint():
    rows = pd.DataFrame({"run_start_s": [15.0, 15.0, 600.0], "run_end_s": [16.5, 20.0, 601.5]})
    first, stop = window_scan_ranges(rows, tr=1.5, lag_s=4.5)
    assert first.tolist() == [13, 13, 403] and stop.tolist() == [14, 16, 404]
    first, stop = window_scan_ranges(rows, tr=1.5, lag_s=0.0)
    assert first.tolist() == [10, 10, 400] and stop.tolist() == [11, 13, 401]


def test_average_windows_matches_brute_force():
    rng = np.random.default_rng(2)
    scans = rng.standard_normal((50, 6)).astype(np.float32)
    first, stop = np.array([0, 3, 10, 49]), np.array([1, 7, 20, 50])
    expected = np.stack([scans[a:b].mean(axis=0) for a, b in zip(first, stop)])
    np.testing.assert_allclose(average_windows(scans, first, stop), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["example4d.nii.gz", "functional.nii"])
def test_streamed_read_equals_full_load_on_real_epi(real, name, monkeypatch):
    path = real / "nibabel-testdata" / name
    img = nib.load(path)
    full = np.asarray(img.get_fdata(), dtype=np.float32)
    mask = full.mean(axis=3) > np.percentile(full.mean(axis=3), 60)
    monkeypatch.setattr(resp, "SCAN_CHUNK", 3)  # several chunks, one of them partial
    np.testing.assert_allclose(read_masked_run(path, mask), full[mask].T, rtol=1e-6)


def test_computed_mask_on_real_epi(real):
    mask = resp.compute_mask(real / "nibabel-testdata" / "example4d.nii.gz")
    assert mask.shape == (128, 96, 24) and 0.05 < mask.mean() < 0.6


def test_truncated_nifti_is_named(real, tmp_path):
    path = tmp_path / "sub-001_task-Training_run-01_bold.nii"
    data = (real / "nibabel-testdata" / "functional.nii").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated.*\n.*re-download"):
        read_masked_run(path, np.ones((17, 21, 3), bool))


@pytest.fixture(scope="module")
def cleaned(tiny_study, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    dataset = BidsDataset(tiny_study["bids_root"], DESIGN)
    summary = clean_subject(dataset, "sub-001", out / "clean",
                            CleaningOptions(mask=str(tiny_study["mask"]), atlas=str(tiny_study["atlas"])))
    windowed = window_responses(dataset, "sub-001", out / "clean", out / "w1.5", 1.5, 1.5, lag_s=4.5)
    return {"dir": out, "dataset": dataset, "summary": summary, "windowed": windowed}


def test_round_trip_recovers_the_planted_signal(tiny_study, cleaned):
    truth = pd.read_parquet(tiny_study["truth"] / "sub-001_voxels.parquet")
    signal = np.load(tiny_study["truth"] / "sub-001_signal.npy")
    scans = load_npy(cleaned["dir"] / "clean/scans.npy")
    voxels = pd.read_parquet(cleaned["dir"] / "clean/voxels.parquet")
    assert cleaned["summary"]["n_voxels"] == len(truth) == len(voxels)  # the mask is the cortex
    column = {tuple(v): c for c, v in enumerate(voxels[["i", "j", "k"]].to_numpy())}
    planted = truth[truth.planted].reset_index(drop=True)
    assert scans.shape == (4 * 410, len(voxels)) and signal.shape == (4 * 410, len(planted))

    def corr(a, b):
        a, b = a - a.mean(), b - b.mean()
        return float(a @ b / np.sqrt((a @ a) * (b @ b)))

    r = np.array([corr(scans[:, column[(p.i, p.j, p.k)]], signal[:, n]) for n, p in planted.iterrows()])
    # expected about sqrt(snr / (1 + snr)): 0.67 at snr 0.8, 0.53 at 0.4
    assert np.median(r[planted.snr == 0.8]) > 0.55
    assert np.median(r[planted.snr == 0.4]) > 0.4
    null = truth[~truth.planted].head(len(planted))
    r_null = [corr(scans[:, column[(p.i, p.j, p.k)]], signal[:, n % len(planted)])
              for n, p in enumerate(null.itertuples())]
    assert abs(np.mean(r_null)) < 0.05 and np.percentile(np.abs(r_null), 95) < 0.15
    labels = voxels["roi"].to_numpy()
    assert set(labels) == set(range(1, 13))


def test_gzipped_study_from_two_processes_cleans_to_the_same_scans(tiny_study, cleaned, tmp_path):
    """`simulate --gzip --jobs 2` (the full-size benchmark's form): .nii.gz as OpenNeuro serves ds003720, with
    subjects written in parallel, holds the same images, and cleaning them gives the same scans."""
    config = replace(TINY, n_subjects=2, gzip_bold=True)
    study = simulate_study(tmp_path / "gz", config, jobs=2)
    plain, gzipped = Path(tiny_study["bids_root"]) / "sub-001/func", study["bids_root"] / "sub-001/func"
    for path in sorted(plain.glob("*_bold.nii")):
        np.testing.assert_array_equal(np.asanyarray(nib.load(gzipped / f"{path.name}.gz").dataobj),
                                      np.asanyarray(nib.load(path).dataobj))
    assert sorted(p.name for p in (study["bids_root"] / "sub-002/func").glob("*_bold.nii.gz")) == [
        "sub-002_task-Test_run-01_bold.nii.gz", *(f"sub-002_task-Training_run-0{r}_bold.nii.gz" for r in (1, 2, 3))]
    clean_subject(BidsDataset(study["bids_root"], DESIGN), "sub-001", tmp_path / "clean",
                  CleaningOptions(mask=str(study["mask"]), atlas=str(study["atlas"])))
    np.testing.assert_array_equal(load_npy(tmp_path / "clean/scans.npy"), load_npy(cleaned["dir"] / "clean/scans.npy"))


def test_window_rows_and_repeats(cleaned):
    assert cleaned["windowed"] == {"train_rows": 3 * 397, "test_rows": 100, "test_repeat_rows": 397,
                                   "dropped_windows": 4 * 3}
    out = cleaned["dir"] / "w1.5"
    test_rows = pd.read_parquet(out / "test_rows.parquet")
    assert sorted(test_rows.n_repeats.value_counts().items()) == [(3, 3), (4, 97)]
    repeats, repeat_rows = load_npy(out / "test_repeats.npy"), pd.read_parquet(out / "test_repeats_rows.parquet")
    test = load_npy(out / "test.npy")
    for index in (0, 57, 99):
        row = test_rows.iloc[index]
        chosen = (repeat_rows.clip_id == row.clip_id) & (repeat_rows.window == row.window)
        np.testing.assert_allclose(test[index], repeats[chosen.to_numpy()].mean(axis=0), atol=1e-5)
    provenance = json.loads((out / "train.npy.json").read_text())
    assert provenance["params"]["lag_s"] == 4.5 and provenance["b2m_version"]


def test_training_rows_carry_label_cv_fold_and_group(cleaned, tmp_path):
    """Rows say their label (the genre column by name too), the cv-<k> fold that holds them out and their inner-CV
    group: the run, as ds003720's runs share no clip; folds of runs (design.cv run) or of stimuli stratified by
    the label (design.cv stimulus)."""
    train = pd.read_parquet(cleaned["dir"] / "w1.5/train_rows.parquet")
    assert (train.label == train.genre).all() and (train.group == train.run).all()
    assert (train.cv_fold == 0).all()  # outer_folds 4 > 3 training runs: no cv fold
    assert not {"cv_fold", "group"} & set(pd.read_parquet(cleaned["dir"] / "w1.5/test_rows.parquet").columns)
    root = cleaned["dataset"].root
    window_responses(BidsDataset(root, replace(DESIGN, outer_folds=3)), "sub-001", cleaned["dir"] / "clean",
                     tmp_path / "runs", 1.5, 1.5)
    by_run = pd.read_parquet(tmp_path / "runs/train_rows.parquet")
    assert (by_run.cv_fold == by_run.run).all() and (by_run.group == by_run.run).all()
    window_responses(BidsDataset(root, replace(DESIGN, cv="stimulus", outer_folds=3)), "sub-001",
                     cleaned["dir"] / "clean", tmp_path / "stimuli", 1.5, 1.5)
    by_stimulus = pd.read_parquet(tmp_path / "stimuli/train_rows.parquet")
    assert by_stimulus.groupby("clip_id").cv_fold.nunique().max() == 1 and set(by_stimulus.cv_fold) == {1, 2, 3}
    per_fold = by_stimulus.drop_duplicates("clip_id").groupby(["cv_fold", "label"]).size().unstack()
    assert (per_fold.max() - per_fold.min() <= 1).all()  # each genre's clips dealt evenly over the folds


def test_no_test_clip_in_any_training_row(cleaned):
    out = cleaned["dir"] / "w1.5"
    train = set(pd.read_parquet(out / "train_rows.parquet").clip_id)
    test = set(pd.read_parquet(out / "test_rows.parquet").clip_id)
    assert len(train) == 120 and len(test) == 10 and train.isdisjoint(test)


def test_authors_arrays_give_the_raw_path_result(cleaned, tmp_path):
    """Build the authors' format (unlagged analysed scans, test cycles averaged) from the cleaned scans."""
    dataset = cleaned["dataset"]
    scans = load_npy(cleaned["dir"] / "clean/scans.npy")
    train = np.concatenate([scans[r * 410 + 10:(r + 1) * 410] for r in range(3)]).T
    test = scans[3 * 410 + 10:4 * 410].reshape(4, 100, -1).mean(axis=0).T
    np.save(tmp_path / "train.npy", train)
    np.save(tmp_path / "test.npy", test)
    authors_responses(dataset, "sub-001", tmp_path / "train.npy", tmp_path / "test.npy", tmp_path / "out", 1.5, 1.5)
    raw = cleaned["dir"] / "w1.5"
    np.testing.assert_array_equal(load_npy(tmp_path / "out/train.npy"), load_npy(raw / "train.npy"))
    a_rows, r_rows = pd.read_parquet(tmp_path / "out/test_rows.parquet"), pd.read_parquet(raw / "test_rows.parquet")
    merged = a_rows.reset_index().merge(r_rows.reset_index(), on=["clip_id", "window"])
    assert len(merged) == 100
    full = merged.n_repeats_y.to_numpy() == 4  # rows whose 4 presentations are the same in both
    np.testing.assert_allclose(load_npy(tmp_path / "out/test.npy")[merged.index_x[full]],
                               load_npy(raw / "test.npy")[merged.index_y[full]], atol=1e-5)


def test_authors_array_of_wrong_shape_is_named(cleaned, tmp_path):
    np.save(tmp_path / "sub-001_Resp_Training.npy", np.zeros((5, 4800), np.float32))
    np.save(tmp_path / "sub-001_Resp_Test_Mean.npy", np.zeros((5, 100), np.float32))
    with pytest.raises(InputError, match="Resp_Training.npy.*expected voxels × 1200"):
        authors_responses(cleaned["dataset"], "sub-001", tmp_path / "sub-001_Resp_Training.npy",
                          tmp_path / "sub-001_Resp_Test_Mean.npy", tmp_path / "out", 1.5, 1.5)


def _copy_subject(tiny_study, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(tiny_study["bids_root"], root)
    return root


def test_short_bold_run_is_named(tiny_study, tmp_path):
    root = _copy_subject(tiny_study, tmp_path)
    path = root / "sub-001/func/sub-001_task-Test_run-01_bold.nii"
    img = nib.load(path, mmap=False)  # the file is rewritten in place
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., :409], img.affine, img.header), path)
    with pytest.raises(InputError, match="409 scans.*410 scans"):
        clean_subject(BidsDataset(root, DESIGN), "sub-001", tmp_path / "out", CleaningOptions(mask=str(tiny_study["mask"])))
    assert not (tmp_path / "out/scans.npy").exists()


def test_mask_on_another_grid_is_named(tiny_study, tmp_path):
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), np.eye(4)), mask)
    with pytest.raises(InputError, match="mask grid.*\n.*resample_to_img"):
        clean_subject(BidsDataset(tiny_study["bids_root"], DESIGN), "sub-001", tmp_path / "out",
                      CleaningOptions(mask=str(mask)))


def test_missing_bold_run_is_named(tiny_study, tmp_path):
    root = _copy_subject(tiny_study, tmp_path)
    (root / "sub-001/func/sub-001_task-Training_run-02_bold.nii").unlink()
    with pytest.raises(InputError, match="run-02_bold.nii: BOLD image missing"):
        clean_subject(BidsDataset(root, DESIGN), "sub-001", tmp_path / "out", CleaningOptions(mask=str(tiny_study["mask"])))


def test_constant_voxels_are_dropped_with_their_mask_entry(tiny_study, tmp_path):
    root = _copy_subject(tiny_study, tmp_path)
    path = root / "sub-001/func/sub-001_task-Training_run-03_bold.nii"
    img = nib.load(path, mmap=False)  # the file is rewritten in place
    data = np.asarray(img.dataobj).copy()
    mask = nib.load(tiny_study["mask"]).get_fdata() > 0
    i, j, k = np.argwhere(mask)[5]
    data[i, j, k, :] = 1000
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)
    summary = clean_subject(BidsDataset(root, DESIGN), "sub-001", tmp_path / "out",
                            CleaningOptions(mask=str(tiny_study["mask"])))
    assert summary["n_dropped_voxels"] == 1 and summary["n_voxels"] == mask.sum() - 1
    scans = load_npy(tmp_path / "out/scans.npy")
    assert scans.shape[1] == mask.sum() - 1 and np.isfinite(scans).all()
    assert nib.load(tmp_path / "out/mask.nii.gz").get_fdata()[i, j, k] == 0


def test_computed_mask_covers_the_brain(tiny_study, tmp_path):
    """nilearn's compute_epi_mask keeps brain voxels only (its opening erodes the edge of a tiny grid)."""
    summary = clean_subject(BidsDataset(tiny_study["bids_root"], DESIGN), "sub-001", tmp_path / "out",
                            CleaningOptions(mask="compute"))
    bold = tiny_study["bids_root"] / "sub-001/func/sub-001_task-Training_run-01_bold.nii"
    brain = nib.load(bold).get_fdata().mean(axis=3) > 500  # brain about 1000, background about 30
    computed = nib.load(tmp_path / "out/mask.nii.gz").get_fdata() > 0
    assert summary["n_voxels"] == computed.sum()
    assert not (computed & ~brain).any() and computed.sum() > 0.3 * brain.sum()


def _fmriprep_tree(bids_root, out, space, brain_mask):
    """fMRIPrep's file names for the raw runs' BOLD (as if already preprocessed) and a brain mask per run."""
    func = out / "sub-001" / "func"
    func.mkdir(parents=True)
    for bold in sorted((bids_root / "sub-001" / "func").glob("*_bold.nii")):
        stem = bold.name.removesuffix("_bold.nii")
        shutil.copy(bold, func / f"{stem}_space-{space}_desc-preproc_bold.nii")
        nib.save(brain_mask, func / f"{stem}_space-{space}_desc-brain_mask.nii.gz")
    return out


def test_fmriprep_derivatives_give_the_raw_path_result(tiny_study, cleaned, tmp_path):
    """With the preprocessed BOLD equal to the raw one, the fMRIPrep input cleans to the same bytes; `mask:
    compute` takes the intersection of fMRIPrep's run masks."""
    raw_mask = nib.load(tiny_study["mask"])
    space = "MNI152NLin2009cAsym_res-2"
    fmriprep = _fmriprep_tree(tiny_study["bids_root"], tmp_path / "fmriprep", space, raw_mask)
    dataset = BidsDataset(tiny_study["bids_root"], DESIGN, fmriprep=fmriprep, space=space)
    assert dataset.runs("sub-001")[0].bold.parent == fmriprep / "sub-001" / "func"
    clean_subject(dataset, "sub-001", tmp_path / "clean", CleaningOptions(atlas=str(tiny_study["atlas"])))
    np.testing.assert_array_equal(load_npy(tmp_path / "clean/scans.npy"), load_npy(cleaned["dir"] / "clean/scans.npy"))
    np.testing.assert_array_equal(nib.load(tmp_path / "clean/mask.nii.gz").get_fdata(),
                                  nib.load(cleaned["dir"] / "clean/mask.nii.gz").get_fdata())

    smaller = np.asarray(raw_mask.dataobj).copy()
    smaller[:6] = 0
    last = sorted((fmriprep / "sub-001/func").glob("*Test*_desc-brain_mask.nii.gz"))[-1]
    nib.save(nib.Nifti1Image(smaller, raw_mask.affine), last)
    summary = clean_subject(dataset, "sub-001", tmp_path / "clean2")
    assert summary["n_voxels"] == int((smaller > 0).sum())


def test_fmriprep_missing_space_is_named(tiny_study, tmp_path):
    fmriprep = _fmriprep_tree(tiny_study["bids_root"], tmp_path / "fmriprep", "T1w", nib.load(tiny_study["mask"]))
    dataset = BidsDataset(tiny_study["bids_root"], DESIGN, fmriprep=fmriprep, space="MNI152NLin6Asym")
    missing = "space-MNI152NLin6Asym_desc-preproc_bold.*\n.*--output-spaces MNI152NLin6Asym"
    with pytest.raises(InputError, match=missing):
        clean_subject(dataset, "sub-001", tmp_path / "out")
    with pytest.raises(InputError, match="fMRIPrep derivatives folder not found"):
        BidsDataset(tiny_study["bids_root"], DESIGN, fmriprep=tmp_path / "nowhere")
