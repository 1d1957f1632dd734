"""Figures, the HTML listening page and the listening test."""
