"""Exact nearest-neighbour retrieval by cosine similarity, in blocks of the corpus so memory stays bounded.

Queries (queries × dims, e.g. the mean predicted embedding of each test clip) and corpus vectors (items × dims)
are L2-normalised; each block's similarities are a matrix product, and a running top-k is kept per query. A
query's own clip can be excluded (``exclude``: the corpus id to skip for each query), as when the corpus holds
the stimuli themselves.
"""

from __future__ import annotations

import numpy as np

BLOCK_ROWS = 65536


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm (float32); an all-zero row stays zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1)


def top_k_cosine(queries: np.ndarray, corpus: np.ndarray, k: int, corpus_ids=None, exclude=None,
                 block_rows: int = BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``corpus`` (queries × k) of the k most cosine-similar items, best first, and their
    similarities. ``exclude[q]`` (a value of ``corpus_ids``) is never returned for query q. Results are
    deterministic; exact ties between candidates go to the lower corpus index."""
    if k > len(corpus) - (exclude is not None):
        raise ValueError(f"k = {k} exceeds the {len(corpus)} corpus items available")
    q = unit_rows(queries)
    ids = np.asarray(corpus_ids) if corpus_ids is not None else None
    best_index = np.full((len(q), k), -1, dtype=np.int64)
    best_score = np.full((len(q), k), -np.inf, dtype=np.float32)
    for start in range(0, len(corpus), block_rows):
        block = unit_rows(corpus[start:start + block_rows])
        scores = q @ block.T  # queries × block
        if exclude is not None:
            scores[np.asarray(exclude)[:, None] == ids[None, start:start + len(block)]] = -np.inf
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
