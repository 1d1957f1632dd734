"""Class scores for top-n class agreement: the classes a clip most likely belongs to, from its embedding.

- ``CorpusClassifier``: multinomial logistic regression trained offline on the corpus index's vectors and
  classes (FMA's top genres, GTZAN's folders), never on the test clips it will label; its agreement is named
  after the design's first label column, the class the stimuli are compared by.
- ``ZeroShotLabels``: CLAP zero-shot, when the space is CLAP's: the cosine of the audio embedding with the
  text embedding of a prompt per class (``"This is a {label} music piece."``); label sets for genre,
  instrument or mood are just lists of words.
"""

from __future__ import annotations

import logging

import numpy as np

from b2m.errors import InputError
from b2m.features.clap import l2_normalise
from b2m.reconstruct.duplicates import excluded_ids

log = logging.getLogger(__name__)

PROMPT = "This is a {} music piece."


class CorpusClassifier:
    """Logistic regression (standardised inputs) from embeddings (items × dims) to labels; fitted state in
    ``classes_`` and ``model_``; ``scores`` gives class probabilities (items × classes)."""

    def __init__(self, seed: int = 0, max_iter: int = 2000):
        self.seed, self.max_iter = seed, max_iter

    def fit(self, vectors: np.ndarray, labels) -> "CorpusClassifier":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        labels = np.asarray(labels)
        self.classes_ = np.unique(labels)
        if len(self.classes_) < 2:
            raise ValueError(f"a classifier needs two or more labels, the corpus has {list(self.classes_)}")
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(max_iter=self.max_iter,
                                                                         random_state=self.seed))
        self.model_.fit(np.asarray(vectors, dtype=np.float64), labels)
        log.info("corpus classifier: %d tracks, %d classes, training accuracy %.3f", len(labels),
                 len(self.classes_), self.model_.score(np.asarray(vectors, dtype=np.float64), labels))
        return self

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(np.asarray(vectors, dtype=np.float64))


class ZeroShotLabels:
    """CLAP zero-shot class scores: cosine of unit audio embeddings with each class prompt's text embedding.
    ``text_backend`` has ``embed_text(texts) → texts × dim`` (b2m.features.clap's backends)."""

    def __init__(self, text_backend, classes, prompt: str = PROMPT):
        self.classes_ = np.asarray(list(classes))
        self.prompts_ = [prompt.format(label) for label in self.classes_]
        self.text_vectors_ = l2_normalise(text_backend.embed_text(self.prompts_))

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        return l2_normalise(vectors) @ self.text_vectors_.T


def make_labelers(corpus: np.ndarray, tracks, test_clips, label: str | None, seed: int = 0,
                  label_sets: dict | None = None, extractor=None, duplicates=None) -> dict:
    """Label set name → class scorer: ``label`` (the design's first label column; None: none) from a classifier
    of the corpus's classes on its labelled tracks (every test clip and its ``duplicates``, a
    b2m.reconstruct.duplicates table, left out), and ``<name>-zeroshot`` for each of ``label_sets`` when
    ``extractor`` is a CLAP one."""
    labelers = {}
    held_out = set().union(*excluded_ids(test_clips, duplicates))
    training = ((tracks.genre != "") & ~tracks.track_id.isin(held_out)).to_numpy()
    if label is None:
        log.info("the design has no labels: no classifier class agreement")
    elif training.sum() and tracks.genre[training].nunique() > 1:
        labelers[label] = CorpusClassifier(seed).fit(corpus[training], tracks.genre[training])
    else:
        log.info("the corpus has no classes (a folder layout): no classifier %s agreement", label)
    text_backend = getattr(extractor, "backend", None)
    if label_sets and not hasattr(text_backend, "embed_text"):
        raise InputError("--label-set", f"zero-shot label sets {sorted(label_sets)} need a CLAP extractor, not "
                         f"{getattr(extractor, 'name', None)}", "give label sets only for clap-audio spaces")
    for name, classes in (label_sets or {}).items():
        labelers[f"{name}-zeroshot"] = ZeroShotLabels(text_backend, classes)
    return labelers
