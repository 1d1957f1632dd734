"""The factorisation of a subject × fold × window: the stimulus side (``b2m.models.ridge.StimulusSide``) of every
decoder of those responses, made once and read by the decode job of every feature space of that window, each
side only when its fit needs it (``StoredSide``: a job holds one draw's bases at a time). It is kept after
decoding (``decoding.keep_factors``), so a feature space added later decodes from it.

A decoder's stimulus side (its inner splits' SVDs or kernel eigendecompositions and the refit's) depends on the
responses alone: the fold's centred training rows and their run-grouped splits, not the targets or the alphas. So
feature spaces decoded from one window share it, and decoding a space from it gives the same bits as computing
it in the decode job (a test holds the two equal).

The decoders: ``whole-mask`` (every column); ``roi-<k>`` (the columns of ROI k, for the ROI ensemble); and
``roi-banded`` (the ROI columns, one side per random-search draw of the ROI weights; the draw of equal weights,
where every voxel is in an ROI, is the whole mask's side scaled). Each is solved in the form
its shape asks (``ridge_form``: primal SVDs while its voxels ≤ samples, kernel eigendecompositions beyond).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np

from b2m.models.folds import load_fold, run_splits
from b2m.options import FactorOptions
from b2m.models.ridge import (SplitBasis, StimulusSide, band_weights, on_backend, ridge_form, scaled_side,
                              scaled_sides)

log = logging.getLogger(__name__)

WHOLE_MASK, ROI_BANDED = "whole-mask", "roi-banded"


def roi_decoder(roi: int) -> str:
    """The name of the decoder of ROI ``roi`` in a factorisation."""
    return f"roi-{roi}"


def decoder_roi(name: str) -> int | None:
    """The ROI a factorisation's decoder ``name`` fits (``roi_decoder``'s inverse; None: not one ROI's)."""
    return int(name.removeprefix("roi-")) if name.removeprefix("roi-").isdigit() else None


def centred(X: np.ndarray) -> np.ndarray:
    """Columns minus their mean over the rows, as float32: what every decoder fits (samples × voxels)."""
    return (X - X.mean(axis=0)).astype(np.float32)


@dataclass
class DecoderFactors:
    """One decoder's share of a factorisation: its columns of the responses (voxels,), the band of each of them
    (ROI labels; None: one band), the band weights of its draws (draws × bands; None: one unbanded draw) and the
    stimulus side of each draw."""

    columns: np.ndarray
    sides: list[StimulusSide]
    bands: np.ndarray | None = None
    gammas: np.ndarray | None = None


@dataclass
class ResponseFactors:
    """The factorisation of one subject × fold × window: the inner splits ((train, validation) row indices) and
    every decoder's ``DecoderFactors`` by name."""

    splits: list
    decoders: dict[str, DecoderFactors]
    source: object = None  # the file it was read from

    def check_rows(self, runs, n_folds: int) -> None:
        """Refuse training rows (their runs, samples,) whose inner splits are not the ones factorised."""
        from b2m.errors import InputError

        splits = run_splits(runs, n_folds)
        if len(splits) != len(self.splits) or any(
                not np.array_equal(mine, theirs) for pair, other in zip(splits, self.splits)
                for mine, theirs in zip(pair, other)):
            raise InputError(self.source or "the factorisation", f"made for other training rows or inner folds "
                             f"({len(self.splits)} splits of {sum(len(v) for _, v in self.splits)} rows; these "
                             f"responses make {len(splits)} of {len(runs)})",
                             "rerun factorise on these responses, fold and ridge.cv_folds")


def decoder_sides(X: np.ndarray, splits, column_scales=None) -> list[StimulusSide]:
    """The stimulus side of responses X (samples × voxels, not centred) for every draw of column scales
    (draws × voxels; default one draw, unscaled), as a decoder's fit computes it."""
    Xc, scales = on_backend(centred(X), np.ones((1, X.shape[1])) if column_scales is None else column_scales)
    return list(scaled_sides(Xc, splits, scales, ridge_form(*X.shape)))


def factorise(X_train: np.ndarray, runs, labels: np.ndarray | None, n_folds: int, n_iter: int,
              seed: int) -> ResponseFactors:
    """The factorisation of one fold's training responses (samples × voxels) with their runs (samples,) and the
    ROI label of each column (voxels,; 0: no ROI; None: no atlas, whole-mask only)."""
    splits = run_splits(runs, n_folds)
    everything = np.arange(X_train.shape[1])
    decoders = {WHOLE_MASK: DecoderFactors(everything, decoder_sides(X_train, splits))}
    log.info("factorised the whole mask: %d samples × %d voxels, %s form", *X_train.shape,
             decoders[WHOLE_MASK].sides[0].form)
    if labels is not None:
        for roi in np.unique(labels[labels > 0]):
            columns = np.flatnonzero(labels == roi)
            decoders[roi_decoder(int(roi))] = DecoderFactors(columns, decoder_sides(X_train[:, columns], splits))
            log.info("factorised ROI %d: %d voxels, %s form", roi, len(columns),
                     decoders[roi_decoder(int(roi))].sides[0].form)
        columns = np.flatnonzero(labels > 0)
        bands = labels[columns]
        gammas = band_weights(n_iter, len(np.unique(bands)), seed)
        scales = np.sqrt(gammas[:, np.unique(bands, return_inverse=True)[1]])
        if len(columns) == X_train.shape[1]:  # every voxel in an ROI: the equal weights scale the whole mask
            sides = [scaled_side(decoders[WHOLE_MASK].sides[0], float(scales[0, 0]))]
            sides += decoder_sides(X_train, splits, scales[1:]) if n_iter > 1 else []
        else:
            sides = decoder_sides(X_train[:, columns], splits, scales)
        decoders[ROI_BANDED] = DecoderFactors(columns, sides, bands, gammas)
        log.info("factorised %d ROIs, and %d draws of ROI weights for the banded decoder", len(np.unique(bands)),
                 n_iter)
    return ResponseFactors(splits, decoders)


