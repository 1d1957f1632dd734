"""Metrics as the paper defines them (identification accuracy, top-n class agreement), with chance measured
by permutation and bootstrap intervals over clips; ``b2m.evaluate.listeners`` scores a listening test."""

from b2m.evaluate.classes import class_agreement, top_n_classes
from b2m.evaluate.identification import correlation_matrix, identification_accuracy, permutation_chance
from b2m.evaluate.scores import bootstrap_ci, clip_means, embedding_correlation, score_predictions

__all__ = ["bootstrap_ci", "class_agreement", "clip_means", "correlation_matrix", "embedding_correlation",
           "identification_accuracy", "permutation_chance", "score_predictions", "top_n_classes"]
