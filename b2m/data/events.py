"""ds003720 events.tsv parsing and the stimulus timeline of each run.

The real files have CRLF line endings, no final newline, genres in literal single quotes, and in
task-Training run-04 three genres with only the closing quote (``classical'``). ``track`` is the
0-based GTZAN index within the genre; the clip id is ``<genre>.<track:05d>`` (the GTZAN file stem).

Every run opens with an event that is not analysed: in training runs it repeats the previous run's
last clip, in test runs it is the last clip of the 10-clip cycle played before the first full cycle.
Dropping it leaves 40 clips per training run (480 unique over 12 runs) and 4 repeats of each of the
10 clips per test run (60 unique over 6 runs).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from b2m import GTZAN_GENRES
from b2m.errors import InputError
from b2m.io import regular_file

EVENT_COLUMNS = ("onset", "duration", "genre", "track", "start", "end")
EVENTS_FIX = "restore the file from the dataset (it is plain UTF-8 text)"
# What each numeric column must hold (a rule over the table, and what a row that breaks it is).
EVENT_RANGES = {"onset": (lambda t: t.onset >= 0, "is negative"),
                "duration": (lambda t: t.duration > 0, "is not positive (an event lasts)"),
                "track": (lambda t: t.track >= 0, "is negative"),
                "start": (lambda t: t.start >= 0, "is negative"),
                "end": (lambda t: t.end > t.start, "is not after the excerpt's 'start'")}


def clip_id(genre: str, track: int) -> str:
    """GTZAN file stem of a clip, e.g. ``clip_id("blues", 17) == "blues.00017"``."""
    return f"{genre}.{int(track):05d}"


def events_text(path) -> str:
    """The text of an events file: a regular, non-empty file of UTF-8 text (a FIFO or device is never opened)."""
    path = regular_file(path, "events file", EVENTS_FIX)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot read events file ({err})", EVENTS_FIX) from err


def read_events(path) -> pd.DataFrame:
    """Parse one events.tsv into columns onset, duration (s), genre, track, start, end (s), clip_id."""
    path = Path(path)
    try:
        table = pd.read_csv(io.StringIO(events_text(path)), sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise InputError(path, f"not a tab-separated events table ({err})", EVENTS_FIX) from err
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in EVENT_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(path, f"missing columns {missing}; found {list(table.columns)}",
                         f"an events file needs the tab-separated columns {list(EVENT_COLUMNS)}")
    if table.empty:
        raise InputError(path, "no events", "restore the file from the dataset")
    table = table[list(EVENT_COLUMNS)].apply(lambda col: col.str.strip())
    table["genre"] = table["genre"].str.strip("'\"")
    unknown = sorted(set(table["genre"]) - set(GTZAN_GENRES))
    if unknown:
        rows = [int(i) + 2 for i in np.flatnonzero(table["genre"].isin(unknown))]
        raise InputError(path, f"unknown genre(s) {unknown} on line(s) {rows}",
                         f"genres must be GTZAN genres: {', '.join(GTZAN_GENRES)}")
    for col in ("onset", "duration", "start", "end"):
        table[col] = _numeric(table[col], path, col, float)
    table["track"] = _numeric(table["track"], path, "track", int)
    _check_ranges(table, path)
    table["clip_id"] = [clip_id(g, t) for g, t in zip(table["genre"], table["track"])]
    _check_no_overlap(table, path)
    return table


def _check_ranges(table: pd.DataFrame, path) -> None:
    """Times and tracks are not negative, every event lasts, and every excerpt ends after it starts."""
    for column, (holds, broken) in EVENT_RANGES.items():
        bad = np.flatnonzero(~holds(table).to_numpy())
        if len(bad):
            lines = [int(i) + 2 for i in bad]
            raise InputError(path, f"column '{column}' {broken} on line(s) {lines[:10]} (line {lines[0]}: "
                             f"{table[column].iloc[bad[0]]:g})",
                             "restore the file from the dataset: onset, duration, start and end are seconds "
                             "(a duration above 0, an excerpt's end after its start)")


def _check_no_overlap(table: pd.DataFrame, path) -> None:
    """Events of a run follow each other: one that starts before the previous one ends would put the same scans
    into two clips' windows."""
    ends = (table["onset"] + table["duration"]).to_numpy()[:-1]
    early = np.flatnonzero(table["onset"].to_numpy()[1:] < ends - 1e-6)
    if len(early):
        line = int(early[0]) + 3
        raise InputError(path, f"the event on line {line} starts at {table['onset'].iloc[early[0] + 1]:g} s, before "
                         f"the previous event ends at {ends[early[0]]:g} s",
                         "fix the onsets or durations: a run's events must not overlap (their scans would be "
                         "averaged into two clips)")


