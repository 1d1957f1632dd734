"""Scores of reconstructions against the original stimuli, as the paper's Figure 4.

Each reconstruction (the top retrieved corpus track, or a generated sample) is embedded with the decoder's
target extractor and compared with the original clip's embedding, in the retrieval space:

- ``identification_accuracy``: b2m.evaluate's definition, reconstructions in place of predictions;
- ``<labels>_agreement_top<n>``: top-n class agreement (b2m.evaluate.classes) under each label set's class
  scores (a classifier of the corpus's classes, named after the design's first label column, or CLAP zero-shot);
- ``<label>_match`` (retrieval): the share of clips whose retrieved track's corpus class is the stimulus's
  label (``<label>``: the design's first label column), where the corpus's classes hold every stimulus label.

Every metric also gets an ``oracle`` row (the true embedding in place of the predicted one: the ceiling of
the method) and a ``chance`` row: a random corpus item per clip (its own track and its duplicates left out),
mean and sd over ``n_chance`` draws.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from b2m.evaluate import class_agreement, identification_accuracy
from b2m.reconstruct.duplicates import excluded_ids
from b2m.reconstruct.retrieval import excluded_positions, to_space

log = logging.getLogger(__name__)

TOP_N = (1, 2, 3)
EVALUATION_COLUMNS = ["method", "model", "metric", "value", "chance_sd", "n_clips", "n_samples"]


@dataclass
class Reconstructions:
    """One method × model's reconstructions as raw embeddings, samples × clips × dims (clips in the
    originals' order); ``classes``: the corpus class of each retrieved track (clips,), for retrieval."""

    vectors: np.ndarray
    classes: np.ndarray | None = None


def reconstruction_metrics(original: dict, reconstruction: np.ndarray, target_scale: np.ndarray, space: str,
                           labelers: dict, classes=None) -> dict[str, float]:
    """Metric → value for one set of reconstructions (clips × dims, raw embeddings, the originals' order).
    ``original``: the originals in the retrieval space (``"space"``), their class scores per labeler
    (``"scores"``), computed once for every reconstruction and chance draw, and where class match is scored
    their labels (``"labels"``) under the label column's name (``"label"``); ``classes``: the corpus class of
    each reconstruction (None: no class match)."""
    values = {"identification_accuracy": float(identification_accuracy(
        to_space(reconstruction, target_scale, space), original["space"]).mean())}
    for name, labeler in labelers.items():
        reconstruction_scores = labeler.scores(reconstruction)
        for n in TOP_N:
            if n < len(labeler.classes_):
                values[f"{name}_agreement_top{n}"] = float(class_agreement(original["scores"][name],
                                                                           reconstruction_scores, n).mean())
    if classes is not None and "labels" in original:
        values[f"{original['label']}_match"] = float(np.mean(np.asarray(classes) == original["labels"]))
    return values


def retrieved_reconstructions(neighbours: pd.DataFrame, corpus: np.ndarray, tracks: pd.DataFrame,
                              clip_order, method: str = "retrieval") -> dict:
    """(``method``, model) → Reconstructions: the corpus vector and class of each clip's top-1 track."""
    position = pd.Series(np.arange(len(tracks)), index=tracks.track_id)
    result = {}
    for model, rows in neighbours[neighbours["rank"] == 1].groupby("model", sort=False):
        rows = rows.set_index("clip_id").loc[clip_order]
        result[(method, model)] = Reconstructions(corpus[position.loc[rows.track_id].to_numpy()][None],
                                                  rows.track_genre.to_numpy())
    return result


def random_items(exclude, track_ids, rng: np.random.Generator) -> np.ndarray:
    """One random corpus index per clip, never one of the ids in the clip's ``exclude`` (its own and its
    duplicates')."""
    rows, items = excluded_positions(exclude, track_ids)
    forbidden = rows * len(track_ids) + items
    picks = rng.integers(0, len(track_ids), size=len(exclude))
    hit = np.isin(np.arange(len(picks)) * len(track_ids) + picks, forbidden)
    while hit.any():
        picks[hit] = rng.integers(0, len(track_ids), size=int(hit.sum()))
        hit = np.isin(np.arange(len(picks)) * len(track_ids) + picks, forbidden)
    return picks


def matched_labels(originals: pd.DataFrame, tracks: pd.DataFrame, label: str | None) -> dict:
    """``{"label": label, "labels": the originals' labels}`` where the class match is scored (a design label
    whose every value among the originals is a class of the corpus, as a GTZAN-layout corpus's folders), else {}
    (logged)."""
    labels = originals.label.to_numpy()
    if label is None:
        log.info("the design has no labels: no class agreement with the corpus's classes")
        return {}
    if not set(labels) <= set(tracks.genre) - {""}:
        log.info("the stimuli's %s labels %s are not all corpus classes: no %s_match", label,
                 sorted(set(labels) - set(tracks.genre))[:5], label)
        return {}
    return {"label": label, "labels": labels}


def evaluate_reconstructions(originals: pd.DataFrame, reconstructions: dict, corpus: np.ndarray,
                             tracks: pd.DataFrame, target_scale: np.ndarray, space: str, labelers: dict,
                             n_chance: int = 100, seed: int = 0, duplicates: pd.DataFrame | None = None,
                             label: str | None = None) -> pd.DataFrame:
    """The evaluation table (EVALUATION_COLUMNS).

    ``originals``: clip_id, label, ``vector`` (raw embedding of the stimulus); ``reconstructions``:
    (method, model) → ``Reconstructions``; ``duplicates``: the clips' duplicates in the corpus (a
    b2m.reconstruct.duplicates table), never drawn by chance. ``<label>_match`` is scored when ``label`` (the
    design's first label column) is given and the corpus's classes include every stimulus label
    (``matched_labels``)."""
    vectors = np.stack(originals.vector.to_numpy())
    original = {"space": to_space(vectors, target_scale, space),
                "scores": {name: labeler.scores(vectors) for name, labeler in labelers.items()},
                **matched_labels(originals, tracks, label)}
    clip_ids = originals.clip_id.to_numpy()
    rows = []
    for (method, model), samples in reconstructions.items():
        per_sample = [reconstruction_metrics(original, sample_vectors, target_scale, space, labelers, samples.classes)
                      for sample_vectors in samples.vectors]
        for metric in per_sample[0]:
            rows.append((method, model, metric, float(np.mean([s[metric] for s in per_sample])), np.nan,
                         len(clip_ids), len(per_sample)))
    rng, exclude = np.random.default_rng(seed), excluded_ids(clip_ids, duplicates)
    draws = []
    for _ in range(n_chance):
        picks = random_items(exclude, tracks.track_id.to_numpy(), rng)
        draws.append(reconstruction_metrics(original, corpus[picks], target_scale, space, labelers,
                                            tracks.genre.to_numpy()[picks]))
    for metric in draws[0]:
        values = [d[metric] for d in draws]
        rows.append(("random-corpus-item", "chance", metric, float(np.mean(values)), float(np.std(values, ddof=1)),
                     len(clip_ids), n_chance))
    return pd.DataFrame(rows, columns=EVALUATION_COLUMNS)
