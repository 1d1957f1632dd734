"""Reconstructions chosen by the brain score (``b2m.models.brain_score``): each test clip's top-k retrieved tracks
re-ranked (method ``retrieval-brain``) and, of each generator's samples, the one of best score (method
``<generator>-brain``). A candidate is scored by ``score(clip_id, files)``: the scores of candidate audio files for
one clip (the stage embeds each file's windows and asks the fitted scorer)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

SCORE_COLUMNS = ["method", "model", "clip_id", "candidate", "prior_rank", "brain_r", "chosen"]

Score = Callable[[str, list], np.ndarray]


def brain_method(method: str) -> str:
    """The method name of ``method``'s brain-scored choice (``retrieval`` → ``retrieval-brain``)."""
    return f"{method}-brain"


RERANKED = brain_method("retrieval")  # the method of the re-ranked retrieval


def ranked_by_score(candidates: pd.DataFrame, scores: np.ndarray, prior: str) -> pd.DataFrame:
    """``candidates`` with ``brain_r`` = ``scores``, best score first (ties: the lower ``prior`` rank first)."""
    scored = candidates.assign(brain_r=np.asarray(scores, dtype=np.float64))
    return scored.sort_values(["brain_r", prior], ascending=[False, True], kind="stable")


def rerank(neighbours: pd.DataFrame, k: int, score: Score) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each (model, clip)'s top ``k`` tracks of a retrieval table (``b2m.reconstruct.retrieval.retrieve``'s
    columns) re-ranked by brain score: the table of the re-ranked rows (rank 1 = best score; ``retrieval_rank``: the
    rank by cosine, ``brain_r``: the score) and the scores table (SCORE_COLUMNS)."""
    top = neighbours[neighbours["rank"] <= k]
    reranked, scored = [], []
    for (model, clip_id), rows in top.groupby(["model", "clip_id"], sort=False):
        rows = ranked_by_score(rows.rename(columns={"rank": "retrieval_rank"}), score(clip_id, rows.path.tolist()),
                               "retrieval_rank")
        rows = rows.assign(rank=np.arange(1, len(rows) + 1))
        reranked.append(rows)
        scored.append(pd.DataFrame({"method": RERANKED, "model": model, "clip_id": clip_id,
                                    "candidate": rows.track_id, "prior_rank": rows.retrieval_rank,
                                    "brain_r": rows.brain_r, "chosen": rows["rank"] == 1}))
    columns = list(neighbours.columns) + ["retrieval_rank", "brain_r"]
    return pd.concat(reranked, ignore_index=True)[columns], pd.concat(scored, ignore_index=True)[SCORE_COLUMNS]


def select_samples(listing: pd.DataFrame, folder, score: Score) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Of a generation listing (``b2m generate``'s: clip_id, method, model, sample, file, ...; files under
    ``folder``), each (model, clip)'s sample of best brain score (ties: the lower sample): its listing row with the
    method ``<generator>-brain``, its ``brain_r``, its number as ``source_sample`` and ``sample`` 0 (one chosen
    piece per clip, whichever it was), and the scores of every sample (SCORE_COLUMNS)."""
    chosen, scored = [], []
    for (model, clip_id), rows in listing.groupby(["model", "clip_id"], sort=False):
        rows = ranked_by_score(rows, score(clip_id, [f"{folder}/{file}" for file in rows.file]), "sample")
        method, source = brain_method(rows.method.iloc[0]), rows["sample"].iloc[0]
        chosen.append(rows.iloc[:1].assign(method=method, source_sample=source, sample=0))
        scored.append(pd.DataFrame({"method": method, "model": model, "clip_id": clip_id,
                                    "candidate": rows.file, "prior_rank": rows["sample"], "brain_r": rows.brain_r,
                                    "chosen": np.arange(len(rows)) == 0}))
    return pd.concat(chosen, ignore_index=True), pd.concat(scored, ignore_index=True)[SCORE_COLUMNS]
