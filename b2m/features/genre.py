"""The GTZAN genre as a one-hot vector: the label space of the paper's genre encoding model."""

from __future__ import annotations

import numpy as np

from b2m import GTZAN_GENRES


class GenreExtractor:
    """One-hot genre over ``GTZAN_GENRES`` (10 dims), one vector per clip repeated over its windows."""

    name = "genre"
    input = "clip"
    dim = len(GTZAN_GENRES)

    def __init__(self, window: float = 1.5, stride: float = 1.5):
        self.window, self.stride = window, stride

    def embed_clips(self, clips) -> np.ndarray:
        """Clips × 10 for the rows of ``clips`` (clip_id, genre, …)."""
        unknown = sorted(set(clips.genre) - set(GTZAN_GENRES))
        if unknown:
            raise ValueError(f"genres {unknown} are not GTZAN genres {GTZAN_GENRES}")
        return (np.asarray(clips.genre)[:, None] == np.asarray(GTZAN_GENRES)[None, :]).astype(np.float32)
