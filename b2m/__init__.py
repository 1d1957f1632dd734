"""b2m: reconstruct music from fMRI (after Denk et al. 2023, "Brain2Music").

Sub-packages, one per stage, each usable without Snakemake:
``b2m.data`` (BIDS studies and their designs, responses, synthetic studies), ``b2m.features`` (music embeddings),
``b2m.models`` (ridge decoding and encoding), ``b2m.evaluate`` (identification accuracy, a listening test's
scores), ``b2m.reconstruct`` (retrieval, generation), ``b2m.report`` (figures, the listening page and test).
``b2m.options`` holds the stages' option objects, ``b2m.study`` turns a config into them, ``b2m.layout`` knows the
results tree, and ``b2m.stages`` are the subcommands of the ``b2m`` command.
"""

__version__ = "0.1.0"
