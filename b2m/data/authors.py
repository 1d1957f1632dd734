"""The authors' preprocessed responses (Zenodo record 8275363) as a second input format.

``sub-XXX_Resp_Training.npy`` is voxels × 4800: 12 training runs × their 400 analysed scans (scans
10..409, the lead-in event dropped), detrended and z-scored. ``sub-XXX_Resp_Test_Mean.npy`` is
voxels × 600: 6 test runs × 100 scans, the mean over the 4 cycles of each run's 10 clips. Clip order
comes from the events files (the same for every subject).

The same lagged windows as for raw BOLD are taken. In a test run the lead-in event plays the cycle's
last clip, so the scans before a cycle respond to the same clip as the scans after it: a lagged window
that runs past the end of the 100-scan cycle mean wraps around to its start, which averages the same
clip's 4 presentations (events 0, 10, 20, 30 instead of 10, 20, 30, 40).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from b2m.data.bids import BidsDataset
from b2m.data.design import stimulus_windows
from b2m.data.responses import (PRESENTATION_COLUMNS, average_windows, check_windows_hold_scans, first_analysed_scan,
                                log_dropped, unusable_voxels, window_scan_ranges, with_fold_columns)
from b2m.errors import InputError
from b2m.io import load_npy, write_npy, write_parquet
from b2m.layout import WindowFiles
from b2m.options import WindowOptions

log = logging.getLogger(__name__)

SCANS_PER_TRAINING_RUN = 400  # the analysed scans of a training run (410 less the lead-in event's 10)
CYCLE_SCANS = 100  # a test run's cycle of 10 clips, which the test-mean array averages
AUTHORS_FIX = "download the authors' arrays again (Zenodo record 8275363) into dataset.authors_arrays"
ARRAY_NAMES = {"train": "{subject}_Resp_Training.npy", "test": "{subject}_Resp_Test_Mean.npy"}
SPLITS = {"train": (SCANS_PER_TRAINING_RUN, "training"), "test": (CYCLE_SCANS, "test-mean")}  # columns a run, name


@dataclass
class AuthorsArrays:
    """A subject's two arrays (memory-mapped, voxels × scans), checked against its runs, and the voxels that are
    constant or non-finite in some run (``unusable``: clean-bold drops such voxels from BOLD, and so does b2m here)."""

    train: np.ndarray
    test: np.ndarray
    unusable: np.ndarray


def load_authors_arrays(training_path, test_path, runs) -> AuthorsArrays:
    """The arrays of the subject whose ``runs`` are given, checked: .npy arrays of voxels × the analysed scans of
    the runs, of the same voxels, each run with a voxel b2m can use (an all-NaN, Inf or constant run is an error
    naming the file and its columns)."""
    arrays, unusable = {}, []
    for split, path in (("train", training_path), ("test", test_path)):
        width, what = SPLITS[split]
        split_runs = [run for run in runs if run.split == split]
        array = load_npy(path, mmap=True, what=f"authors' {what} array", fix=AUTHORS_FIX)
        if array.ndim != 2 or array.shape[1] != width * len(split_runs):
            raise InputError(path, f"{what} array has shape {array.shape}, expected voxels × "
                             f"{width * len(split_runs)}", "give the authors' sub-XXX_Resp_Training.npy / "
                             "_Resp_Test_Mean.npy of this subject")
        if arrays and array.shape[0] != arrays["train"].shape[0]:
            raise InputError(path, f"{array.shape[0]} voxels, the training array has {arrays['train'].shape[0]}",
                             "use the training and test arrays of the same subject")
        arrays[split] = array
        unusable += [_unusable_in_run(array, path, index * width, width, run) for index, run in enumerate(split_runs)]
    bad = np.logical_or.reduce(unusable)
    if bad.all():
        raise InputError(training_path, f"every one of its {len(bad)} voxels is constant or non-finite in a run of "
                         f"it or of {Path(test_path).name}", AUTHORS_FIX)
    return AuthorsArrays(arrays["train"], arrays["test"], bad)


def _unusable_in_run(array: np.ndarray, path, column: int, width: int, run) -> np.ndarray:
    """The voxels that are constant or non-finite in one run's ``width`` columns from ``column`` of the array at
    ``path``; a run where all are is an error."""
    bad = unusable_voxels(np.asarray(array[:, column:column + width], dtype=np.float32).T)
    if bad.all():
        raise InputError(path, f"every one of its {len(bad)} voxels is constant or non-finite in columns "
                         f"{column}..{column + width - 1} ({run.stem})",
                         f"{AUTHORS_FIX}; b2m drops such voxels, but a run needs voxels it can use")
    return bad


def authors_responses(dataset: BidsDataset, subject: str, training_path, test_path, out_dir,
                      window: float, stride: float, lag_s: float = WindowOptions.lag_s,
                      params: dict | None = None) -> dict:
    """Window the authors' arrays like raw BOLD; writes train / test matrices and row tables, without the voxels
    that are constant or non-finite in a run (logged, as clean-bold does)."""
    out = WindowFiles(out_dir)
    runs = dataset.runs(subject)
    arrays = load_authors_arrays(training_path, test_path, runs)
    params = {**(params or {}), "subject": subject, "source": "authors-arrays", "window_s": window,
              "stride_s": stride, "lag_s": lag_s}
    windows = {}
    for split, array in (("train", arrays.train), ("test", arrays.test)):
        width = SPLITS[split][0]
        tables, blocks = [], []
        for index, run in enumerate(r for r in runs if r.split == split):
            kept = run.analysed(dataset.design)
            tr = run.repetition_time()
            offset = first_analysed_scan(kept, tr)
            rows = stimulus_windows(kept, window, stride, dataset.design.labels)
            first, stop = window_scan_ranges(rows, tr, lag_s)
            check_windows_hold_scans(first, stop, window, run)
            first, stop = first - offset, stop - offset
            block = np.asarray(array[~arrays.unusable, index * width:(index + 1) * width], dtype=np.float32).T
            if split == "test":
                _check_cycle(run, dataset, tr, width)
                first_cycle = (rows["repeat"] == 0).to_numpy()
                rows, first, stop = rows[first_cycle].reset_index(drop=True), first[first_cycle], stop[first_cycle]
                block = np.concatenate([block, block])  # wrap around the cycle
                keep = (first >= 0) & (stop <= 2 * width)
            else:
                keep = (first >= 0) & (stop <= width)
            rows = rows[keep].reset_index(drop=True)
            rows.insert(0, "run", run.index)
            tables.append((run, rows))
            blocks.append(average_windows(block, first[keep], stop[keep]))
        if split == "train":
            with_fold_columns(dataset, subject, [(run, 0, rows, 0) for run, rows in tables])
        table = pd.concat([rows for _, rows in tables], ignore_index=True)
        if split == "test":
            table = table[[c for c in table.columns if c not in PRESENTATION_COLUMNS]].assign(n_repeats=4)
        windows[split] = (table, np.concatenate(blocks))
    if arrays.unusable.any():
        log_dropped(subject, arrays.unusable)
    for split, (table, responses) in windows.items():
        write_npy(out.array(split), responses, params)
        write_parquet(out.rows(split), table, params)
    return {f"{split}_rows": len(table) for split, (table, _) in windows.items()}


def _check_cycle(run, dataset: BidsDataset, tr: float, width: int) -> None:
    """A test run of the authors' design: a cycle of clips played in turn, led in by its last clip."""
    events = run.analysed(dataclasses.replace(dataset.design, lead_in=0))
    clips = events["clip_id"].tolist()
    period = width * tr / float(events["duration"].iloc[0])
    if not period.is_integer() or any(clips[i] != clips[i + int(period)] for i in range(len(clips) - int(period))):
        raise InputError(run.events, "the test run is not a repeated cycle led in by its last clip",
                         "the authors' test-mean arrays only fit ds003720's test design; use raw BOLD instead")
