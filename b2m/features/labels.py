"""A label column of the design as a one-hot vector: the label spaces (the paper's genre model, a block design's
conditions)."""

from __future__ import annotations

import numpy as np


class LabelExtractor:
    """One-hot of a label column (``column``; default the design's first label, the stimulus table's ``label``)
    over its values in the study's stimulus table, sorted: one vector per stimulus repeated over its windows."""

    name = "labels"
    input = "clip"

    def __init__(self, window: float = 1.5, stride: float = 1.5, column: str | None = None):
        self.window, self.stride, self.column = window, stride, column
        self.levels: list[str] = []

    @property
    def dim(self) -> int:
        return len(self.levels)

    def embed_clips(self, clips) -> np.ndarray:
        """Stimuli × levels for the rows of ``clips`` (the stimulus table)."""
        column = self.column or "label"
        if column not in clips.columns or not (clips[column] != "").any():
            raise ValueError(f"the stimulus table has no label column {column!r}: name one in `design.labels` (and "
                             "the space's `column`)")
        values = clips[column].astype(str).to_numpy()
        self.levels = sorted(set(values))
        return (values[:, None] == np.asarray(self.levels)[None, :]).astype(np.float32)
