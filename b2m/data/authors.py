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
from b2m.data.responses import (average_windows, check_windows_hold_scans, first_analysed_scan,
                                window_scan_ranges)
from b2m.errors import InputError
from b2m.io import load_npy, write_npy, write_parquet
from b2m.layout import WindowFiles
from b2m.options import WindowOptions

log = logging.getLogger(__name__)

SCANS_PER_TRAINING_RUN = 400  # the analysed scans of a training run (410 less the lead-in event's 10)
CYCLE_SCANS = 100  # a test run's cycle of 10 clips, which the test-mean array averages
ARRAY_NAMES = {"train": "{subject}_Resp_Training.npy", "test": "{subject}_Resp_Test_Mean.npy"}


def _load(path: Path, n_columns: int, what: str) -> np.ndarray:
    try:
        array = load_npy(path, mmap=True)
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot read the {what} array ({err})",
                         "download the authors' arrays again (Zenodo record 8275363)") from err
    if array.ndim != 2 or array.shape[1] != n_columns:
        raise InputError(path, f"{what} array has shape {array.shape}, expected voxels × {n_columns}",
                         "give the authors' sub-XXX_Resp_Training.npy / _Resp_Test_Mean.npy of this subject")
    return array


def authors_responses(dataset: BidsDataset, subject: str, training_path, test_path, out_dir,
                      window: float, stride: float, lag_s: float = WindowOptions.lag_s,
                      params: dict | None = None) -> dict:
    """Window the authors' arrays like raw BOLD; writes train / test matrices and row tables."""
    out = WindowFiles(out_dir)
    dataset.check_same_stimuli(subject)
    runs = dataset.runs(subject)
    train_runs = [r for r in runs if r.split == "train"]
    test_runs = [r for r in runs if r.split == "test"]
    scans_per_train_run, cycle = SCANS_PER_TRAINING_RUN, CYCLE_SCANS
    training = _load(Path(training_path), scans_per_train_run * len(train_runs), "training")
    test = _load(Path(test_path), cycle * len(test_runs), "test-mean")
    if training.shape[0] != test.shape[0]:
        raise InputError(test_path, f"{test.shape[0]} voxels, the training array has {training.shape[0]}",
                         "use the training and test arrays of the same subject")
    params = {**(params or {}), "subject": subject, "source": "authors-arrays", "window_s": window,
              "stride_s": stride, "lag_s": lag_s}
    outputs = {}
    for split, split_runs, array, width in (("train", train_runs, training, scans_per_train_run),
                                            ("test", test_runs, test, cycle)):
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
        write_npy(out.array(split), np.concatenate(blocks), params)
        write_parquet(out.rows(split), table, params)
        outputs[f"{split}_rows"] = len(table)
    return outputs


def _check_cycle(run, events: pd.DataFrame, tr: float, width: int) -> None:
    clips = events["clip_id"].tolist()
    period = width * tr / float(events["duration"].iloc[0])
    if not period.is_integer() or any(clips[i] != clips[i + int(period)] for i in range(len(clips) - int(period))):
        raise InputError(run.events, "the test run is not a repeated cycle led in by its last clip",
                         "the authors' test-mean arrays only fit ds003720's test design; use raw BOLD instead")
