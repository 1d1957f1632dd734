"""Music embeddings, one extractor per space behind one interface (name, dim, sample_rate, window,
stride, ``embed(audio, starts)``), and the feature table each writes.

A feature table has one row per (clip, window): clip_id, genre, split, window, start_s, end_s (relative
to the excerpt, the same grid as the response rows) and ``embedding`` (float32 vector).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from b2m.data.events import window_starts
from b2m.features.acoustic import AcousticExtractor
from b2m.features.audio import load_excerpt

log = logging.getLogger(__name__)

EXTRACTORS = {"acoustic": AcousticExtractor}


def make_extractor(name: str, window: float, stride: float):
    if name not in EXTRACTORS:
        raise ValueError(f"unknown feature {name!r}; known: {sorted(EXTRACTORS)}")
    return EXTRACTORS[name](window=window, stride=stride)


def extract_features(clips: pd.DataFrame, stimuli_dir, extractor) -> pd.DataFrame:
    """Embed every clip of ``clips`` (clip_id, genre, split, start, end) with ``extractor``."""
    starts = window_starts(extractor.window, extractor.stride)
    rows = []
    for number, clip in enumerate(clips.itertuples(), start=1):
        audio = load_excerpt(stimuli_dir, clip.clip_id, clip.start, clip.end, extractor.sample_rate)
        vectors = extractor.embed(audio, starts)
        for window, (start, vector) in enumerate(zip(starts, vectors)):
            rows.append((clip.clip_id, clip.genre, clip.split, window, start, start + extractor.window, vector))
        if number % 50 == 0 or number == len(clips):
            log.info("%s: %d/%d clips embedded", extractor.name, number, len(clips))
    return pd.DataFrame(rows, columns=["clip_id", "genre", "split", "window", "start_s", "end_s", "embedding"])


def embedding_matrix(table: pd.DataFrame) -> np.ndarray:
    """The ``embedding`` column as a rows × dim float32 matrix."""
    return np.stack(table["embedding"].to_numpy()).astype(np.float32)
