"""From 4-D BOLD to response matrices (samples × voxels, float32), streamed run by run.

Two steps, both usable without Snakemake:

``clean_subject``: for each run, read the masked voxels in chunks of scans from the memory-mapped
image, remove drift (the paper's 240 s running median by default, or a polynomial), z-score each
voxel over the run's analysed scans, and append the run to ``scans.npy`` (all scans × voxels). Only
one run is in memory at a time. Voxels that are constant or non-finite in any run are dropped, with
a count in the log.

``window_responses``: for an embedding window and stride (s), average the scans of each window,
shifted by the hemodynamic lag. A scan belongs to a window when its midpoint lies in
``[window start + lag, window end + lag)``. Training rows are one per (clip, window). Test rows are
kept per repeat (``test_repeats``) and averaged over the repeats (``test``).

The lag (default 4.5 s = 3 TRs, the sampled time-to-peak nearest the canonical HRF's ~5 s) pushes the
last windows of a run's last clip past the final scan: a window is kept only when all of its scans
were acquired, so each run loses the windows that end less than ``lag`` before the run does (3 of 400
at 1.5 s), while every clip keeps most of its windows. The authors' arrays keep all 4800 training TRs because they are
unlagged; b2m keeps the lag in the responses so that decoding needs no delay features.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import asdict
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import sparse

from b2m.data.bids import BidsDataset, Run
from b2m.data.design import run_folds, stimulus_folds, stimulus_windows
from b2m.errors import ConfigError, InputError
from b2m.io import NpyRowWriter, atomic_path, npy_shape, read_npy_rows, regular_file, write_parquet
from b2m.layout import ScanFiles, WindowFiles
from b2m.options import CleaningOptions, WindowOptions

log = logging.getLogger(__name__)

SCAN_CHUNK = 32
# Row-table columns of one presentation, which a mean over a stimulus's repeats does not keep.
PRESENTATION_COLUMNS = ("run", "event", "repeat", "run_start_s", "run_end_s", "scan_first", "scan_stop", "cv_fold",
                        "group")
BOLD_FIX = "re-download the run (an interrupted copy leaves a short or corrupt file)"
DATA_ERRORS = (OSError, EOFError, ValueError, zlib.error)  # reading a short file, a bad gzip stream, a bad dtype
VOXEL_BLOCK = 8192


# ---------------------------------------------------------------- masks and images

def _same_grid(img_a, img_b) -> bool:
    return img_a.shape[:3] == img_b.shape[:3] and np.allclose(img_a.affine, img_b.affine, atol=1e-3)


def check_same_grid(img, reference_img, path: Path, reference: Path) -> None:
    """Every run of a subject lies on its first run's voxel grid: the same shape, and an affine that maps each voxel
    within half a voxel of where the first run's does (a smaller difference, as between sessions' scanner
    coordinates, is logged)."""
    if _same_grid(img, reference_img):
        return
    corners = np.array([[i, j, k, 1] for i in (0, img.shape[0]) for j in (0, img.shape[1]) for k in (0, img.shape[2])])
    moved = np.abs((img.affine - reference_img.affine) @ corners.T).max() if img.shape[:3] == reference_img.shape[:3] \
        else np.inf
    voxel = float(np.min(np.abs(np.linalg.eigvals(reference_img.affine[:3, :3]))))
    if moved <= voxel / 2:
        log.warning("%s: its affine differs from %s's by up to %.2f mm (under half a voxel): analysed on the same "
                    "voxels", path.name, reference.name, moved)
        return
    raise InputError(path, f"grid {img.shape[:3]} with another affine than the first run's ({reference.name}, "
                     f"{reference_img.shape[:3]}; voxels up to {moved:g} mm apart)",
                     "every run of a subject is analysed on the same voxels: realign the runs onto one grid, e.g. "
                     "with fMRIPrep (`dataset.input: fmriprep`)")


def load_label_image(path, reference: Path, what: str) -> np.ndarray:
    """A 3-D integer image (mask or atlas) on the grid of ``reference``; a mismatch is an error."""
    fix = f"give a readable 3-D {what} NIfTI on the BOLD grid (the config's `responses.{what}`)" \
        if what in ("mask", "atlas") else "restore fMRIPrep's output or give `responses.mask`"
    img = load_nifti(path, what, fix)
    ref = _open_bold(reference)
    if img.ndim != 3 and not (img.ndim == 4 and img.shape[3] == 1):
        raise InputError(path, f"{what} must be a 3-D image, got shape {img.shape}", f"give a 3-D {what} NIfTI")
    if not _same_grid(img, ref):
        raise InputError(path, f"{what} grid {img.shape[:3]} does not match the BOLD grid {ref.shape[:3]} "
                         f"of {reference} (shape or affine)",
                         f"resample the {what} to the BOLD image, e.g. nilearn.image.resample_to_img("
                         f"{what}, bold, interpolation='nearest'), or set `mask: compute`")
    data = read_image_data(img, path, fix).reshape(img.shape[:3])
    if not np.isfinite(data).all() or not data.any():
        raise InputError(path, f"the {what} holds {'non-finite values' if data.any() else 'no non-zero voxel'}",
                         fix)
    fractional = np.abs(data - np.rint(data)) > 1e-3
    if what == "atlas" and fractional.any():
        where = tuple(int(v) for v in np.argwhere(fractional)[0])
        raise InputError(path, f"non-integer labels ({fractional.sum()} voxels, e.g. {float(data[where]):g} at "
                         f"voxel {where}): an atlas resampled with linear interpolation mixes its labels",
                         "resample the atlas with nearest-neighbour interpolation, e.g. nilearn.image."
                         "resample_to_img(atlas, bold, interpolation='nearest')")
    return np.rint(data).astype(np.int32)


def compute_mask(bold_path: Path) -> np.ndarray:
    """A brain mask from the temporal mean of one run (nilearn's ``compute_epi_mask``)."""
    from nilearn.masking import compute_epi_mask

    img = _open_bold(bold_path)
    total = np.zeros(img.shape[:3], dtype=np.float64)
    for _, block in _scan_chunks(img, bold_path):
        total += block.sum(axis=3)
    mean_img = nib.Nifti1Image((total / img.shape[3]).astype(np.float32), img.affine)
    return np.asarray(compute_epi_mask(mean_img).get_fdata(), dtype=bool)


def load_nifti(path, what: str, fix: str):
    """A NIfTI image from a regular, non-empty file (a FIFO or device is never opened), its data memory-mapped
    where it can be; whatever nibabel cannot read is an ``InputError`` naming the file."""
    path = regular_file(path, what, fix)
    try:
        return nib.load(path, mmap=True)
    except Exception as err:  # nibabel raises several types for corrupt headers and other formats
        raise InputError(path, f"not a readable NIfTI ({type(err).__name__}: {err})", fix) from err


def read_image_data(img, path, fix: str, scans: slice = slice(None)) -> np.ndarray:
    """The image's voxels (of ``scans`` along the 4th axis, for a 4-D image) as float32."""
    try:
        return np.asarray(img.dataobj[..., scans] if img.ndim == 4 else img.dataobj, dtype=np.float32)
    except DATA_ERRORS as err:
        raise InputError(path, f"cannot read the image's data ({type(err).__name__}: {err})", fix) from err


def _open_bold(path: Path):
    img = load_nifti(path, "BOLD image", BOLD_FIX)
    if img.ndim != 4:
        raise InputError(path, f"BOLD must be 4-D, got shape {img.shape}", "give the run's 4-D BOLD series")
    if str(path).endswith(".nii"):
        header = img.header
        expected = int(header["vox_offset"]) + int(np.prod(img.shape)) * header.get_data_dtype().itemsize
        actual = path.stat().st_size
        if actual < expected:
            raise InputError(path, f"truncated: {actual} bytes, the header needs {expected}",
                             BOLD_FIX)
    return img


def _scan_chunks(img, path: Path):
    """Yield (first scan, 4-D block) over the run; .nii is read in chunks of scans, .nii.gz whole."""
    n_scans = img.shape[3]
    step = SCAN_CHUNK if str(path).endswith(".nii") else n_scans
    for start in range(0, n_scans, step):
        yield start, read_image_data(img, path, BOLD_FIX, slice(start, start + step))


def read_masked_run(path: Path, mask: np.ndarray) -> np.ndarray:
    """The run's masked voxels as scans × voxels float32, read in chunks of scans."""
    img = _open_bold(path)
    if img.shape[:3] != mask.shape:
        raise InputError(path, f"BOLD grid {img.shape[:3]} differs from the mask's {mask.shape}",
                         "every run of a subject must share one grid; resample or drop the odd run")
    data = np.empty((img.shape[3], int(mask.sum())), dtype=np.float32)
    for start, block in _scan_chunks(img, path):
        data[start:start + block.shape[3]] = block[mask].T
    return data


# ---------------------------------------------------------------- drift and scaling

def median_width(window_s: float, tr: float) -> int:
    """The running median's width in scans: ``window_s`` rounded to an odd number of scans."""
    width = int(round(window_s / tr))
    return width + 1 - width % 2


def running_median(data: np.ndarray, width: int) -> np.ndarray:
    """Centred running median of each column (scans × voxels) over ``width`` (odd) scans; the window
    shrinks to the scans that exist at the run's edges. Bottleneck's trailing ``move_median`` over the
    series padded with NaN (which it skips) gives the centred one shifted by ``width // 2``."""
    import bottleneck

    width = min(width, 2 * data.shape[0] - 1)  # a window wider than that covers the whole run anyway
    half = width // 2
    padded = np.concatenate([data, np.full((half, data.shape[1]), np.nan, dtype=data.dtype)])
    return bottleneck.move_median(padded, width, min_count=1, axis=0)[half:].astype(data.dtype)


def remove_drift(data: np.ndarray, tr: float, options: CleaningOptions) -> np.ndarray:
    """Subtract the slow drift of each voxel (scans × voxels), in place; returns ``data``."""
    if options.drift == "none":
        return data
    if options.drift == "median":
        for start in range(0, data.shape[1], VOXEL_BLOCK):
            block = data[:, start:start + VOXEL_BLOCK]
            block -= running_median(block, median_width(options.drift_window_s, tr))
        return data
    if options.drift == "polynomial":
        x = np.linspace(-1, 1, data.shape[0])
        basis = np.polynomial.legendre.legvander(x, options.polynomial_order)
        coef, *_ = np.linalg.lstsq(basis, data, rcond=None)
        data -= (basis @ coef).astype(np.float32)
        return data
    raise ValueError(f"unknown drift method {options.drift!r}")


def _unusable(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """True for each voxel whose mean and sd over scans say it is constant or non-finite."""
    return ~np.isfinite(mean) | ~np.isfinite(sd) | (sd < 1e-8 * np.maximum(1.0, np.abs(mean)))


def unusable_voxels(data: np.ndarray) -> np.ndarray:
    """True for each voxel (column of scans × voxels) that is constant or non-finite in some scan."""
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and Inf voxels are what this finds
        return _unusable(data.mean(axis=0, dtype=np.float64), data.std(axis=0, dtype=np.float64))


def log_dropped(subject: str, bad: np.ndarray) -> None:
    """Say how many voxels are dropped for being constant or non-finite in a run (clean-bold, authors' arrays)."""
    log.warning("%s: dropping %d of %d voxels that are constant or non-finite in at least one run",
                subject, bad.sum(), len(bad))


def zscore_scans(data: np.ndarray, analysed: slice) -> np.ndarray:
    """Z-score each voxel with the mean and sd of the ``analysed`` scans, in place.

    Returns a boolean per voxel: True where the voxel is constant or non-finite (unusable).
    """
    part = data[analysed]
    mean = part.mean(axis=0, dtype=np.float64)
    sd = part.std(axis=0, dtype=np.float64)
    bad = _unusable(mean, sd)
    data -= mean.astype(np.float32)
    data /= np.where(bad, 1.0, sd).astype(np.float32)
    return bad


# ---------------------------------------------------------------- subject cleaning

def first_analysed_scan(kept: pd.DataFrame, tr: float) -> int:
    """Index of the first scan of the run's first analysed event (``kept``: the run's analysed events)."""
    return int(round(kept["onset"].iloc[0] / tr))


def check_run_length(run: Run, events: pd.DataFrame, n_scans: int, tr: float, bold: Path) -> None:
    needed = int(np.ceil((events["onset"] + events["duration"]).max() / tr - 1e-6))
    if n_scans < needed:
        raise InputError(bold, f"{n_scans} scans, but {run.events.name} runs to "
                         f"{(events['onset'] + events['duration']).max():g} s = {needed} scans of {tr} s",
                         "re-download the run, or fix the events file if the run was cut short on purpose")


def clean_subject(dataset: BidsDataset, subject: str, out_dir, options: CleaningOptions = CleaningOptions(),
                  params: dict | None = None) -> dict:
    """Clean every run of ``subject`` and write ``scans.npy``, ``scans.parquet``, ``mask.nii.gz`` and
    ``voxels.parquet`` (voxel i, j, k and ROI label) under ``out_dir`` (``ScanFiles``), with the mask and atlas
    of ``options``. Returns a summary dict."""
    files, runs = ScanFiles(out_dir), dataset.runs(subject)
    reference = runs[0].bold
    ref_img = _open_bold(reference)
    mask_array = subject_mask(subject, runs, options.mask)
    labels = atlas_labels_in_mask(options.atlas, reference, mask_array, options.mask) if options.atlas else None
    plans, scans_table = planned_runs(dataset, subject, runs, ref_img)
    params = {**(params or {}), "subject": subject, "cleaning": asdict(options)}
    bad = write_clean_runs(files.scans, subject, plans, mask_array, options, params, len(scans_table))
    if bad.any():
        log_dropped(subject, bad)
        _keep_columns(files.scans, ~bad, params)
        mask_array[mask_array] = ~bad
        labels = labels[~bad] if labels is not None else None
    write_parquet(files.table, scans_table, params)
    ijk = np.argwhere(mask_array)
    voxels = pd.DataFrame({"i": ijk[:, 0], "j": ijk[:, 1], "k": ijk[:, 2],
                           "roi": labels if labels is not None else np.zeros(len(ijk), np.int32)})
    write_parquet(files.voxels, voxels, params)
    _write_mask(files.mask, mask_array, ref_img.affine)
    return {"subject": subject, "n_runs": len(plans), "n_scans": len(scans_table),
            "n_voxels": int(mask_array.sum()), "n_dropped_voxels": int(bad.sum())}


def subject_mask(subject: str, runs: list, mask) -> np.ndarray:
    """The subject's brain mask on the first run's grid (x × y × z, bool): the intersection of fMRIPrep's run
    masks, or one computed from the first run (``mask: compute``), or the mask file given; an empty one is an
    error."""
    reference = runs[0].bold
    if mask == "compute" and runs[0].preprocessed is not None:
        mask_array = np.logical_and.reduce([load_label_image(run.brain_mask, reference, "fMRIPrep brain mask") > 0
                                            for run in runs])
        log.info("%s: brain mask of %d voxels: the intersection of fMRIPrep's %d run masks", subject,
                 mask_array.sum(), len(runs))
    elif mask == "compute":
        mask_array = compute_mask(reference)
        log.info("%s: computed a brain mask of %d voxels from %s", subject, mask_array.sum(), reference.name)
    else:
        mask_array = load_label_image(mask, reference, "mask") > 0
    if not mask_array.any():
        raise InputError(mask if mask != "compute" else reference, "the mask holds no voxel",
                         "give a mask that covers the brain")
    return mask_array


def planned_runs(dataset: BidsDataset, subject: str, runs: list, ref_img) -> tuple[list, pd.DataFrame]:
    """Each run checked before any is cleaned (its TR, grid and length against its events): (run, scans, TR,
    analysed events) per run, and the scan table of them all (one row per scan)."""
    run_tables, plans = [], []
    for run in runs:
        img = _open_bold(run.bold)
        events = run.read_events()
        tr = run.repetition_time()
        run.check_header_tr(img, run.bold)
        check_same_grid(img, ref_img, run.bold, runs[0].bold)
        check_run_length(run, events, img.shape[3], tr, run.bold)
        plans.append((run, img.shape[3], tr, run.analysed(dataset.design)))
        run_tables.append(pd.DataFrame({
            "subject": subject, "task": run.task, "split": run.split, "run": run.index, "stem": run.stem,
            "scan": np.arange(img.shape[3]), "time_s": np.arange(img.shape[3]) * tr}))
    return plans, pd.concat(run_tables, ignore_index=True)


def write_clean_runs(path, subject: str, plans: list, mask_array: np.ndarray, options: CleaningOptions,
                     params: dict, n_scans_total: int) -> np.ndarray:
    """Clean the planned runs one at a time (drift removed, z-scored over the analysed scans) and append them to
    the array at ``path`` (scans × voxels); returns the voxels constant or non-finite in some run (bool)."""
    n_voxels = int(mask_array.sum())
    writer = NpyRowWriter(path, n_scans_total, n_voxels, params)
    bad = np.zeros(n_voxels, dtype=bool)
    try:
        for index, (run, n_scans, tr, events) in enumerate(plans, start=1):
            data = read_masked_run(run.bold, mask_array)
            run_bad = ~np.isfinite(data).all(axis=0)
            np.nan_to_num(data, copy=False)
            remove_drift(data, tr, options)
            run_bad |= zscore_scans(data, slice(first_analysed_scan(events, tr), n_scans))
            if run_bad.all():
                raise InputError(run.bold, f"every one of the mask's {n_voxels} voxels is constant or non-finite "
                                 "in this run", "restore the run's image (re-download it), or leave the subject out")
            bad |= run_bad
            writer.write(data)
            log.info("%s: run %d/%d (%s) cleaned: %d scans × %d voxels", subject, index, len(plans),
                     run.stem, n_scans, n_voxels)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return bad


def atlas_labels_in_mask(atlas, reference: Path, mask_array: np.ndarray, mask) -> np.ndarray:
    """The atlas label of every mask voxel; an ROI of the atlas with no voxel in the mask is an error (its
    decoder could not be fit, and an empty ROI usually means the atlas and the mask are misaligned)."""
    atlas_array = load_label_image(atlas, reference, "atlas")
    labels = atlas_array[mask_array]
    empty = sorted(set(np.unique(atlas_array[atlas_array > 0]).tolist()) - set(np.unique(labels).tolist()))
    if empty:
        raise InputError(atlas, f"ROI label{'s' * (len(empty) > 1)} {', '.join(map(str, empty))} "
                         f"{'have' if len(empty) > 1 else 'has'} no voxel in the mask ({mask})",
                         "give the atlas and the mask on the same grid and brain, or remove the label from the atlas")
    return labels


def _keep_columns(path: Path, keep: np.ndarray, params: dict) -> None:
    n_rows = npy_shape(path)[0]
    writer = NpyRowWriter(path, n_rows, int(keep.sum()), params)
    for start in range(0, n_rows, 256):
        writer.write(read_npy_rows(path, start, start + 256)[:, keep])
    writer.close()


def _write_mask(path: Path, mask: np.ndarray, affine: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), tmp)


# ---------------------------------------------------------------- windows

def window_scan_ranges(rows: pd.DataFrame, tr: float, lag_s: float) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last scan whose midpoint lies in each row's lagged window."""
    eps = 1e-6
    first = np.ceil((rows["run_start_s"].to_numpy() + lag_s) / tr - 0.5 - eps).astype(int)
    stop = np.ceil((rows["run_end_s"].to_numpy() + lag_s) / tr - 0.5 - eps).astype(int)
    return first, stop


def check_windows_hold_scans(first: np.ndarray, stop: np.ndarray, window: float, run: Run) -> None:
    """Every window holds at least one scan: a window shorter than the TR can fall between two scans' midpoints."""
    empty = int((stop <= first).sum())
    if empty:
        raise InputError(run.events, f"{empty} windows of {window:g} s hold no scan (the TR is "
                         f"{run.repetition_time():g} s)", "make each feature's `window_s` at least the TR")


def average_windows(scans: np.ndarray, first: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Mean of ``scans[first[i]:stop[i]]`` for every row i (scans × voxels → rows × voxels), from
    float64 cumulative sums taken over blocks of voxels to bound memory."""
    out = np.empty((len(first), scans.shape[1]), dtype=np.float32)
    counts = (stop - first)[:, None]
    for start in range(0, scans.shape[1], VOXEL_BLOCK):
        block = scans[:, start:start + VOXEL_BLOCK]
        csum = np.zeros((block.shape[0] + 1, block.shape[1]), dtype=np.float64)
        np.cumsum(block, axis=0, dtype=np.float64, out=csum[1:])
        out[:, start:start + VOXEL_BLOCK] = (csum[stop] - csum[first]) / counts
    return out


def check_lag_keeps_windows(complete: np.ndarray, lag_s: float, run: Run, n_scans: int) -> None:
    """A lag that leaves a run no window whose lagged scans it holds (``complete``: per window) contradicts the
    data: ``ConfigError`` naming ``responses.lag_s``, before anything is written."""
    if len(complete) and not complete.any():
        length = n_scans * run.repetition_time()
        raise ConfigError(f"config: responses.lag_s = {lag_s:g} s leaves {run.stem} no window: its lagged scans "
                          f"run past the run's end ({n_scans} scans, {length:g} s); fix: set responses.lag_s to "
                          f"the hemodynamic lag (4-6 s), well below a run's length")


def _window_plan(dataset: BidsDataset, subject: str, scans: ScanFiles, window: float, stride: float,
                 lag_s: float) -> list[tuple[Run, int, pd.DataFrame, int]]:
    """For each run: its first row in scans.npy, its complete window rows (with the scans each averages)
    and the number of windows dropped because their lagged scans run past the end of the run."""
    scans_table = pd.read_parquet(scans.table)
    cleaned = sorted(set(scans_table["subject"]))
    if cleaned != [subject]:
        raise InputError(scans.table, f"the cleaned scans of {', '.join(cleaned)}, not of {subject}",
                         f"give the clean-bold output folder of {subject}")
    plan = []
    for run in dataset.runs(subject):
        in_run = np.flatnonzero(scans_table["stem"] == run.stem)
        if len(in_run) == 0:
            raise InputError(scans.table, f"no cleaned scans for {run.stem}",
                             "rerun the cleaning step for this subject (the dataset changed since)")
        rows = stimulus_windows(run.analysed(dataset.design), window, stride, dataset.design.labels)
        first, stop = window_scan_ranges(rows, run.repetition_time(), lag_s)
        check_windows_hold_scans(first, stop, window, run)
        complete = (first >= 0) & (stop <= len(in_run)) & (stop > first)
        check_lag_keeps_windows(complete, lag_s, run, len(in_run))
        rows = rows[complete].reset_index(drop=True)
        rows.insert(0, "run", run.index)
        rows["scan_first"], rows["scan_stop"] = first[complete], stop[complete]
        plan.append((run, int(in_run[0]), rows, int((~complete).sum())))
    return with_fold_columns(dataset, subject, plan)


def with_fold_columns(dataset: BidsDataset, subject: str, plan: list) -> list:
    """The training rows of ``plan`` with ``cv_fold`` (the cv-<k> fold that holds them out, ``design.cv``) and
    ``group`` (the inner CV's group: the run where runs share no stimulus, else the stimulus)."""
    design = dataset.design
    shared = dataset.runs_share_stimuli()
    training = [rows for run, _, rows, _ in plan if run.split == "train"]
    if design.cv == "stimulus":
        folds = stimulus_folds(dataset.stimulus_table(), design.outer_folds)
    elif training:
        folds = run_folds([int(r) for rows in training for r in rows["run"].unique()], design.outer_folds) \
            if design.outer_folds <= len(training) else {}
    codes = {clip: number for number, clip in enumerate(dataset.stimulus_table().clip_id, start=1)}
    for run, _, rows, _ in plan:
        if run.split != "train":
            continue
        key = rows["clip_id"] if design.cv == "stimulus" else rows["run"]
        rows["cv_fold"] = key.map(folds).fillna(0).astype(int) if len(folds) else 0
        rows["group"] = rows["clip_id"].map(codes) if shared else rows["run"]
    return plan


def window_responses(dataset: BidsDataset, subject: str, clean_dir, out_dir, window: float, stride: float,
                     lag_s: float = WindowOptions.lag_s, params: dict | None = None) -> dict:
    """Average cleaned scans over embedding windows; writes ``train``, ``test_repeats`` and ``test`` (the
    mean over repeats) as rows × voxels .npy with their ``*_rows.parquet`` under ``out_dir``, one run in
    memory at a time. Returns row counts."""
    scans, out = ScanFiles(clean_dir), WindowFiles(out_dir)
    scans_path = scans.scans
    n_voxels = npy_shape(scans_path)[1]
    params = {**(params or {}), "subject": subject, "window_s": window, "stride_s": stride, "lag_s": lag_s}
    plan = _window_plan(dataset, subject, scans, window, stride, lag_s)
    tables: dict[str, list[pd.DataFrame]] = {"train": [rows for run, _, rows, _ in plan if run.split == "train"]}
    repeats = test_repeat_rows([rows for run, _, rows, _ in plan if run.split != "train"])
    test, codes = repeat_groups(repeats) if len(repeats) else (None, np.zeros(0, dtype=int))
    tables["test_repeats"], tables["test"] = ([repeats], [test]) if test is not None else ([], [])
    writers = {name: NpyRowWriter(out.array(name), sum(map(len, parts)), n_voxels, params)
               for name, parts in tables.items()}
    test_mean = np.zeros((0 if test is None else len(test), n_voxels), dtype=np.float32)
    weights = (1.0 / test["n_repeats"].to_numpy()[codes]).astype(np.float32) if test is not None else None
    done = 0  # test rows windowed so far
    try:
        for run, offset, rows, _ in plan:
            block = read_npy_rows(scans_path, offset, offset + int(rows["scan_stop"].max()))
            windows = average_windows(block, rows["scan_first"].to_numpy(), rows["scan_stop"].to_numpy())
            if run.split == "train":
                writers["train"].write(windows)
            else:
                writers["test_repeats"].write(windows)
                part = slice(done, done + len(rows))
                membership = sparse.csr_matrix((weights[part], (codes[part], np.arange(len(rows)))),
                                               shape=(len(test), len(rows)))
                test_mean += np.asarray(membership @ windows, dtype=np.float32)
                done += len(rows)
        if test is not None:
            writers["test"].write(test_mean)
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    for name, writer in writers.items():
        writer.close()
        write_parquet(out.rows(name), _row_table(tables[name], name, plan[0][2]), params)
    dropped = sum(n for *_, n in plan)
    log.info("%s: %d windows of %g s dropped because their lagged scans run past the end of a run",
             subject, dropped, window)
    counts = {f"{name}_rows": sum(map(len, parts)) for name, parts in tables.items()}
    return {"train_rows": counts["train_rows"], "test_rows": counts["test_rows"],
            "test_repeat_rows": counts["test_repeats_rows"], "dropped_windows": dropped}


def test_repeat_rows(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The test runs' window rows together, each with ``repeat``: its earlier presentations of the same (stimulus,
    window) in any test run (a stimulus may be heard in several test runs or sessions: its repeats are averaged
    over all of them, and give the noise ceiling)."""
    if not parts:
        return pd.DataFrame()
    rows = pd.concat(parts, ignore_index=True)
    return rows.assign(repeat=rows.groupby(["clip_id", "window"]).cumcount())


def _row_table(parts: list[pd.DataFrame], name: str, like: pd.DataFrame) -> pd.DataFrame:
    """The row table ``name`` from its runs' parts; without any (a design with no declared test set), an empty
    table with the columns it would have (``like``: a run's window rows)."""
    if parts:
        return pd.concat(parts, ignore_index=True)
    presentations = like.iloc[:0].drop(columns=["cv_fold", "group"], errors="ignore")
    return repeat_groups(presentations)[0] if name == "test" else presentations


def repeat_groups(rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per (clip, window) with ``n_repeats``, and the group index of every input row."""
    codes, _ = pd.MultiIndex.from_frame(rows[["clip_id", "window"]]).factorize(sort=False)
    counts = np.bincount(codes)
    first = np.unique(codes, return_index=True)[1]
    table = rows.iloc[first][[c for c in rows.columns if c not in PRESENTATION_COLUMNS]]
    return table.assign(n_repeats=counts).reset_index(drop=True), codes


def average_repeats(rows: pd.DataFrame, responses: np.ndarray) -> np.ndarray:
    """Mean response over the repeats of each (clip, window), in ``repeat_groups`` order."""
    table, codes = repeat_groups(rows)
    weights = (1.0 / table["n_repeats"].to_numpy()[codes]).astype(np.float32)
    membership = sparse.csr_matrix((weights, (codes, np.arange(len(codes)))), shape=(len(table), len(codes)))
    return np.asarray(membership @ np.asarray(responses, dtype=np.float32), dtype=np.float32)
