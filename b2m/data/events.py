"""Reading a run's events.tsv: onset and duration (s) and every other column as text.

BIDS events files are tab-separated with ``onset`` and ``duration`` in seconds; studies add columns of their own
(``stim_file``, ``trial_type``, a genre and a track, an excerpt's start and end). Values are read as text with the
surrounding whitespace and quote characters removed (ds003720 writes genres in single quotes, three with only the
closing one), and ``n/a`` stays a value of its own. Which events are analysed, and what they present, is the
design's (``b2m.data.design``).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from b2m.errors import InputError
from b2m.io import regular_file

TIMING_COLUMNS = ("onset", "duration")
EVENTS_FIX = "restore the file from the dataset (it is plain UTF-8 text)"
QUOTES = "'\"`"


def events_text(path) -> str:
    """The text of an events file: a regular, non-empty file of UTF-8 text (a FIFO or device is never opened)."""
    path = regular_file(path, "events file", EVENTS_FIX)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot read events file ({err})", EVENTS_FIX) from err


def read_events(path) -> pd.DataFrame:
    """Parse one events.tsv: ``onset`` (≥ 0) and ``duration`` (> 0) as seconds, every other column as stripped
    text; the rows keep the file's order (row i is line i + 2)."""
    path = Path(path)
    try:
        table = pd.read_csv(io.StringIO(events_text(path)), sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise InputError(path, f"not a tab-separated events table ({err})", EVENTS_FIX) from err
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in TIMING_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(path, f"missing columns {missing}; found {list(table.columns)}",
                         "a BIDS events file has the tab-separated columns onset and duration (s) first")
    if table.empty:
        raise InputError(path, "no events", "restore the file from the dataset")
    table = table.apply(lambda col: col.str.strip().str.strip(QUOTES))
    for column in TIMING_COLUMNS:
        table[column] = _seconds(table[column], path, column)
    _check_ranges(table, path)
    return table


def _seconds(column: pd.Series, path, name: str) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce")
    bad = np.flatnonzero(~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan)))
    if len(bad):
        raise InputError(path, f"column '{name}' is not a finite number on line(s) {[int(i) + 2 for i in bad[:10]]}",
                         "restore the file from the dataset")
    return values.astype(np.float64)


def _check_ranges(table: pd.DataFrame, path) -> None:
    """Onsets are not negative and every event lasts."""
    for column, holds, broken in (("onset", table.onset >= 0, "is negative"),
                                  ("duration", table.duration > 0, "is not positive (an event lasts)")):
        bad = np.flatnonzero(~holds.to_numpy())
        if len(bad):
            lines = [int(i) + 2 for i in bad]
            raise InputError(path, f"column '{column}' {broken} on line(s) {lines[:10]} (line {lines[0]}: "
                             f"{table[column].iloc[bad[0]]:g})",
                             "restore the file from the dataset: onset and duration are seconds (a duration above 0)")
