"""Metrics as the paper defines them (identification accuracy, top-n class agreement), label accuracy in a label
space, with chance measured by permutation and bootstrap intervals over clips; ``b2m.evaluate.listeners`` scores a
listening test and ``b2m.evaluate.out_of_fold`` pools the cv folds' predictions."""

from b2m.evaluate.classes import class_agreement, top_n_classes
from b2m.evaluate.identification import correlation_matrix, identification_accuracy, permutation_chance
from b2m.evaluate.labels import is_label_space, label_accuracy
from b2m.evaluate.scores import (bootstrap_ci, clip_means, embedding_correlation, score_level, score_predictions,
                                 split_label_scores)

__all__ = ["bootstrap_ci", "class_agreement", "clip_means", "correlation_matrix", "embedding_correlation",
           "identification_accuracy", "is_label_space", "label_accuracy", "permutation_chance", "score_level",
           "score_predictions", "split_label_scores", "top_n_classes"]
