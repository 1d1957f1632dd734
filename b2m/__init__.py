"""b2m: reconstruct music from fMRI (after Denk et al. 2023, "Brain2Music").

Sub-packages, one per stage, each usable without Snakemake:
``b2m.data`` (ds003720 layout, events, responses, synthetic study), ``b2m.features`` (music embeddings),
``b2m.models`` (ridge decoding), ``b2m.evaluate`` (identification accuracy).
"""

__version__ = "0.1.0"

GTZAN_GENRES = (
    "blues", "classical", "country", "disco", "hiphop",
    "jazz", "metal", "pop", "reggae", "rock",
)
