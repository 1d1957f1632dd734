"""Exact nearest-neighbour retrieval by cosine similarity, in blocks of the corpus so memory stays bounded.

Queries (queries × dims, e.g. the mean predicted embedding of each test clip) and corpus vectors (items × dims)
are L2-normalised; each block's similarities are a matrix product, and a running top-k is kept per query. A
query's own clip and its duplicates can be excluded (``exclude``: the corpus ids to skip for each query), as
when the corpus holds the stimuli themselves or copies of them (b2m.reconstruct.duplicates).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from b2m.errors import InputError
from b2m.reconstruct.duplicates import excluded_ids

log = logging.getLogger(__name__)

BLOCK_ROWS = 65536


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm (float32); an all-zero row stays zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1)


def excluded_positions(exclude, corpus_ids) -> tuple[np.ndarray, np.ndarray]:
    """(query row, corpus index) of every corpus item whose id is in ``exclude[q]`` (a collection of ids per
    query), in order."""
    if any(isinstance(ids, str) for ids in exclude):
        raise TypeError("exclude[q] is a collection of ids (e.g. {clip_id}), not one id")
    wanted = pd.DataFrame([(q, i) for q, ids in enumerate(exclude) for i in ids], columns=["query", "id"])
    items = pd.DataFrame({"id": np.asarray(corpus_ids), "item": np.arange(len(corpus_ids))})
    pairs = wanted.merge(items, on="id").sort_values(["query", "item"])
    return pairs["query"].to_numpy(dtype=np.int64), pairs["item"].to_numpy(dtype=np.int64)


def fewest_candidates(n_items: int, excluded_rows: np.ndarray) -> int:
    """The fewest of ``n_items`` corpus items any query may be given (``excluded_rows``: the query row of each
    excluded item, ``excluded_positions``'s first array)."""
    return n_items - (int(np.bincount(excluded_rows).max()) if len(excluded_rows) else 0)


def top_k_cosine(queries: np.ndarray, corpus: np.ndarray, k: int, corpus_ids=None, exclude=None,
                 block_rows: int = BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``corpus`` (queries × k) of the k most cosine-similar items, best first, and their
    similarities. No id in ``exclude[q]`` (a collection of values of ``corpus_ids``) is returned for query q.
    Results are deterministic; exact ties between candidates go to the lower corpus index."""
    rows, items = excluded_positions(exclude, corpus_ids) if exclude is not None else (np.zeros(0, int),) * 2
    if k > fewest_candidates(len(corpus), rows):
        raise ValueError(f"k = {k} exceeds the {len(corpus)} corpus items available")
    q = unit_rows(queries)
    best_index = np.full((len(q), k), -1, dtype=np.int64)
    best_score = np.full((len(q), k), -np.inf, dtype=np.float32)
    for start in range(0, len(corpus), block_rows):
        block = unit_rows(corpus[start:start + block_rows])
        scores = q @ block.T  # queries × block
        inside = (items >= start) & (items < start + len(block))
        scores[rows[inside], items[inside] - start] = -np.inf
        if scores.shape[1] > k:  # the block's k best candidates, before the small exact merge
            candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            scores = np.take_along_axis(scores, candidates, axis=1)
            index = candidates + start
        else:
            index = np.broadcast_to(np.arange(start, start + len(block)), scores.shape)
        merged_score = np.concatenate([best_score, scores], axis=1)
        merged_index = np.concatenate([best_index, index], axis=1)
        order = np.lexsort((merged_index, -merged_score), axis=1)[:, :k]  # best first, then lower index
        best_score = np.take_along_axis(merged_score, order, axis=1)
        best_index = np.take_along_axis(merged_index, order, axis=1)
    return best_index, best_score


SPACES = ("raw", "standardised")


def to_space(raw: np.ndarray, target_scale: np.ndarray, space: str) -> np.ndarray:
    """Embeddings (items × dims) in the retrieval space: ``raw`` (the extractor's own, e.g. CLAP's unit
    sphere) or ``standardised`` with the decoder's training mean and sd (``target_scale``: 2 × dims), which
    keeps dimensions of large scale (an acoustic feature in dB) from ruling the cosine."""
    if space == "raw":
        return np.asarray(raw, dtype=np.float32)
    if space == "standardised":
        return ((raw - target_scale[0]) / target_scale[1]).astype(np.float32)
    raise ValueError(f"unknown retrieval space {space!r}; use one of {SPACES}")


def from_standardised(values: np.ndarray, target_scale: np.ndarray, space: str) -> np.ndarray:
    """Decoder outputs (standardised targets, items × dims) in the retrieval space."""
    return to_space(values * target_scale[1] + target_scale[0], target_scale, space)


QUERY_COLUMNS = ["clip_id", "label", "vector"]


def clip_queries(predictions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Clip-level rows of a decoding ``predictions`` table per model, plus ``oracle``: the true embedding in
    place of the predicted one. Each frame has clip_id, label (the design's first label, "" without one) and
    ``vector`` (standardised targets)."""
    clips = predictions[predictions.level == "clip"]
    queries = {model: rows.assign(vector=rows.predicted)[QUERY_COLUMNS].reset_index(drop=True)
               for model, rows in clips.groupby("model", sort=False)}
    first = next(iter(queries))
    true = clips[clips.model == first]
    queries["oracle"] = true.assign(vector=true["true"])[QUERY_COLUMNS].reset_index(drop=True)
    return queries


def candidates_per_query(clip_ids, track_ids, duplicates: pd.DataFrame | None, k: int) -> int:
    """``k``, or fewer where some clip leaves fewer corpus tracks than ``k`` once its own track and its
    ``duplicates`` are out (a small corpus such as the study's own stimuli; logged). Raises ``InputError``
    when a clip leaves none."""
    rows, _ = excluded_positions(excluded_ids(clip_ids, duplicates), track_ids)
    fewest = fewest_candidates(len(track_ids), rows)
    if fewest < 1:
        raise InputError("reconstruction.corpus.sources", f"the corpus's {len(track_ids)} tracks are all the own "
                         "track or duplicates of some query clip: nothing is left to retrieve for it",
                         "add corpus sources beside the stimuli")
    if fewest < k:
        log.warning("top_k = %d, but some clip leaves only %d corpus tracks (its own and its duplicates out): "
                    "%d retrieved per clip", k, fewest, fewest)
    return min(k, fewest)


def retrieve(predictions: pd.DataFrame, corpus: np.ndarray, tracks: pd.DataFrame, target_scale: np.ndarray,
             space: str, k: int, duplicates: pd.DataFrame | None = None) -> pd.DataFrame:
    """Top-k corpus tracks by cosine for each test clip and model (the mean of its predicted windows; and
    the oracle), each clip's own track and its ``duplicates`` (a b2m.reconstruct.duplicates table) left out
    of its own candidates when the corpus holds them; the other clips' tracks stay candidates. ``k`` is
    lowered where a small corpus leaves fewer (``candidates_per_query``). One row per (model, clip, rank):
    clip_id, label (the clip's first label), model, rank (1 = best), track_id, track_genre (the corpus's
    class), path, similarity."""
    corpus_space = to_space(corpus, target_scale, space)
    queries_of = clip_queries(predictions)
    k = candidates_per_query(queries_of["oracle"].clip_id, tracks.track_id.to_numpy(), duplicates, k)
    frames = []
    for model, rows in queries_of.items():
        queries = from_standardised(np.stack(rows.vector.to_numpy()), target_scale, space)
        index, similarity = top_k_cosine(queries, corpus_space, k, tracks.track_id.to_numpy(),
                                         excluded_ids(rows.clip_id, duplicates))
        hits = tracks.iloc[index.ravel()].reset_index(drop=True)
        frames.append(pd.DataFrame({
            "clip_id": np.repeat(rows.clip_id.to_numpy(), k), "label": np.repeat(rows.label.to_numpy(), k),
            "model": model, "rank": np.tile(np.arange(1, k + 1), len(rows)), "track_id": hits.track_id,
            "track_genre": hits.genre, "path": hits.path, "similarity": similarity.ravel()}))
    return pd.concat(frames, ignore_index=True)
