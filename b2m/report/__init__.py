"""Figures and the HTML listening page."""
