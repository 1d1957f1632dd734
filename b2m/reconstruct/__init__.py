"""Reconstruction: retrieval of the nearest music from a corpus (and, next, generation and its evaluation)."""
