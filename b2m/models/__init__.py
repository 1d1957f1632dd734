"""Ridge models with himalaya: backend choice, leakage checks, decoding (fMRI → embedding)."""
