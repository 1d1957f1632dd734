"""A new subject from minutes of its data: each subject left out of the pool, the pool and its shared space fitted
on the others only, the subject aligned from its first minutes (0: anatomically) and decoded; the left-out
subject's responses reach neither the template nor the decoder, and no test clip reaches any fit."""

from __future__ import annotations

import dataclasses
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from b2m.models import decoding, pooled
from b2m.models.pooled import first_minutes, run_lengths, training_seconds
from b2m.options import KshotOptions, PooledOptions, RidgeOptions
from b2m.stages.models import full_data_point, kshot_point, kshot_points, voxel_positions
from conftest import record_guarded_fits
from test_pooled import SPEC, SUBJECTS, folds_of

LEFT_OUT = "sub-003"  # the subject of the highest SNR: its curve rises well above chance


def options(*minutes: float) -> dict:
    return {RidgeOptions: RidgeOptions(cv_folds=3), PooledOptions: SPEC, KshotOptions: KshotOptions(minutes)}


def scores_at(points, level="clip") -> pd.DataFrame:
    table = pd.concat([p.scores for p in points], ignore_index=True)
    return table[(table.metric == "identification_accuracy") & (table.level == level)].set_index("minutes")


def positions_of(pool):
    return voxel_positions({s: pool / s / "w" for s in SUBJECTS})


def test_first_minutes_are_the_rows_of_the_first_training_time_in_run_order(pool):
    rows = folds_of(pool)[0].train_rows
    lengths = run_lengths(rows)
    assert len(first_minutes(rows, 0)) == 0
    in_first_run = first_minutes(rows, lengths.iloc[0] / 60)  # exactly the first run's length
    assert set(rows["run"].iloc[in_first_run]) == {lengths.index[0]}
    assert len(in_first_run) == (rows["run"] == lengths.index[0]).sum()
    one_minute = first_minutes(rows, 1)
    expected = [i for run in sorted(rows.run.unique()) for i in rows.index[rows.run == run]
                if rows.run_end_s[i] + lengths[lengths.index < run].sum() <= 60]
    assert list(one_minute) == sorted(expected, key=lambda i: training_seconds(rows)[i]) and len(expected) > 0
    assert len(first_minutes(rows, lengths.sum() / 60 + 1)) == len(rows)


@pytest.fixture(scope="module")
def curve(pool):
    """The k-shot points of ``LEFT_OUT`` at 0 minutes, 1 minute and its whole training time, and the pool's
    decoder."""
    positions, reason = positions_of(pool)
    assert reason == ""
    total = run_lengths(folds_of(pool)[0].train_rows).sum() / 60
    points, decoder = kshot_points(folds_of(pool), LEFT_OUT, options(0, 1, total), positions, reason)
    return total, points, decoder


def test_a_left_out_subject_is_decoded_from_minutes_of_its_data(pool, curve):
    total, points, decoder = curve
    assert decoder.subjects_ == [s for s in SUBJECTS if s != LEFT_OUT]
    window = scores_at(points, "window")
    assert list(window.point) == ["zero-shot", "k-shot", "k-shot"] and (window.reason == "").all()
    everything = window.loc[total]
    assert everything.value > 0.6 and everything.value > everything.chance_mean + 5 * everything.chance_sd
    assert window.loc[1].alignment_rows < everything.alignment_rows == len(folds_of(pool)[2].train_rows)
    assert np.isfinite(window.value).all() and np.isfinite(scores_at(points).value).all()


