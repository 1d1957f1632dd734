"""Scores of predicted against true embeddings (items × dims), per window and per clip, each with a bootstrap
confidence interval over clips and, for identification accuracy (and label accuracy in a label space), chance
measured by permutation."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from b2m.evaluate.identification import correlation_matrix, identification_accuracy, permutation_chance
from b2m.evaluate.labels import label_accuracy

log = logging.getLogger(__name__)

CI_LEVEL = 0.95
SCORE_COLUMNS = ["level", "metric", "value", "ci_low", "ci_high", "chance_mean", "chance_sd", "p_permutation",
                 "n_items"]
IDENTIFICATION_METRICS = ("identification_accuracy", "embedding_correlation")
LABEL_METRIC = "label_accuracy"  # scored only in a label space (``b2m.evaluate.labels``)


def clip_means(rows: pd.DataFrame, values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Mean of each clip's window rows (clips in order of first appearance): clips × dims."""
    codes, clips = pd.factorize(rows["clip_id"], sort=False)
    sums = np.zeros((len(clips), values.shape[1]))
    np.add.at(sums, codes, values)
    return list(clips), sums / np.bincount(codes)[:, None]


def embedding_correlation(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pearson r of each predicted row with its own true row (items,)."""
    return np.diag(correlation_matrix(predicted, true))


def bootstrap_ci(item_values: np.ndarray, clusters: np.ndarray, n_bootstrap: int, seed: int,
                 level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile interval of the mean of ``item_values`` when whole clusters (clips) are resampled with
    replacement, ``n_bootstrap`` times."""
    codes, uniques = pd.factorize(pd.Series(clusters), sort=False)
    sums, counts = np.bincount(codes, weights=item_values), np.bincount(codes)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(uniques), size=(n_bootstrap, len(uniques)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def segment_courses(rows: pd.DataFrame, values: np.ndarray, segment_s: float) -> tuple[np.ndarray, np.ndarray]:
    """The time course of every whole ``segment_s``-second segment of each stimulus (windows starting in
    [k·segment_s, (k+1)·segment_s) of its rows, ``rows``: clip_id, start_s): segments × (windows · dims), each
    dimension's mean over the segment removed, so a segment is known by how its embedding moves, not by its
    stimulus's mean (which a drift filter shorter than the stimulus removes from the responses); and each
    segment's stimulus. A stimulus's last, shorter segment is left out."""
    key = rows["clip_id"].astype(str) + "#" + np.floor(rows["start_s"] / segment_s + 1e-9).astype(int).astype(str)
    codes, _ = pd.factorize(key, sort=False)
    counts = np.bincount(codes)
    whole = counts.max()
    courses, stimuli = [], []
    for code in np.flatnonzero(counts == whole):
        members = np.flatnonzero(codes == code)
        course = values[members] - values[members].mean(axis=0)
        courses.append(course.ravel())
        stimuli.append(rows["clip_id"].iloc[members[0]])
    return np.asarray(courses), np.asarray(stimuli)


def score_predictions(predicted: np.ndarray, true: np.ndarray, rows: pd.DataFrame, n_permutations: int,
                      n_bootstrap: int, seed: int, label_scale: np.ndarray | None = None,
                      segment_s: float | None = None) -> pd.DataFrame:
    """``score_level`` per window, per clip (the mean of the clip's windows) and, with ``segment_s``, per segment
    (``segment_courses``: long stimuli identified by their time courses; no label accuracy there) of standardised
    predicted and true rows (rows × dims, ``rows``: their clip_id and start_s): columns level, metric, value,
    ci_low, ci_high, chance_mean, chance_sd, p_permutation, n_items."""
    clips, clip_predicted = clip_means(rows, predicted)
    _, clip_true = clip_means(rows, true)
    levels = [score_level("window", predicted, true, rows["clip_id"].to_numpy(), n_permutations, n_bootstrap,
                          seed, label_scale),
              score_level("clip", clip_predicted, clip_true, np.asarray(clips), n_permutations, n_bootstrap, seed,
                          label_scale)]
    if segment_s:
        segments, stimuli = segment_courses(rows, predicted, segment_s)
        truths, _ = segment_courses(rows, true, segment_s)
        if len(segments) > 1:
            levels.append(score_level("segment", segments, truths, stimuli, n_permutations, n_bootstrap, seed))
        else:
            log.warning("segment level: %d whole segments of %g s: nothing to identify", len(segments), segment_s)
    return pd.concat(levels, ignore_index=True)


def score_level(level: str, predicted: np.ndarray, true: np.ndarray, clusters: np.ndarray, n_permutations: int,
                n_bootstrap: int, seed: int, label_scale: np.ndarray | None = None) -> pd.DataFrame:
    """Identification accuracy and embedding correlation of standardised predicted and true rows (items × dims),
    with ``label_scale`` (2 × dims: the mean and sd they were standardised by, of a label space) label accuracy
    too, on the rows brought back to the label space (row * sd + mean); each with a bootstrap interval over
    ``clusters`` (each item's clip) and the accuracies with chance measured by permutation. One row per metric."""
    metrics = [*IDENTIFICATION_METRICS, *([LABEL_METRIC] if label_scale is not None else [])]
    if np.ptp(true, axis=0).max() == 0:  # e.g. the genre one-hot on a genre fold: nothing to identify
        log.warning("%s level: every true row is the same; identification is undefined (NaN)", level)
        return pd.DataFrame([{**dict.fromkeys(SCORE_COLUMNS, np.nan), "level": level, "metric": metric,
                              "n_items": len(predicted)} for metric in metrics], columns=SCORE_COLUMNS)
    measured = {"identification_accuracy": (identification_accuracy(predicted, true),
                                            permutation_chance(predicted, true, n_permutations, seed)),
                "embedding_correlation": (embedding_correlation(predicted, true), None)}
    if label_scale is not None:
        labelled = [rows * label_scale[1] + label_scale[0] for rows in (predicted, true)]
        measured[LABEL_METRIC] = (label_accuracy(*labelled),
                                  permutation_chance(*labelled, n_permutations, seed, metric=label_accuracy))
    records = []
    for metric, (values, null) in measured.items():
        value = float(values.mean())
        chance = {"chance_mean": np.nan, "chance_sd": np.nan, "p_permutation": np.nan} if null is None else {
            "chance_mean": float(null.mean()), "chance_sd": float(null.std()),
            "p_permutation": float((1 + np.sum(null >= value)) / (1 + len(null)))}
        low, high = bootstrap_ci(values, clusters, n_bootstrap, seed)
        records.append({"level": level, "metric": metric, "value": value, "ci_low": low, "ci_high": high,
                        **chance, "n_items": len(predicted)})
    return pd.DataFrame(records, columns=SCORE_COLUMNS)


def split_label_scores(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A scores table's identification rows (identification accuracy, embedding correlation) and its label
    accuracy rows, each with the table's index reset."""
    labels = (scores["metric"] == LABEL_METRIC).to_numpy()
    return scores[~labels].reset_index(drop=True), scores[labels].reset_index(drop=True)
