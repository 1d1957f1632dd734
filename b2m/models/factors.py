"""The factorisation of a subject × fold × window: the stimulus side (``b2m.models.ridge.StimulusSide``) of every
decoder of those responses, made once and read by the decode job of every feature space of that window, each
side only when its fit needs it (``b2m.data.decoding_inputs.StoredSide``: a job holds one draw's bases at a
time). The factorise stage writes it as it is made, one side at a time (``b2m.data.decoding_inputs``), so the job
holds one side beside the responses, however many ROIs and draws the file gets. Arrays in, arrays out: this module
reads and writes no file. It is kept after decoding (``decoding.keep_factors``), so a feature space added
later decodes from it.

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

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from b2m.models.folds import inner_groups, run_splits
from b2m.options import FactorOptions
from b2m.models.ridge import StimulusSide, band_weights, on_backend, ridge_form, scaled_side, scaled_sides

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

    def has_rois(self) -> bool:
        """Whether the responses had ROI labels (the ROI decoders' factors are here)."""
        return ROI_BANDED in self.decoders

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


def decoder_sides(X: np.ndarray, splits, column_scales=None) -> Iterator[StimulusSide]:
    """The stimulus side of responses X (samples × voxels, not centred) for every draw of column scales
    (draws × voxels; default one draw, unscaled), as a decoder's fit computes it; each made when it is reached."""
    Xc, scales = on_backend(centred(X), np.ones((1, X.shape[1])) if column_scales is None else column_scales)
    yield from scaled_sides(Xc, splits, scales, ridge_form(*X.shape))


def decoder_factors(X_train: np.ndarray, splits, labels: np.ndarray | None, n_iter: int,
                    seed: int) -> Iterator[tuple[str, DecoderFactors]]:
    """Every decoder's factors of one fold's training responses (samples × voxels) with the ROI label of each
    column (voxels,; 0: no ROI; None: no atlas, whole-mask only), one decoder after the other; each decoder's
    ``sides`` are an iterator that makes one side at a time, to be consumed before the next decoder is asked for
    (so that a writer holds one side at a time)."""
    everything = np.arange(X_train.shape[1])
    whole = list(decoder_sides(X_train, splits))  # kept: the banded decoder may scale it
    log.info("factorised the whole mask: %d samples × %d voxels, %s form", *X_train.shape, whole[0].form)
    yield WHOLE_MASK, DecoderFactors(everything, whole)
    if labels is None:
        return
    for roi in np.unique(labels[labels > 0]):
        columns = np.flatnonzero(labels == roi)
        log.info("factorising ROI %d: %d voxels, %s form", roi, len(columns), ridge_form(len(X_train), len(columns)))
        yield roi_decoder(int(roi)), DecoderFactors(columns, decoder_sides(X_train[:, columns], splits))
    columns = np.flatnonzero(labels > 0)
    bands = labels[columns]
    gammas = band_weights(n_iter, len(np.unique(bands)), seed)
    scales = np.sqrt(gammas[:, np.unique(bands, return_inverse=True)[1]])
    if len(columns) == X_train.shape[1]:  # every voxel in an ROI: the equal weights scale the whole mask
        sides = whole_mask_draws(whole[0], X_train, splits, scales)
    else:
        sides = decoder_sides(X_train[:, columns], splits, scales)
    log.info("factorising %d ROIs' %d draws of ROI weights for the banded decoder", len(np.unique(bands)), n_iter)
    yield ROI_BANDED, DecoderFactors(columns, sides, bands, gammas)


def whole_mask_draws(whole: StimulusSide, X_train: np.ndarray, splits, scales: np.ndarray) -> Iterator[StimulusSide]:
    """The banded decoder's sides where its ROIs cover the whole mask: the first draw (equal weights) is the whole
    mask's side scaled, the others are made one at a time."""
    yield scaled_side(whole, float(scales[0, 0]))
    yield from decoder_sides(X_train, splits, scales[1:]) if len(scales) > 1 else ()


def fold_decoders(X_train: np.ndarray, train_rows, labels: np.ndarray | None,
                  options: FactorOptions = FactorOptions()) -> tuple[list, Iterator[tuple[str, DecoderFactors]]]:
    """The inner splits of one subject × fold × window and its decoders' factors, made as they are iterated
    (``decoder_factors``): the fold's training responses (samples × voxels), their rows (clip_id, group) and the
    ROI label of every column (voxels,; None: no atlas; labels of other columns are left out, whole mask only)."""
    if labels is not None and len(labels) != X_train.shape[1]:
        log.info("the ROI labels do not match these responses' columns: whole-mask decoding only")
        labels = None
    splits = run_splits(inner_groups(train_rows), options.cv_folds)
    return splits, decoder_factors(X_train, splits, labels, options.n_iter, options.seed)


def fold_factors(X_train: np.ndarray, train_rows, labels: np.ndarray | None,
                 options: FactorOptions = FactorOptions()) -> ResponseFactors:
    """``fold_decoders``' factorisation, held in memory."""
    splits, decoders = fold_decoders(X_train, train_rows, labels, options)
    return ResponseFactors(splits, {name: dataclasses.replace(decoder, sides=list(decoder.sides))
                                    for name, decoder in decoders})
