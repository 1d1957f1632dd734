"""The input kinds of a study's responses: the only list of them, and every fact the workflow and the stages decide
on by kind. Importable without numpy (the workflow reads it when it parses).

- ``bids``: the raw BOLD of the BIDS folder, cleaned by b2m (``clean_bold``, then ``window_responses``).
- ``fmriprep``: fMRIPrep's preprocessed BOLD (``dataset.fmriprep``), cleaned the same way.
- ``authors-arrays``: ds003720's authors' preprocessed arrays (Zenodo 8275363), windowed as they are.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputKind:
    """What an input kind reads and makes: its response rules, whether it reads the BOLD images (and so has voxel
    positions for maps and ROI decoders, a mask and an atlas to check, a test-repeat array for the noise ceiling),
    the config key that names its files, and whether it reads fMRIPrep's derivatives."""

    response_rules: tuple[str, ...]
    reads_images: bool
    files_key: str
    fmriprep: bool = False


INPUT_KINDS = {
    "bids": InputKind(("clean_bold", "window_responses"), True, "dataset.bids_root"),
    "fmriprep": InputKind(("clean_bold", "window_responses"), True, "dataset.fmriprep.root", fmriprep=True),
    "authors-arrays": InputKind(("authors_responses",), False, "dataset.authors_arrays"),
}