def test_the_left_out_subject_reaches_neither_the_template_nor_the_decoder(pool, monkeypatch):
    """The pool (every alignment of the template and the decoder) is the same bits whatever the left-out subject's
    responses; every fit is guarded with every subject's test clips held out; the left-out subject's rows reach
    only its own alignment, and only its first minute's rows."""
    folds = folds_of(pool)
    calls = record_guarded_fits(monkeypatch, pooled, decoding)
    _, first = kshot_points(folds, LEFT_OUT, options(1), None, "")
    noise = np.random.default_rng(3)
    other = [dataclasses.replace(f, X_train=noise.standard_normal(f.X_train.shape).astype(np.float32),
                                 X_test=noise.standard_normal(f.X_test.shape).astype(np.float32))
             if f.subject == LEFT_OUT else f for f in folds]
    _, second = kshot_points(other, LEFT_OUT, options(1), None, "")
    for subject in first.subjects_:
        assert first.alignments_[subject].coef.tobytes() == second.alignments_[subject].coef.tobytes()
    assert first.decoder_.predict(np.eye(SPEC.components, dtype=np.float32)).tobytes() == \
        second.decoder_.predict(np.eye(SPEC.components, dtype=np.float32)).tobytes()

    new = folds[SUBJECTS.index(LEFT_OUT)]
    test_clips = set().union(*(f.test_rows.clip_id for f in folds))
    allowed = {row.tobytes() for row in new.X_train[first_minutes(new.train_rows, 1)]}
    forbidden = {row.tobytes() for row in np.vstack([new.X_train, new.X_test])} - allowed
    seen_new = 0
    for _, X, clips, held_out in calls[:len(calls) // 2]:  # the first run's fits (the second's rows are noise)
        assert clips.isdisjoint(test_clips) and test_clips <= held_out
        rows = {row.tobytes() for row in X}
        assert rows.isdisjoint(forbidden)
        seen_new += bool(rows & allowed)
    assert seen_new == 1  # the left-out subject's own alignment, and no other fit


def test_zero_shot_is_refused_where_the_grids_differ(pool, curve, tmp_path):
    """m = 0 needs every subject's voxels on one grid: a mask on another grid (or none) makes the point not
    available, with its reason, in the scores and the alignment table."""
    for subject in SUBJECTS:
        (tmp_path / subject / "w").mkdir(parents=True)
        shutil.copy(pool / subject / "voxels.parquet", tmp_path / subject)
        mask = nib.load(pool / subject / "mask.nii.gz")
        affine = mask.affine.copy()
        affine[0, 3] += 2.0 * (subject == LEFT_OUT)  # the left-out subject's grid one voxel over
        nib.save(nib.Nifti1Image(np.asarray(mask.dataobj), affine), tmp_path / subject / "mask.nii.gz")
    positions, reason = voxel_positions({s: tmp_path / s / "w" for s in SUBJECTS})
    assert positions is None and "grids" in reason and LEFT_OUT in reason
    new = folds_of(pool)[SUBJECTS.index(LEFT_OUT)]
    refused = kshot_point(0, curve[2], None, new, [], options(0), positions, reason)
    clip = scores_at([refused])
    assert np.isnan(clip.loc[0].value) and clip.loc[0].reason == reason and refused.alignment["reason"] == reason
    assert voxel_positions({s: tmp_path / "nowhere" / s for s in SUBJECTS})[0] is None


def test_the_full_data_end_is_the_subjects_own_whole_mask_decoder(pool):
    rows = folds_of(pool)[0].train_rows
    scores = pd.DataFrame({"subject": "sub-001", "fold": "test", "feature": "acoustic", "level": "clip",
                           "metric": "identification_accuracy", "model": ["whole-mask", "contrastive"],
                           "value": [0.9, 0.8]})
    end = full_data_point(scores, rows)
    assert list(end.model) == ["whole-mask"] and end.point.item() == "full-data"
    assert end.minutes.item() == pytest.approx(run_lengths(rows).sum() / 60)
    assert end.alignment_rows.item() == len(rows)


def kshot_table() -> pd.DataFrame:
    """A k-shot summary of two subjects, one feature, both levels: zero-shot refused for sub-002."""
    rows = []
    for subject, zero in (("sub-001", 0.55), ("sub-002", np.nan)):
        for level in ("window", "clip"):
            for point, minutes, value in (("zero-shot", 0.0, zero), ("k-shot", 1.0, 0.6), ("k-shot", 4.0, 0.7),
                                          ("full-data", 30.0, 0.8)):
                rows.append({"subject": subject, "fold": "test", "feature": "acoustic", "level": level,
                             "metric": "identification_accuracy", "point": point, "minutes": minutes,
                             "value": value, "ci_low": value - 0.05, "ci_high": value + 0.05,
                             "reason": "grids differ" if np.isnan(value) else ""})
    return pd.DataFrame(rows)


def test_the_kshot_figure_marks_both_ends_of_every_subjects_curve():
    from b2m.report.figures import plot_kshot

    figure = plot_kshot(kshot_table())
    axes = figure.axes
    assert [axis.get_title() for axis in axes] == ["k-shot: acoustic, test fold, window level",
                                                   "k-shot: acoustic, test fold, clip level"]
    drawn = [(line.get_marker(), tuple(line.get_xdata()), tuple(line.get_ydata())) for line in axes[0].lines
             if len(line.get_xdata())]
    assert sorted(end for end in drawn if end[0] in ("*", "s")) == [("*", (30.0,), (0.8,)), ("*", (30.0,), (0.8,)),
                                                                     ("s", (0.0,), (0.55,))]  # sub-002's refused
    assert not any(np.isnan(y).any() for _, _, y in drawn)


def test_report_kshot_writes_the_figure_from_the_summary(tmp_path):
    import subprocess
    import sys

    from b2m.io import write_parquet

    write_parquet(tmp_path / "kshot.parquet", kshot_table(), {})
    subprocess.run([sys.executable, "-m", "b2m", "report-kshot", "--scores", str(tmp_path / "kshot.parquet"),
                    "--out", str(tmp_path / "kshot.svg")], check=True)
    assert (tmp_path / "kshot.svg").read_text().lstrip().startswith("<?xml")


def test_a_left_out_subject_without_its_responses_is_refused_before_anything_is_written(pool, tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "b2m", "decode-kshot", "--responses",
                             *[f"{s}={pool / s / 'w'}" for s in SUBJECTS[:2]], "--features",
                             str(pool / "acoustic.parquet"), "--subject", LEFT_OUT, "--full-data",
                             str(tmp_path / "scores.parquet"), "--out", str(tmp_path / "kshot")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--responses" in result.stderr and "fix:" in result.stderr
    assert not (tmp_path / "kshot").exists()
