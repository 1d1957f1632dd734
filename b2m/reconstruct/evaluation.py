"""Scores of reconstructions against the original stimuli, as the paper's Figure 4.

Each reconstruction (the top retrieved corpus track, or a generated sample) is embedded with the decoder's
target extractor and compared with the original clip's embedding, in the retrieval space:

- ``identification_accuracy``: b2m.evaluate's definition, reconstructions in place of predictions;
- ``<labels>_agreement_top<n>``: top-n class agreement (b2m.evaluate.classes) under each label set's class
  scores (a corpus classifier or CLAP zero-shot);
- ``genre_match`` (retrieval): the share of clips whose retrieved track carries the stimulus's genre.

Every metric also gets an ``oracle`` row (the true embedding in place of the predicted one: the ceiling of
the method) and a ``chance`` row: a random corpus item per clip (its own track and its duplicates left out),
mean and sd over ``n_chance`` draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from b2m.evaluate import class_agreement, identification_accuracy
from b2m.reconstruct.duplicates import excluded_ids
from b2m.reconstruct.retrieval import excluded_positions, to_space

TOP_N = (1, 2, 3)
EVALUATION_COLUMNS = ["method", "model", "metric", "value", "chance_sd", "n_clips", "n_samples"]


@dataclass
class Reconstructions:
    """One method × model's reconstructions as raw embeddings, samples × clips × dims (clips in the
    originals' order); ``genres``: the corpus genre of each retrieved track (clips,), for retrieval."""

    vectors: np.ndarray
    genres: np.ndarray | None = None


def reconstruction_metrics(original: dict, reconstruction: np.ndarray, target_scale: np.ndarray, space: str,
                           labelers: dict, genres=None, reconstruction_genres=None) -> dict[str, float]:
    """Metric → value for one set of reconstructions (clips × dims, raw embeddings, the originals' order).
    ``original``: the originals in the retrieval space (``"space"``) and their class scores per labeler
    (``"scores"``), computed once for every reconstruction and chance draw."""
    values = {"identification_accuracy": float(identification_accuracy(
        to_space(reconstruction, target_scale, space), original["space"]).mean())}
    for name, labeler in labelers.items():
        reconstruction_scores = labeler.scores(reconstruction)
        for n in TOP_N:
            if n < len(labeler.classes_):
                values[f"{name}_agreement_top{n}"] = float(class_agreement(original["scores"][name],
                                                                           reconstruction_scores, n).mean())
    if reconstruction_genres is not None:
        values["genre_match"] = float(np.mean(np.asarray(reconstruction_genres) == np.asarray(genres)))
    return values


def retrieved_reconstructions(neighbours: pd.DataFrame, corpus: np.ndarray, tracks: pd.DataFrame,
                              clip_order) -> dict:
    """("retrieval", model) → Reconstructions: the corpus vector and genre of each clip's top-1 track."""
    position = pd.Series(np.arange(len(tracks)), index=tracks.track_id)
    result = {}
    for model, rows in neighbours[neighbours["rank"] == 1].groupby("model", sort=False):
        rows = rows.set_index("clip_id").loc[clip_order]
        result[("retrieval", model)] = Reconstructions(corpus[position.loc[rows.track_id].to_numpy()][None],
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


def evaluate_reconstructions(originals: pd.DataFrame, reconstructions: dict, corpus: np.ndarray,
                             tracks: pd.DataFrame, target_scale: np.ndarray, space: str, labelers: dict,
                             n_chance: int = 100, seed: int = 0,
                             duplicates: pd.DataFrame | None = None) -> pd.DataFrame:
    """The evaluation table (EVALUATION_COLUMNS).

    ``originals``: clip_id, genre, ``vector`` (raw embedding of the stimulus); ``reconstructions``:
    (method, model) → ``Reconstructions``; ``duplicates``: the clips' duplicates in the corpus (a
    b2m.reconstruct.duplicates table), never drawn by chance. ``genre_match`` is scored when the corpus's
    labels include every stimulus genre (a GTZAN-layout corpus)."""
    vectors = np.stack(originals.vector.to_numpy())
    original = {"space": to_space(vectors, target_scale, space),
                "scores": {name: labeler.scores(vectors) for name, labeler in labelers.items()}}
    clip_ids, genres = originals.clip_id.to_numpy(), originals.genre.to_numpy()
    labelled = set(genres) <= set(tracks.genre)
    rows = []
    for (method, model), samples in reconstructions.items():
        per_sample = [reconstruction_metrics(original, sample_vectors, target_scale, space, labelers, genres,
                                             samples.genres if labelled else None)
                      for sample_vectors in samples.vectors]
        for metric in per_sample[0]:
            rows.append((method, model, metric, float(np.mean([s[metric] for s in per_sample])), np.nan,
                         len(clip_ids), len(per_sample)))
    rng, exclude = np.random.default_rng(seed), excluded_ids(clip_ids, duplicates)
    draws = []
    for _ in range(n_chance):
        picks = random_items(exclude, tracks.track_id.to_numpy(), rng)
        draws.append(reconstruction_metrics(original, corpus[picks], target_scale, space, labelers, genres,
                                            tracks.genre.to_numpy()[picks] if labelled else None))
    for metric in draws[0]:
        values = [d[metric] for d in draws]
        rows.append(("random-corpus-item", "chance", metric, float(np.mean(values)), float(np.std(values, ddof=1)),
                     len(clip_ids), n_chance))
    return pd.DataFrame(rows, columns=EVALUATION_COLUMNS)
