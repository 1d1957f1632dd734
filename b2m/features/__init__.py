"""Music embeddings, one extractor per space behind one small interface, and the feature table each writes.

Every extractor has ``name``, ``dim``, ``window`` and ``stride`` (s) and an ``input``: ``"audio"`` ones have
a ``sample_rate`` and ``embed(audio, starts)`` → windows × dim for one excerpt; ``"clip"`` ones (caption,
genre) have ``embed_clips(clips)`` → clips × dim, repeated over each clip's windows. Model-based extractors
are imported only when asked for, so the offline ones need neither torch nor transformers.

A feature table has one row per (stimulus, window): clip_id, label, split, window, start_s, end_s (relative to
the stimulus's start, the grid of ``b2m.data.design.window_starts`` over its own duration, as the response rows) and
``embedding`` (float32 vector).
"""

from __future__ import annotations

import importlib
import logging
import time
from inspect import signature

import numpy as np
import pandas as pd

from b2m.data.design import window_starts
from b2m.data.captions import captions_for
from b2m.features.audio import load_excerpt, stimulus_path
from b2m.features.registry import CLAP_EXTRACTORS, DEFAULT_CLAP_BACKEND, EXTRACTORS

log = logging.getLogger(__name__)

def extractor_class(name: str):
    if name not in EXTRACTORS:
        raise ValueError(f"unknown extractor {name!r}; known: {sorted(EXTRACTORS)}")
    info = EXTRACTORS[name]
    return getattr(importlib.import_module(info.module), info.cls)


def make_extractor(name: str, window: float, stride: float, **options):
    """An extractor by name; ``options`` are its keyword options (model, backend, layer, cache, …)."""
    cls = extractor_class(name)
    try:
        signature(cls).bind(window=window, stride=stride, **options)
    except TypeError as err:
        raise ValueError(f"extractor {name!r} does not take these options: {err}") from err
    return cls(window=window, stride=stride, **options)


def required_weights(name: str, options: dict) -> list:
    """The ``Weights`` an extractor reads from the model cache (empty for the offline ones)."""
    if name in CLAP_EXTRACTORS:
        from b2m.features.clap import backend_weights

        return backend_weights(options.get("backend", DEFAULT_CLAP_BACKEND), options.get("model"),
                               options.get("checkpoint"))
    if EXTRACTORS[name].needs_weights:
        return [extractor_class(name).weights(options.get("model"))]
    return []


def check_inputs(name: str, clips: pd.DataFrame, stimuli_dir, captions=None) -> None:
    """What extractor ``name`` will read for ``clips``, checked before any model loads: every clip's audio file
    (audio extractors) or caption (clap-text)."""
    if extractor_class(name).input == "audio":
        for relative in clips.path:
            stimulus_path(stimuli_dir, relative)
    elif EXTRACTORS[name].reads_captions and captions is not None:
        captions_for(captions, clips.clip_id)


def extract_features(clips: pd.DataFrame, stimuli_dir, extractor) -> pd.DataFrame:
    """Embed every stimulus of ``clips`` (the stimulus table: clip_id, path, label, split, start, end) with
    ``extractor``: one row per (stimulus, window) on the grid of ``window_starts`` over its own duration."""
    grids = [window_starts(extractor.window, extractor.stride, clip.end - clip.start) for clip in clips.itertuples()]
    if extractor.input == "clip":
        per_clip = extractor.embed_clips(clips)
        vectors_of = (np.repeat(vector[None], len(starts), axis=0) for vector, starts in zip(per_clip, grids))
    else:
        vectors_of = (extractor.embed(load_excerpt(stimuli_dir, clip.path, clip.start, clip.end,
                                                   extractor.sample_rate), starts)
                      for clip, starts in zip(clips.itertuples(), grids))
    rows, began = [], time.perf_counter()
    for number, (clip, starts, vectors) in enumerate(zip(clips.itertuples(), grids, vectors_of), start=1):
        for window, (start, vector) in enumerate(zip(starts, vectors)):
            rows.append((clip.clip_id, clip.label, clip.split, window, start, start + extractor.window, vector))
        if number % 20 == 0 or number == len(clips):
            log.info("%s: %d/%d stimuli embedded (%.1f s)", extractor.name, number, len(clips),
                     time.perf_counter() - began)
    return pd.DataFrame(rows, columns=["clip_id", "label", "split", "window", "start_s", "end_s", "embedding"])


def embedding_matrix(table: pd.DataFrame) -> np.ndarray:
    """The ``embedding`` column as a rows × dim float32 matrix."""
    return np.stack(table["embedding"].to_numpy()).astype(np.float32)
