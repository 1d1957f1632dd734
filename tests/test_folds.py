"""The outer folds of a design: cv-<k> by stimulus (stratified by the first label, the same for every subject, a
held-out stimulus's repeats averaged), leave one value of any label column out, the inner CV grouped by stimulus
where runs share stimuli, and leave-run-out folds refused there. On real metadata (ds003720, ds004007, ds000171)
and on the tiny simulated study, changed so that two of its runs play the same stimuli."""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from b2m.data.bids import BidsDataset
from b2m.data.design import check_cv_scheme, stimulus_folds, stimulus_windows
from b2m.data.responses import window_responses, with_fold_columns
from b2m.data.simulate import DESIGN, GTZAN_GENRES
from b2m.errors import InputError
from b2m.io import load_npy
from b2m.layout import WindowFiles
from b2m.data.windowed import load_fold
from b2m.models.folds import LeakageError, check_training_rows, inner_groups, run_splits, select_fold
from b2m.options import DesignOptions

K = 3
CALM = set(GTZAN_GENRES[: len(GTZAN_GENRES) // 2])  # a second label column, "mood", derived from the genre


def metadata_plan(dataset: BidsDataset, subject: str) -> list:
    """A subject's window plan from its events alone (as ``_window_plan`` makes it, without scans)."""
    plan = []
    for run in dataset.runs(subject):
        rows = stimulus_windows(run.analysed(dataset.design), 1.5, 1.5, dataset.design.labels)
        rows.insert(0, "run", run.index)
        plan.append((run, 0, rows, 0))
    return plan


def test_stimulus_folds_are_stratified_by_label_and_the_same_for_every_subject(real):
    dataset = BidsDataset(real / "ds003720", dataclasses.replace(DESIGN, cv="stimulus", outer_folds=4))
    table = dataset.stimulus_table()
    folds = stimulus_folds(table, 4)
    training = table[table.split == "train"]
    assert sorted(folds.index) == sorted(training.clip_id) and set(folds) == {1, 2, 3, 4}
    per_label = pd.crosstab(training.set_index("clip_id").label.loc[folds.index].to_numpy(), folds.to_numpy())
    assert (per_label.max(axis=1) - per_label.min(axis=1) <= 1).all()  # each label dealt evenly over the folds
    subjects = dataset.subjects()[:2]
    seen = {}
    for subject in subjects:
        for run, _, rows, _ in with_fold_columns(dataset, subject, metadata_plan(dataset, subject)):
            if run.split == "train":
                assert (rows.cv_fold.to_numpy() == folds.loc[rows.clip_id].to_numpy()).all()
                seen.setdefault(subject, set()).update(zip(rows.clip_id, rows.cv_fold))
            else:
                assert "cv_fold" not in rows.columns
    assert len(seen) == 2 and seen[subjects[0]] == seen[subjects[1]]


def test_more_folds_than_training_stimuli_is_a_config_error(real):
    from b2m.errors import ConfigError

    table = BidsDataset(real / "ds004007", DesignOptions(stimulus_column="stim_file")).stimulus_table()
    with pytest.raises(ConfigError, match=f"outer_folds = 17 but the design has {len(table)} training stimuli"):
        stimulus_folds(table, 17)


def test_leave_run_out_is_refused_where_runs_share_stimuli(real):
    """ds004007 plays every piece in both runs: its cv folds must hold out stimuli; ds003720's runs share none."""
    shared = BidsDataset(real / "ds004007", DesignOptions(stimulus_column="stim_file"))
    assert shared.runs_share_stimuli()
    with pytest.raises(InputError, match="design.cv is run, but runs share stimuli") as refused:
        check_cv_scheme(shared.design, shared.runs_share_stimuli(), shared.root)
    assert str(refused.value).startswith(str(shared.root)) and "fix: set `design.cv: stimulus`" in str(refused.value)
    check_cv_scheme(dataclasses.replace(shared.design, cv="stimulus"), True, shared.root)
    separate = BidsDataset(real / "ds003720", DESIGN)
    assert not separate.runs_share_stimuli()
    check_cv_scheme(DESIGN, separate.runs_share_stimuli(), separate.root)


def test_a_label_fold_over_a_labels_only_design_holds_out_that_value(real):
    """ds000171: no stimulus files, label trial_type; fold trial_type-positive_music tests on its events only."""
    design = DesignOptions(tasks=("music",), labels=("trial_type",), drop={"trial_type": ["response"]})
    dataset = BidsDataset(real / "ds000171", design)
    subject = dataset.subjects()[0]
    plan = metadata_plan(dataset, subject)
    rows = pd.concat([rows for _, _, rows, _ in plan], ignore_index=True)
    train_index, test_index = select_fold("trial_type-positive_music", rows)
    assert len(train_index) + len(test_index) == len(rows) and len(test_index) > 0
    assert set(rows.trial_type.iloc[test_index]) == {"positive_music"}
    assert "positive_music" not in set(rows.trial_type.iloc[train_index])
    assert not set(rows.clip_id.iloc[test_index]) & set(rows.clip_id.iloc[train_index])


# ---------------------------------------------------------------- a simulated study whose runs share stimuli


@pytest.fixture(scope="module")
def shared_study(tiny_study, planted, tmp_path_factory) -> dict:
    """The tiny study with training run 2 playing run 1's stimuli (its events replaced by run 1's), a second label
    column ``mood``, cv-<k> folds by stimulus; windowed from the planted fixture's cleaned scans (same runs)."""
    root = tmp_path_factory.mktemp("shared") / "ds003720"
    shutil.copytree(tiny_study["bids_root"], root, copy_function=os.symlink)
    func = root / "sub-001/func"
    first = pd.read_csv(func / "sub-001_task-Training_run-01_events.tsv", sep="\t", dtype=str)
    for path in sorted(func.glob("*_events.tsv")):
        events = first if "Training_run-02" in path.name else pd.read_csv(path, sep="\t", dtype=str)
        mood = ["calm" if genre.strip("'") in CALM else "lively" for genre in events.genre]
        path.unlink()
        events.assign(mood=mood).to_csv(path, sep="\t", index=False)
    design = dataclasses.replace(DESIGN, labels=("genre", "mood"), cv="stimulus", outer_folds=K)
    dataset = BidsDataset(root, design)
    out = root.parent / "w"
    window_responses(dataset, "sub-001", planted / "clean", out, 1.5, 1.5)
    return {"dataset": dataset, "responses": out}


def raw_training(study) -> tuple[pd.DataFrame, np.ndarray]:
    files = WindowFiles(study["responses"])
    return pd.read_parquet(files.train_rows), load_npy(files.train)


def test_runs_share_stimuli_so_leave_run_out_is_refused(shared_study, planted):
    dataset = shared_study["dataset"]
    assert dataset.runs_share_stimuli()
    with pytest.raises(InputError, match="runs share stimuli"):
        check_cv_scheme(dataclasses.replace(dataset.design, cv="run"), dataset.runs_share_stimuli(), dataset.root)


def test_the_inner_cv_is_grouped_by_stimulus_where_runs_share_stimuli(shared_study, planted):
    rows, _ = raw_training(shared_study)
    assert (rows.groupby("clip_id").group.nunique() == 1).all()  # a stimulus's rows in both runs: one group
    assert rows.groupby("group").clip_id.nunique().max() == 1 and rows.group.nunique() == rows.clip_id.nunique()
    assert (rows.groupby("clip_id").run.nunique() == 2).sum() > 0
    for training, validation in run_splits(inner_groups(rows), 5):
        assert not set(rows.clip_id.iloc[training]) & set(rows.clip_id.iloc[validation])
    separate = pd.read_parquet(WindowFiles(planted / "clean/w").train_rows)
    assert (separate.group == separate.run).all()  # runs share no stimulus: the inner CV is grouped by run


def test_cv_folds_by_stimulus_hold_out_each_training_stimulus_once(shared_study):
    rows, _ = raw_training(shared_study)
    clips = rows.drop_duplicates("clip_id").set_index("clip_id")
    assert set(rows.cv_fold) == set(range(1, K + 1))
    held_out = []
    for k in range(1, K + 1):
        fold = load_fold(shared_study["responses"], f"cv-{k}")
        tested = set(fold.test_rows.clip_id)
        assert tested == set(clips.index[clips.cv_fold == k]) and not tested & set(fold.train_rows.clip_id)
        held_out.append(tested)
    assert sum(map(len, held_out)) == len(set().union(*held_out)) == len(clips)
    per_label = pd.crosstab(clips.label, clips.cv_fold)  # stratified: each label dealt evenly over the folds
    assert (per_label.max(axis=1) - per_label.min(axis=1) <= 1).all()


def test_a_held_out_stimulus_s_repeats_are_averaged_in_the_test_rows(shared_study):
    rows, X = raw_training(shared_study)
    for k in range(1, K + 1):
        fold = load_fold(shared_study["responses"], f"cv-{k}")
        assert not fold.test_rows.duplicated(["clip_id", "window"]).any()
        held = rows[rows.cv_fold == k]
        for i, row in enumerate(fold.test_rows.itertuples()):
            same = np.flatnonzero(((rows.clip_id == row.clip_id) & (rows.window == row.window)).to_numpy())
            assert row.n_repeats == len(same) == held[(held.clip_id == row.clip_id)].run.nunique()
            np.testing.assert_allclose(fold.X_test[i], X[same].mean(axis=0), rtol=1e-5, atol=1e-6)
        assert (fold.test_rows.n_repeats == 2).any()  # the stimuli of runs 1 and 2, heard twice


def test_no_held_out_stimulus_reaches_training_and_the_guard_still_checks(shared_study):
    """Leakage is impossible by construction (a stimulus has one cv_fold) and still asserted at fit time."""
    fold = load_fold(shared_study["responses"], "cv-1")
    held_out = fold.test_rows.clip_id
    assert check_training_rows(fold.X_train, fold.train_rows, held_out) == frozenset(fold.train_rows.clip_id)
    rows, X = raw_training(shared_study)
    smuggled = np.flatnonzero((rows.clip_id == held_out.iloc[0]).to_numpy())[:1]
    with pytest.raises(LeakageError, match="1 test clip"):
        check_training_rows(np.concatenate([fold.X_train, X[smuggled]]),
                            pd.concat([fold.train_rows, rows.iloc[smuggled]], ignore_index=True), held_out)


def test_leave_one_label_out_over_a_second_label_column(shared_study):
    rows, _ = raw_training(shared_study)
    assert {"genre", "mood", "label"} <= set(rows.columns) and (rows.label == rows.genre).all()
    fold = load_fold(shared_study["responses"], "mood-calm")
    assert set(fold.test_rows.mood) == {"calm"} and set(fold.train_rows.mood) == {"lively"}
    assert set(fold.test_rows.clip_id) == set(rows.clip_id[rows.mood == "calm"])
    assert not fold.test_rows.duplicated(["clip_id", "window"]).any() and (fold.test_rows.n_repeats == 2).any()
