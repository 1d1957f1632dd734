"""Scores of predicted against true embeddings (items × dims), per window and per clip, each with a bootstrap
confidence interval over clips and, for identification accuracy, chance measured by permutation."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from b2m.evaluate.identification import correlation_matrix, identification_accuracy, permutation_chance

log = logging.getLogger(__name__)

CI_LEVEL = 0.95
SCORE_COLUMNS = ["level", "metric", "value", "ci_low", "ci_high", "chance_mean", "chance_sd", "p_permutation",
                 "n_items"]


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


def score_predictions(predicted: np.ndarray, true: np.ndarray, rows: pd.DataFrame, n_permutations: int,
                      n_bootstrap: int, seed: int) -> pd.DataFrame:
    """Identification accuracy and embedding correlation per window and per clip (mean of the clip's windows):
    columns level, metric, value, ci_low, ci_high, chance_mean, chance_sd, p_permutation, n_items."""
    clips, clip_predicted = clip_means(rows, predicted)
    _, clip_true = clip_means(rows, true)
    levels = {"window": (predicted, true, rows["clip_id"].to_numpy()),
              "clip": (clip_predicted, clip_true, np.asarray(clips))}
    records = []
    for level, (p, t, clusters) in levels.items():
        if np.ptp(t, axis=0).max() == 0:  # e.g. the genre one-hot on a genre fold: nothing to identify
            log.warning("%s level: every true row is the same; identification is undefined (NaN)", level)
            records += [{**dict.fromkeys(SCORE_COLUMNS, np.nan), "level": level, "metric": metric, "n_items": len(p)}
                        for metric in ("identification_accuracy", "embedding_correlation")]
            continue
        accuracy = identification_accuracy(p, t)
        null = permutation_chance(p, t, n_permutations, seed)
        for metric, values in (("identification_accuracy", accuracy), ("embedding_correlation",
                                                                       embedding_correlation(p, t))):
            value = float(values.mean())
            chance = {"chance_mean": float(null.mean()), "chance_sd": float(null.std()),
                      "p_permutation": float((1 + np.sum(null >= value)) / (1 + len(null)))} \
                if metric == "identification_accuracy" else {"chance_mean": np.nan, "chance_sd": np.nan,
                                                             "p_permutation": np.nan}
            low, high = bootstrap_ci(values, clusters, n_bootstrap, seed)
            records.append({"level": level, "metric": metric, "value": value, "ci_low": low, "ci_high": high,
                            **chance, "n_items": len(p)})
    return pd.DataFrame(records, columns=SCORE_COLUMNS)