def fold_factors(responses_dir, positions, fold: str, options: FactorOptions = FactorOptions()) -> ResponseFactors:
    """The factorisation of one subject × fold × window: the fold's training rows of the responses in
    ``responses_dir``, with the ROI labels of the subject's voxel table in ``positions`` (``ScanFiles``)."""
    from b2m.models.decoding import voxel_labels

    data = load_fold(responses_dir, fold, options.outer_folds)
    labels = voxel_labels(positions)
    if labels is not None and len(labels) != data.X_train.shape[1]:
        log.info("the ROI labels do not match these responses' columns: whole-mask decoding only")
        labels = None
    return factorise(data.X_train, data.train_rows["run"].to_numpy(), labels, options.cv_folds, options.n_iter,
                     options.seed)


SPLIT_FIELDS, REFIT_FIELDS = ("U", "projected", "values"), ("U", "values", "Vt")


def factor_arrays(factors: ResponseFactors) -> tuple[dict, dict]:
    """The factorisation as named numpy arrays and a JSON-able index of them (``read_factors`` inverts it)."""
    from b2m.models.backend import get_backend

    to_numpy = get_backend().to_numpy
    arrays, index = {}, {"n_splits": len(factors.splits), "decoders": {}}
    for k, (train, validation) in enumerate(factors.splits):
        arrays[f"splits/{k}/train"], arrays[f"splits/{k}/validation"] = np.asarray(train), np.asarray(validation)
    for name, decoder in factors.decoders.items():
        arrays[f"{name}/columns"] = decoder.columns
        for extra in ("bands", "gammas"):
            if getattr(decoder, extra) is not None:
                arrays[f"{name}/{extra}"] = getattr(decoder, extra)
        for draw, side in enumerate(decoder.sides):
            for k, basis in enumerate(side.splits):
                arrays.update({f"{name}/{draw}/{k}/{key}": to_numpy(getattr(basis, key)) for key in SPLIT_FIELDS})
            arrays.update({f"{name}/{draw}/refit/{key}": to_numpy(getattr(side, key)) for key in REFIT_FIELDS
                           if getattr(side, key) is not None})
        index["decoders"][name] = [side.form for side in decoder.sides]
    return arrays, index


def write_factors(path, factors: ResponseFactors, params: dict) -> None:
    """factors.npz (uncompressed) with its index and provenance in the JSON sidecar, atomically."""
    from b2m.io import atomic_path, provenance, sidecar_path, write_json

    arrays, index = factor_arrays(factors)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    write_json(sidecar_path(path), {**index, **provenance(params)})
    log.info("wrote %s: %d arrays, %.1f MB", path, len(arrays), sum(a.nbytes for a in arrays.values()) / 1e6)


@dataclass
class StoredSide:
    """One draw's stimulus side of a decoder in factors.npz, read (onto the backend) only when its fit needs it:
    a job holds one draw's bases at a time, however many the file has. ``columns``: as ``StimulusSide``'s."""

    path: object
    name: str
    draw: int
    form: str
    splits: list  # (train, validation) row indices
    columns: object = None

    def load(self) -> StimulusSide:
        from b2m.models.backend import get_backend

        backend = get_backend()
        prefix = f"{self.name}/{self.draw}"
        with np.load(self.path, allow_pickle=False) as stored:
            def on(key):
                return backend.asarray(stored[f"{prefix}/{key}"])

            bases = [SplitBasis(backend.asarray(train), backend.asarray(validation),
                                *(on(f"{k}/{key}") for key in SPLIT_FIELDS))
                     for k, (train, validation) in enumerate(self.splits)]
            refit = {key: on(f"refit/{key}") for key in REFIT_FIELDS if f"{prefix}/refit/{key}" in stored.files}
        return StimulusSide(self.form, bases, **refit, columns=self.columns)


def read_factors(path) -> ResponseFactors:
    """The factorisation written by ``write_factors``: its index and splits now, each side when it is fitted
    (``StoredSide``)."""
    from b2m.io import sidecar_path

    index = json.loads(sidecar_path(path).read_text())
    with np.load(path, allow_pickle=False) as stored:
        small = {key: stored[key] for key in stored.files if key.startswith("splits/")
                 or key.rsplit("/", 1)[-1] in ("columns", "bands", "gammas")}
    splits = [(small[f"splits/{k}/train"], small[f"splits/{k}/validation"]) for k in range(index["n_splits"])]
    decoders = {name: DecoderFactors(small[f"{name}/columns"],
                                     [StoredSide(path, name, draw, form, splits) for draw, form in enumerate(forms)],
                                     small.get(f"{name}/bands"), small.get(f"{name}/gammas"))
                for name, forms in index["decoders"].items()}
    return ResponseFactors(splits, decoders, path)
