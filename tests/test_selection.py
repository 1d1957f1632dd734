"""Voxel selection inside the training folds (``whole-mask-selected``, ``b2m.models.selection``): it keeps the planted
voxels among noise, no test clip and no inner-validation clip reaches the selection or the fit that scores it (a
record of every guarded fit), the candidate is the inner CV's choice even where a test score would choose
another, and the decoders beside it give the same bits with it as without it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from b2m.errors import ConfigError
from b2m.models import decoding, selection
from b2m.models.backend import use_backend
from b2m.models.encoding import pearson_per_column
from b2m.models.folds import inner_groups, run_splits
from b2m.models.selection import SelectedRidgeDecoder, encoding_r, kept_voxels
from b2m.options import RidgeOptions, SelectionOptions
from conftest import record_guarded_fits

RIDGE = RidgeOptions(cv_folds=4, n_alphas=9)
N_INFORMATIVE, N_VOXELS, N_DIMS = 15, 300, 4
HELD_OUT = [f"test-{n}" for n in range(10)]


@pytest.fixture(autouse=True)
def numpy_backend():
    use_backend("numpy")


def rows_of(clips: list[str], runs: int, windows: int = 3) -> pd.DataFrame:
    """Rows (clip_id, window, run, group): the clips dealt over ``runs`` runs, ``windows`` windows each."""
    return pd.DataFrame([{"clip_id": clip, "window": window, "run": n % runs, "group": n % runs}
                         for n, clip in enumerate(clips) for window in range(windows)])


def planted(signal: np.ndarray, seed: int = 0):
    """Training and test rows, responses (rows × N_VOXELS) and targets (rows × N_DIMS): each voxel carries the
    targets times its weight in ``signal`` (voxels,) plus unit noise."""
    rng = np.random.default_rng(seed)
    train, test = rows_of([f"clip-{n}" for n in range(40)], 4), rows_of(HELD_OUT, 1)
    weights = rng.standard_normal((N_DIMS, N_VOXELS)) * signal
    Y_train, Y_test = (rng.standard_normal((len(rows), N_DIMS)) for rows in (train, test))
    X_train, X_test = (Y @ weights + rng.standard_normal((len(Y), N_VOXELS)) for Y in (Y_train, Y_test))
    return train, X_train.astype(np.float32), Y_train, test, X_test.astype(np.float32), Y_test


def informative_first(strength: float = 1.5) -> np.ndarray:
    return np.r_[np.full(N_INFORMATIVE, strength), np.zeros(N_VOXELS - N_INFORMATIVE)]


@pytest.mark.parametrize("by, candidates", [("top", (N_INFORMATIVE, 60, "all")), ("r", (0.0, 0.5, "all"))])
def test_the_planted_voxels_are_kept_among_noise(by, candidates):
    """Of 300 voxels, 15 carry the targets: the inner CV chooses the candidate that keeps them alone, and they are
    the voxels of best encoding r."""
    rows, X, Y, *_ = planted(informative_first())
    fitted = SelectedRidgeDecoder(RIDGE, SelectionOptions(by, candidates)).fit(X, Y, rows, HELD_OUT)
    assert fitted.chosen_candidate_ == candidates[1 if by == "r" else 0]
    assert fitted.selected_voxels_.tolist() == list(range(N_INFORMATIVE))
    assert fitted.encoding_r_[:N_INFORMATIVE].min() > 0.5 > fitted.encoding_r_[N_INFORMATIVE:].max()
    assert fitted.candidates_.chosen.sum() == 1
    assert fitted.candidates_.cv_score.idxmax() == fitted.candidates_.index[fitted.candidates_.chosen][0]


def test_no_test_or_validation_response_reaches_the_selection(monkeypatch):
    """Every guarded fit is recorded (the encoding r of each voxel choice, each decoder): the outer test clips are
    held out from all of them, and for each inner split, the selection and the fits that score its candidates
    get its training rows alone, its validation clips held out; only the final choice and refit see every
    training row."""
    rows, X, Y, *_ = planted(informative_first())
    calls = record_guarded_fits(monkeypatch, selection, decoding)
    SelectedRidgeDecoder(RIDGE, SelectionOptions("top", (N_INFORMATIVE, 60, "all"))).fit(X, Y, rows, HELD_OUT)
    everything, test = frozenset(rows.clip_id), frozenset(HELD_OUT)
    assert all(test <= held_out and not test & seen for _, _, seen, held_out in calls)
    splits = run_splits(inner_groups(rows), RIDGE.cv_folds)
    for train, validation in splits:
        inner = frozenset(rows.clip_id.iloc[validation])
        scoring = [(module, seen) for module, _, seen, held_out in calls if held_out == test | inner]
        assert {module for module, _ in scoring} == {"b2m.models.selection", "b2m.models.decoding"}
        assert all(seen == frozenset(rows.clip_id.iloc[train]) for _, seen in scoring)
    final = [(module, seen) for module, _, seen, held_out in calls if held_out == test]
    assert [module for module, _ in final] == ["b2m.models.selection"] * 2 + ["b2m.models.decoding"]
    assert all(seen == everything for _, seen in final)
    assert len(calls) == len(final) + sum(1 for fit in calls if fit.held_out != test)


def test_the_candidate_is_the_inner_cvs_not_the_test_scores():
    """Every voxel carries the targets in training, so the inner CV keeps them all; in the test rows only the first
    15 do (the rest are noise): a test score would choose the top 15, the decoder does not, and its choice does
    not change with the test rows."""
    rows, X, Y, test, _, Y_test = planted(np.full(N_VOXELS, 0.3), seed=1)
    rng = np.random.default_rng(2)
    X_test = Y_test @ rng.standard_normal((N_DIMS, N_INFORMATIVE)) * 2
    X_test = np.hstack([X_test, rng.standard_normal((len(test), N_VOXELS - N_INFORMATIVE)) * 3]).astype(np.float32)
    candidates = (N_INFORMATIVE, "all")
    fitted = SelectedRidgeDecoder(RIDGE, SelectionOptions("top", candidates)).fit(X, Y, rows, HELD_OUT)
    assert fitted.chosen_candidate_ == "all"
    assert fitted.candidates_.set_index("candidate").cv_score.idxmax() == "all"

    def test_score(candidate):
        forced = SelectedRidgeDecoder(RIDGE, SelectionOptions("top", (candidate,))).fit(X, Y, rows, HELD_OUT)
        return pearson_per_column(forced.decoder_.standardise(Y_test), forced.predict(X_test)).mean()

    assert test_score(N_INFORMATIVE) > test_score("all") + 0.1


def test_encoding_r_is_each_voxels_inner_cv_r():
    """A voxel of planted signal has a high encoding r, a voxel of noise about 0, and the r uses the given rows
    alone: the same bits for a copy of them whatever other rows exist."""
    rows, X, Y, *_ = planted(informative_first())
    r = encoding_r(X, Y, rows, HELD_OUT, RIDGE)
    assert r.shape == (N_VOXELS,) and r[:N_INFORMATIVE].min() > 0.5
    assert abs(np.median(r[N_INFORMATIVE:])) < 0.05
    assert kept_voxels(r, "top", 3).tolist() == sorted(np.argsort(-r)[:3].tolist())
    assert kept_voxels(r, "r", 0.99).tolist() == [int(np.argmax(r))]  # none passes: the best voxel alone
    assert kept_voxels(r, "r", 0.5).tolist() == list(range(N_INFORMATIVE))


@pytest.mark.parametrize("by, candidates", [("top", (0.5, "all")), ("top", ("ten",)), ("r", (1.0,)), ("r", ())])
def test_candidates_the_rule_does_not_take_are_refused(by, candidates):
    with pytest.raises(ConfigError, match="decoding.voxel_selection.candidates .* fix: "):
        SelectionOptions(by, candidates).values()


def test_fewer_than_three_training_runs_are_refused():
    rows, X, Y, *_ = planted(informative_first())
    two = rows.assign(group=rows.group % 2)
    with pytest.raises(ConfigError, match="three training groups"):
        SelectedRidgeDecoder(RIDGE).fit(X, Y, two, HELD_OUT)


@pytest.mark.slow  # 40 s on a shared core, beside the fixture's minute
def test_the_other_decoders_give_the_same_bits_beside_it(planted):
    """On the synthetic study, the decode stage's fits with whole-mask-selected added give the whole-mask decoder's
    scores and predictions bit for bit, and the selected decoder is scored beside them, above chance."""
    from test_decoding import decode

    alone = decode(planted, n_permutations=20, models=("whole-mask",))
    beside = decode(planted, n_permutations=20, models=("whole-mask", "whole-mask-selected"),
                    selection=SelectionOptions(candidates=(100, 300, "all")))
    for model, values in alone.predicted.items():
        assert values.tobytes() == beside.predicted[model].tobytes()
    pd.testing.assert_frame_equal(alone.scores, beside.scores[beside.scores.model != "whole-mask-selected"])
    window = beside.scores.query("model == 'whole-mask-selected' and metric == 'identification_accuracy' "
                                 "and level == 'window'").iloc[0]
    assert window.value > window.chance_mean + 5 * window.chance_sd
