"""Pooled decoding over subjects aligned to a reference space: every subject decoded above chance from the pool,
no test clip in any alignment or in the decoder, the same bits every time; and the simulator's subjects differ
in SNR, so that alignment is not trivial."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from b2m.data.simulate import SimulationConfig, subject_snr
from b2m.io import write_parquet
from b2m.models import decoding, pooled
from b2m.models.folds import LeakageError
from b2m.data.decoding_inputs import load_subject_folds
from b2m.stages.models import fit_pooled, score_pooled
from b2m.options import PooledOptions, RidgeOptions
from conftest import POOL, POOL_SUBJECTS, TINY, record_guarded_fits

SUBJECTS = POOL_SUBJECTS
SPEC = PooledOptions(subjects=tuple(SUBJECTS), reference="shared", n_iter=1, components=48, n_permutations=50,
                     n_bootstrap=100)


def folds_of(pool, fold="test"):
    return load_subject_folds({s: pool / s / "w" for s in SUBJECTS}, pool / "acoustic.parquet", fold)


def decode_pooled(folds, spec):
    """The decode-pooled stage's fit and scores (``fit_pooled``, ``score_pooled``) with 3 inner CV folds: per
    subject its ``DecodingResult``, and the alignment table."""
    options = {RidgeOptions: RidgeOptions(cv_folds=3), PooledOptions: spec}
    decoder = fit_pooled("pooled-aligned", folds, options)
    return score_pooled("pooled-aligned", decoder, folds, options), decoder.alignment_


def window_accuracy(results, subject):
    scores = results[subject].scores
    return scores[(scores.metric == "identification_accuracy") & (scores.level == "window")].iloc[0]


def test_the_simulated_subjects_differ_in_snr_and_voxels(pool):
    assert [subject_snr(POOL, s) for s in SUBJECTS] == pytest.approx([0.4, 0.8, 1.6])
    voxels = [pd.read_parquet(pool / s / "voxels.parquet")[["i", "j", "k"]].apply(tuple, axis=1) for s in SUBJECTS]
    assert len({len(v) for v in voxels}) == 3 and all(0.7 < len(set(v) & set(voxels[0])) / len(v) < 0.9
                                                      for v in voxels[1:])
    assert subject_snr(TINY, "sub-001") == TINY.snr
    assert subject_snr(SimulationConfig(n_subjects=3), "sub-003") == SimulationConfig().snr  # no spread: all alike


@pytest.mark.parametrize("reference", ["shared", "sub-002"])
def test_every_subject_is_decoded_well_above_chance_from_the_pool(pool, reference):
    results, alignment = decode_pooled(folds_of(pool), dataclasses.replace(SPEC, reference=reference))
    for subject in SUBJECTS:
        window = window_accuracy(results, subject)
        assert window.value > 0.6 and window.value > window.chance_mean + 5 * window.chance_sd, subject
    table = alignment.set_index("subject")
    assert list(table.index) == SUBJECTS and (table.components == 48).all()
    if reference != "shared":  # the reference's own map is its principal axes
        assert table.loc[reference, "cv_r2"] == 1 and table.drop(reference).cv_r2.lt(1).all()


def test_with_targets_of_other_clips_the_pool_is_at_chance(pool, tmp_path):
    """Each clip's embedding given to another clip (the same for every subject): the alignment still pairs the
    subjects' responses, but nothing links them to the targets, so no subject may decode above chance."""
    features = pd.read_parquet(pool / "acoustic.parquet")
    clips = features.clip_id.unique()
    shuffled = dict(zip(clips, np.random.default_rng(1).permutation(clips)))
    write_parquet(tmp_path / "shuffled.parquet", features.assign(clip_id=features.clip_id.map(shuffled)), {})
    folds = load_subject_folds({s: pool / s / "w" for s in SUBJECTS}, tmp_path / "shuffled.parquet", "test")
    results, _ = decode_pooled(folds, SPEC)
    for subject in SUBJECTS:
        window = window_accuracy(results, subject)
        assert abs(window.value - window.chance_mean) < 4 * window.chance_sd + 0.03, subject


def test_no_test_clip_reaches_an_alignment_or_the_decoder(pool, monkeypatch):
    """Every fit of the pooled job (each alignment and the decoder) is guarded, with every subject's test clips
    held out, and none of its rows is a test clip."""
    folds = folds_of(pool)
    test_clips = set().union(*(f.test_rows.clip_id for f in folds))
    calls = record_guarded_fits(monkeypatch, pooled, decoding)
    decode_pooled(folds, SPEC)
    fits = [fit.module for fit in calls]  # each subject's rows before anything is fit, then each alignment
    assert fits.count("b2m.models.pooled") == len(SUBJECTS) + len(SUBJECTS) - 1 + SPEC.n_iter * len(SUBJECTS)
    assert fits.count("b2m.models.decoding") == 1
    for _, _, rows, held_out in calls:
        assert rows.isdisjoint(test_clips) and test_clips <= held_out


def test_a_test_clip_in_one_subjects_training_rows_is_refused(pool):
    folds = folds_of(pool)
    folds[1].train_rows.loc[0, "clip_id"] = folds[1].test_rows.clip_id.iloc[0]
    with pytest.raises(LeakageError, match="test clip"):
        decode_pooled(folds, SPEC)


def test_pooled_decoding_is_the_same_bits_every_time(pool):
    (first, first_alignment), (second, second_alignment) = (decode_pooled(folds_of(pool), SPEC) for _ in range(2))
    for subject in SUBJECTS:
        assert (first[subject].predicted["pooled-aligned"].tobytes()
                == second[subject].predicted["pooled-aligned"].tobytes())
        assert first[subject].scores.equals(second[subject].scores)
    pd.testing.assert_frame_equal(first_alignment, second_alignment)


def test_subjects_pair_on_the_clips_they_share(pool):
    folds = folds_of(pool)
    folds[2] = dataclasses.replace(folds[2], train_rows=folds[2].train_rows.iloc[40:].reset_index(drop=True),
                                   X_train=folds[2].X_train[40:], Y_train=folds[2].Y_train[40:])
    index = pooled.paired_rows([f.train_rows for f in folds], SUBJECTS)
    assert [len(i) for i in index] == [len(folds[0].train_rows) - 40] * 3
    keys = [f.train_rows.iloc[i][["clip_id", "window"]].to_numpy() for f, i in zip(folds, index)]
    assert all(np.array_equal(keys[0], other) for other in keys[1:])
