"""All out-of-fold predictions together (fold ``cv-all``): every cv-<k> fold tests on stimuli no other fold tests
on, so together their clip predictions cover every stimulus once. Each fold's decoder standardised its targets by
its own training rows' mean and sd (``target_scale.npy``); its predicted and true rows are brought back to the raw
target space (row * sd + mean), standardised all by one mean and sd of the true rows, and scored among every
stimulus (``score_level``, clip level; with ``decoding.segment_s`` also every whole segment of every stimulus by its
time course, from the window rows)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from b2m.errors import InputError
from b2m.evaluate.scores import score_level, segment_courses
from b2m.layout import PredictionFiles

REDECODE_FIX = "rerun the decode rule of this fold"


@dataclass
class FoldPredictions:
    """One cv fold's clip rows of ``predictions.parquet`` (every model: clip_id, model, predicted, true, ...) and
    the target scale its decoder standardised them by (2 × dims: mean, sd); ``files``: the folder they were read
    from."""

    fold: str
    clips: pd.DataFrame
    scale: np.ndarray
    files: PredictionFiles
    windows: pd.DataFrame


@dataclass
class PooledPredictions:
    """Every fold's clip rows together: the rows (clip_id, model, source_fold and the predictions table's other
    columns), their predicted and true rows (rows × dims) standardised by ``scale`` (2 × dims: the true rows' mean
    and sd in the raw target space)."""

    rows: pd.DataFrame
    predicted: np.ndarray
    true: np.ndarray
    scale: np.ndarray
    windows: "PooledPredictions | None" = None


def read_fold_predictions(fold: str, folder) -> FoldPredictions:
    """The clip rows of a decoding folder's predictions and its target scale (``b2m decode``'s outputs)."""
    from b2m.io import load_npy, regular_file

    files = PredictionFiles(folder)
    table = pd.read_parquet(regular_file(files.predictions, "prediction table", REDECODE_FIX))
    scale = load_npy(files.target_scale, what="target scale", fix=REDECODE_FIX)
    clips = table[table["level"] == "clip"].reset_index(drop=True)
    if not len(clips):
        raise InputError(files.predictions, "no clip-level prediction", REDECODE_FIX)
    dims = len(clips["predicted"].iloc[0])
    if scale.shape != (2, dims):
        raise InputError(files.target_scale, f"shape {scale.shape}, the predictions have {dims} dims: expected "
                         f"(2, {dims}) (mean, sd)", REDECODE_FIX)
    windows = table[table["level"] == "window"].reset_index(drop=True)
    return FoldPredictions(fold, clips, scale, files, windows)


def pool_folds(folds: list[FoldPredictions]) -> PooledPredictions:
    """The folds' clip rows of every model in the raw target space, then standardised by one mean and sd of the
    true rows; a clip held out by two folds, or a model missing from a fold, is an error naming the fold."""
    if len(folds) < 2:
        raise ValueError(f"pooling out-of-fold predictions needs two cv folds or more, not {len(folds)}")
    models = sorted(set(folds[0].clips["model"]))
    held_out: dict[str, str] = {}
    for fold in folds:
        if sorted(set(fold.clips["model"])) != models:
            raise InputError(fold.files.predictions, f"models {sorted(set(fold.clips['model']))}, "
                             f"fold {folds[0].fold} has {models}", "decode every cv fold with the same "
                             "decoding.models")
        clips = fold.clips.drop_duplicates("clip_id")["clip_id"]
        twice = [c for c in clips if c in held_out]
        if twice:
            raise InputError(fold.files.predictions, f"{len(twice)} clips (e.g. {twice[0]}) are held "
                             f"out by fold {held_out[twice[0]]} too", "pool only cv folds that test on distinct "
                             "stimuli (the cv-<k> folds of one design)")
        held_out.update(dict.fromkeys(clips, fold.fold))
    rows, raw = _raw_rows(folds, "clips")
    first = (rows["model"] == models[0]).to_numpy()
    mean, sd = raw["true"][first].mean(axis=0), raw["true"][first].std(axis=0)
    sd[sd == 0] = 1.0
    window_rows, window_raw = _raw_rows(folds, "windows")
    windows = PooledPredictions(window_rows, (window_raw["predicted"] - mean) / sd, (window_raw["true"] - mean) / sd,
                                np.stack([mean, sd]))
    return PooledPredictions(rows, (raw["predicted"] - mean) / sd, (raw["true"] - mean) / sd, np.stack([mean, sd]),
                             windows)


def _raw_rows(folds: list[FoldPredictions], level: str) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The folds' rows of ``level`` (``clips`` or ``windows``) with their source fold, and their predicted and true
    rows in the raw target space (rows × dims)."""
    rows = pd.concat([getattr(fold, level).drop(columns=["predicted", "true"]).assign(source_fold=fold.fold)
                      for fold in folds], ignore_index=True)
    raw = {name: np.vstack([np.stack(getattr(fold, level)[name].to_numpy()) * fold.scale[1] + fold.scale[0]
                            for fold in folds]).astype(np.float64) for name in ("predicted", "true")}
    return rows, raw


def score_pooled(pooled: PooledPredictions, label_space: bool, n_permutations: int, n_bootstrap: int,
                 seed: int, segment_s: float | None = None) -> pd.DataFrame:
    """Each model's clip-level scores among every pooled stimulus (``score_level``; label accuracy too in a label
    space) and, with ``segment_s``, its segment-level scores among every pooled segment (``segment_courses``): the
    scores table's columns and ``model``."""
    tables = []
    for model, rows in pooled.rows.groupby("model", sort=False):
        index = rows.index.to_numpy()
        tables.append(score_level("clip", pooled.predicted[index], pooled.true[index], rows["clip_id"].to_numpy(),
                                  n_permutations, n_bootstrap, seed, pooled.scale if label_space else None)
                      .assign(model=model))
        if segment_s:
            windows = pooled.windows.rows.index[pooled.windows.rows["model"] == model].to_numpy()
            rows = pooled.windows.rows.iloc[windows].reset_index(drop=True)
            segments, stimuli = segment_courses(rows, pooled.windows.predicted[windows], segment_s)
            truths, _ = segment_courses(rows, pooled.windows.true[windows], segment_s)
            tables.append(score_level("segment", segments, truths, stimuli, n_permutations, n_bootstrap, seed)
                          .assign(model=model))
    return pd.concat(tables, ignore_index=True)


def pooled_prediction_table(pooled: PooledPredictions) -> pd.DataFrame:
    """The pooled rows with their standardised predicted and true rows (float32), as a predictions table."""
    return pooled.rows.assign(predicted=list(pooled.predicted.astype(np.float32)),
                              true=list(pooled.true.astype(np.float32)))