def check_training_events(events: pd.DataFrame, path) -> None:
    """A training run plays each analysed clip once (ds003720: 40 different clips a run)."""
    analysed = analysed_events(events)
    twice = analysed["clip_id"][analysed["clip_id"].duplicated()].unique().tolist()
    if twice:
        lines = [int(e) + 2 for e in analysed["event"][analysed["clip_id"].isin(twice)]]
        raise InputError(path, f"clip {twice[0]} is played twice in this training run (lines {lines})",
                         "fix the events file: a training run plays each clip once (if the repeats are meant, "
                         "the run belongs to the test task, `dataset.test_task`)")


def _numeric(column: pd.Series, path, name: str, kind):
    values = pd.to_numeric(column, errors="coerce")
    bad = np.flatnonzero(~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan)))
    if len(bad):
        raise InputError(path, f"column '{name}' is not a finite number on line(s) {[int(i) + 2 for i in bad]}",
                         "restore the file from the dataset")
    if kind is int:
        if not np.all(values == np.round(values)):
            raise InputError(path, f"column '{name}' holds non-integers", "tracks are GTZAN indices 0-99")
        return values.astype(np.int64)
    return values.astype(np.float64)


def analysed_events(events: pd.DataFrame) -> pd.DataFrame:
    """The events that are analysed: all but the run's first, with ``event`` (index in the file)
    and ``repeat`` (0-based count of earlier analysed presentations of the clip in this run)."""
    kept = events.iloc[1:].copy()
    kept.insert(0, "event", np.arange(1, len(events)))
    kept["repeat"] = kept.groupby("clip_id").cumcount()
    return kept.reset_index(drop=True)


def window_starts(window: float, stride: float, clip_seconds: float = 15.0) -> np.ndarray:
    """Start times (s, relative to the excerpt) of the windows that fit inside one clip."""
    n = int(np.floor((clip_seconds - window) / stride + 1e-9)) + 1
    if n < 1:
        raise ValueError(f"a {window} s window does not fit in a {clip_seconds} s clip")
    return np.round(np.arange(n) * stride, 6)


def stimulus_windows(events: pd.DataFrame, window: float, stride: float) -> pd.DataFrame:
    """One row per (analysed event, window): clip_id, genre, event, repeat, window index,
    ``start_s``/``end_s`` (relative to the excerpt) and ``run_start_s``/``run_end_s`` (run time)."""
    kept = analysed_events(events)
    starts = window_starts(window, stride, float(np.median(kept["duration"])))
    rows = kept.loc[kept.index.repeat(len(starts))].reset_index(drop=True)
    rows["window"] = np.tile(np.arange(len(starts)), len(kept))
    rows["start_s"] = np.tile(starts, len(kept))
    rows["end_s"] = rows["start_s"] + window
    rows["run_start_s"] = rows["onset"] + rows["start_s"]
    rows["run_end_s"] = rows["onset"] + rows["end_s"]
    return rows[["clip_id", "genre", "track", "event", "repeat", "window", "start_s", "end_s",
                 "run_start_s", "run_end_s"]]
