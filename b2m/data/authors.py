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

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from b2m.data.bids import BidsDataset
from b2m.data.events import stimulus_windows
from b2m.data.responses import (average_windows, check_windows_hold_scans, first_analysed_scan, log_dropped,
                                unusable_voxels, window_scan_ranges)
from b2m.errors import InputError
from b2m.io import load_npy, write_npy, write_parquet
from b2m.layout import WindowFiles
from b2m.options import WindowOptions

log = logging.getLogger(__name__)

SCANS_PER_TRAINING_RUN = 400  # the analysed scans of a training run (410 less the lead-in event's 10)
CYCLE_SCANS = 100  # a test run's cycle of 10 clips, which the test-mean array averages
AUTHORS_FIX = "download the authors' arrays again (Zenodo record 8275363) into dataset.authors_arrays"
ARRAY_NAMES = {"train": "{subject}_Resp_Training.npy", "test": "{subject}_Resp_Test_Mean.npy"}


def load_authors_array(path, n_columns: int, what: str) -> np.ndarray:
    """One of the authors' arrays (memory-mapped), voxels × ``n_columns``; ``what`` is training or test-mean."""
    array = load_npy(path, mmap=True, what=f"authors' {what} array", fix=AUTHORS_FIX)
    if array.ndim != 2 or array.shape[1] != n_columns:
        raise InputError(path, f"{what} array has shape {array.shape}, expected voxels × {n_columns}",
                         "give the authors' sub-XXX_Resp_Training.npy / _Resp_Test_Mean.npy of this subject")
    return array


def authors_responses(dataset: BidsDataset, subject: str, training_path, test_path, out_dir,
                      window: float, stride: float, lag_s: float = WindowOptions.lag_s,
                      params: dict | None = None) -> dict:
    """Window the authors' arrays like raw BOLD; writes train / test matrices and row tables. Voxels that are
    constant or non-finite in any run are dropped from both, as clean-bold drops them from BOLD (logged); a run
    with no other voxel is an error."""
    out = WindowFiles(out_dir)
    dataset.check_same_stimuli(subject)
    runs = dataset.runs(subject)
    train_runs = [r for r in runs if r.split == "train"]
    test_runs = [r for r in runs if r.split == "test"]
    scans_per_train_run, cycle = SCANS_PER_TRAINING_RUN, CYCLE_SCANS
    training = load_authors_array(training_path, scans_per_train_run * len(train_runs), "training")
    test = load_authors_array(test_path, cycle * len(test_runs), "test-mean")
    if training.shape[0] != test.shape[0]:
        raise InputError(test_path, f"{test.shape[0]} voxels, the training array has {training.shape[0]}",
                         "use the training and test arrays of the same subject")
    params = {**(params or {}), "subject": subject, "source": "authors-arrays", "window_s": window,
              "stride_s": stride, "lag_s": lag_s}
    windows, bad = {}, np.zeros(training.shape[0], dtype=bool)
    for split, split_runs, array, width, path in (("train", train_runs, training, scans_per_train_run, training_path),
                                                  ("test", test_runs, test, cycle, test_path)):
        tables, blocks = [], []
        for index, run in enumerate(split_runs):
            events = run.read_events()
            tr = run.repetition_time()
            offset = first_analysed_scan(events, tr)
            rows = stimulus_windows(events, window, stride)
            first, stop = window_scan_ranges(rows, tr, lag_s)
            check_windows_hold_scans(first, stop, window, run)
            first, stop = first - offset, stop - offset
            block = np.asarray(array[:, index * width:(index + 1) * width], dtype=np.float32).T
            bad |= _unusable_in_run(block, path, index * width, run)
            if split == "test":
                _check_cycle(run, events, tr, width)
                first_cycle = (rows["repeat"] == 0).to_numpy()
                rows, first, stop = rows[first_cycle].reset_index(drop=True), first[first_cycle], stop[first_cycle]
                block = np.concatenate([block, block])  # wrap around the cycle
                keep = (first >= 0) & (stop <= 2 * width)
            else:
                keep = (first >= 0) & (stop <= width)
            rows = rows[keep].reset_index(drop=True)
            rows.insert(0, "run", run.run)
            tables.append(rows)
            blocks.append(average_windows(block, first[keep], stop[keep]))
        table = pd.concat(tables, ignore_index=True)
        if split == "test":
            table = table[["clip_id", "genre", "track", "window", "start_s", "end_s"]].assign(n_repeats=4)
        windows[split] = (table, np.concatenate(blocks))
    if bad.all():
        raise InputError(training_path, f"every one of its {len(bad)} voxels is constant or non-finite in a run "
                         f"of it or of {Path(test_path).name}", AUTHORS_FIX)
    if bad.any():
        log_dropped(subject, bad)
    for split, (table, responses) in windows.items():
        write_npy(out.array(split), responses[:, ~bad], params)
        write_parquet(out.rows(split), table, params)
    return {f"{split}_rows": len(table) for split, (table, _) in windows.items()}


def _unusable_in_run(block: np.ndarray, path, column: int, run) -> np.ndarray:
    """The voxels of one run's block (scans × voxels, from ``column`` of the array at ``path``) that are constant
    or non-finite; a run where all are is an error."""
    bad = unusable_voxels(block)
    if bad.all():
        raise InputError(path, f"every one of its {len(bad)} voxels is constant or non-finite in columns "
                         f"{column}..{column + len(block) - 1} ({run.stem})",
                         f"{AUTHORS_FIX}; b2m drops such voxels, but a run needs voxels it can use")
    return bad


def _check_cycle(run, events: pd.DataFrame, tr: float, width: int) -> None:
    clips = events["clip_id"].tolist()
    period = width * tr / float(events["duration"].iloc[0])
    if not period.is_integer() or any(clips[i] != clips[i + int(period)] for i in range(len(clips) - int(period))):
        raise InputError(run.events, "the test run is not a repeated cycle led in by its last clip",
                         "the authors' test-mean arrays only fit ds003720's test design; use raw BOLD instead")
