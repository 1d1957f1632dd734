"""Metrics as the paper defines them, with chance measured by permutation."""

from b2m.evaluate.identification import (correlation_matrix, identification_accuracy,
                                         permutation_chance)

__all__ = ["correlation_matrix", "identification_accuracy", "permutation_chance"]
