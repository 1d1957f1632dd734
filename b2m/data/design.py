"""A study's design: from each run's events to the analysed presentations, the stimulus table and the window rows.

``DesignOptions`` (the config's ``design`` section) says which events are analysed (``keep`` / ``drop`` filters on
column values, less ``lead_in`` events at each run's start), which column names the stimulus (BIDS ``stim_file`` or
another column, or a ``template`` of columns such as ``{genre}/{genre}.{track:05d}``, with an excerpt's ``start`` and
``end`` columns), which columns label it, which runs hold the declared test set, and what a cv-<k> fold holds out.

A stimulus is known by its ``clip_id`` (its file's name without the suffix); in a design without a stimulus column
each analysed event is a stimulus of its own (``<run>_event-<n>``), known by its labels only. Every presentation of a
stimulus is windowed on the same grid: windows of the feature's length and stride inside the stimulus's own duration
(the excerpt's, else the event's), so the feature rows and the response rows pair on (clip_id, window).
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pandas as pd

from b2m.errors import ConfigError, InputError
from b2m.options import DesignOptions

# The stimulus table's columns besides the label columns: the stimulus, its file (relative to the stimulus folder,
# "" where events name none), its split, its excerpt in that file (s) and the first label's value ("" without one).
STIMULUS_COLUMNS = ["clip_id", "path", "split", "start", "end", "label"]
# How far a stimulus's last window may run past its end (s): excerpt times rounded to the hundredth, as ds003720's
# 14.99 s excerpt of pop.00049, keep the windows of their nominal length (the audio is zero-padded there).
WINDOW_SLACK_S = 0.02
STIMULUS_FIX = "fix the events files or the config's `design` section (b2m init-config writes one from the folder)"


def clip_id_of(path: str) -> str:
    """A stimulus's id: its file's name without the suffix (``blues/blues.00017.wav`` → ``blues.00017``)."""
    from b2m.features.audio import AUDIO_SUFFIXES

    name = Path(path).name
    suffix = next((s for s in AUDIO_SUFFIXES if name.lower().endswith(s)), "")
    return name[: len(name) - len(suffix)]


def _values(events: pd.DataFrame, column: str, path, what: str) -> pd.Series:
    if column not in events.columns:
        raise InputError(path, f"no column '{column}' ({what}); its columns: {list(events.columns)}",
                         "name a column of the events files in the config's `design` section, or run "
                         "`b2m init-config` on the folder")
    return events[column]


def _selected(events: pd.DataFrame, design: DesignOptions, path) -> np.ndarray:
    """True for each event the ``keep`` and ``drop`` filters analyse."""
    chosen = np.ones(len(events), dtype=bool)
    for column, values in (design.keep or {}).items():
        chosen &= _values(events, column, path, "a design.keep filter").isin(list(map(str, values))).to_numpy()
    for column, values in (design.drop or {}).items():
        chosen &= ~_values(events, column, path, "a design.drop filter").isin(list(map(str, values))).to_numpy()
    return chosen


def _stimulus_paths(events: pd.DataFrame, design: DesignOptions, path) -> list[str]:
    """Each event's stimulus file (relative to the stimulus folder)."""
    if design.stimulus_column:
        return _values(events, design.stimulus_column, path, "design.stimulus.column").tolist()
    specs = {name: spec for _, name, spec, _ in string.Formatter().parse(design.stimulus_template) if name}
    fields = list(specs)
    for name in fields:
        _values(events, name, path, "a field of design.stimulus.template")
    paths = []
    for row in events[fields].itertuples(index=False):
        values = {name: _template_value(value, specs[name]) for name, value in zip(fields, row)}
        try:
            paths.append(design.stimulus_template.format(**values))
        except (ValueError, KeyError) as err:
            raise InputError(path, f"design.stimulus.template {design.stimulus_template!r} cannot be filled from "
                             f"{values} ({err})", STIMULUS_FIX) from err
    return paths


def _template_value(value: str, spec: str):
    """An events value as a template field takes it: a number where the field's format is an integer one
    (``{track:05d}``), else the text as it is (``{name}`` keeps ``00085`` and ``1.5``)."""
    if spec and spec[-1] in "dxXobn":
        try:
            return int(float(value))
        except ValueError:
            return value  # the format names it
    return value


def _seconds(events: pd.DataFrame, column: str, path) -> np.ndarray:
    values = pd.to_numeric(_values(events, column, path, "an excerpt column"), errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if len(bad):
        raise InputError(path, f"column '{column}' is not a number of seconds ≥ 0 on line(s) "
                         f"{[int(events.index[i]) + 2 for i in bad[:10]]}", STIMULUS_FIX)
    return values


def analysed_events(events: pd.DataFrame, design: DesignOptions, run_stem: str, path) -> pd.DataFrame:
    """The events of one run that are analysed (filtered, less the lead-in), each with ``event`` (its line's index
    in the file), ``clip_id``, ``path``, the label columns, ``label``, the excerpt's ``start``/``end`` in the file
    (s) and ``repeat`` (earlier presentations of the stimulus in this run)."""
    events = events.reset_index(drop=True)
    kept = events.loc[_selected(events, design, path)].iloc[design.lead_in:].copy()
    kept.insert(0, "event", kept.index.to_numpy())
    if design.has_stimuli:
        kept["path"] = _stimulus_paths(kept, design, path)
        kept["clip_id"] = [clip_id_of(p) for p in kept["path"]]
        empty = np.flatnonzero(kept["clip_id"].to_numpy() == "")
        if len(empty):
            raise InputError(path, f"line {int(kept['event'].iloc[empty[0]]) + 2} names no stimulus", STIMULUS_FIX)
    else:
        kept["path"] = ""
        kept["clip_id"] = [f"{run_stem}_event-{e:03d}" for e in kept["event"]]
    kept["start"] = _seconds(kept, design.excerpt_start, path) if design.excerpt_start else 0.0
    kept["end"] = _seconds(kept, design.excerpt_end, path) if design.excerpt_end else \
        kept["start"] + kept["duration"]
    short = np.flatnonzero((kept["end"] <= kept["start"]).to_numpy())
    if len(short):
        raise InputError(path, f"the excerpt of line {int(kept['event'].iloc[short[0]]) + 2} ends at or before it "
                         "starts", STIMULUS_FIX)
    long = np.flatnonzero((kept["end"] - kept["start"] > kept["duration"] + WINDOW_SLACK_S).to_numpy())
    if len(long):
        row = kept.iloc[long[0]]
        raise InputError(path, f"the excerpt of line {int(row['event']) + 2} lasts {row['end'] - row['start']:g} s, "
                         f"its event {row['duration']:g} s: its windows would take the next event's scans",
                         STIMULUS_FIX)
    for column in design.labels:
        kept[column] = _values(kept, column, path, "a design.labels column")
    kept["label"] = kept[design.labels[0]] if design.labels else ""
    kept["repeat"] = kept.groupby("clip_id").cumcount()
    _check_no_overlap(kept, path)
    return kept.reset_index(drop=True)


def _check_no_overlap(kept: pd.DataFrame, path) -> None:
    """Analysed events follow each other: one that starts before the previous one ends would put the same scans
    into two stimuli's windows."""
    ends = (kept["onset"] + kept["duration"]).to_numpy()[:-1]
    early = np.flatnonzero(kept["onset"].to_numpy()[1:] < ends - 1e-6)
    if len(early):
        line = int(kept["event"].iloc[early[0] + 1]) + 2
        raise InputError(path, f"the analysed event on line {line} starts at {kept['onset'].iloc[early[0] + 1]:g} s, "
                         f"before the previous one ends at {ends[early[0]]:g} s",
                         "fix the onsets or durations, or leave one of the events out (design.drop): analysed "
                         "events must not overlap (their scans would be averaged into two stimuli)")


def stimulus_table(presentations: pd.DataFrame, design: DesignOptions) -> pd.DataFrame:
    """One row per stimulus from every analysed presentation (columns of ``analysed_events`` with ``split`` and
    ``events_file``): ``STIMULUS_COLUMNS`` and the label columns, training stimuli first, each sorted by id. A
    stimulus in both splits, or with two excerpts or labels, is an error naming the files."""
    for column in ("split", "start", "end", "path", *design.labels):
        varying = presentations.groupby("clip_id")[column].nunique()
        if (varying > 1).any():
            clip = varying.index[varying > 1][0]
            files = sorted(set(presentations.loc[presentations.clip_id == clip, "events_file"]))
            raise InputError(files[0], f"stimulus {clip} has more than one '{column}' across runs ({files})",
                             "a stimulus keeps its split, file, excerpt and labels in every run: fix the events "
                             "files, or the runs of the declared test set (design.test)")
    columns = [*STIMULUS_COLUMNS, *[c for c in design.labels if c not in STIMULUS_COLUMNS]]
    table = presentations.drop_duplicates("clip_id")[columns]
    return table.sort_values(["split", "clip_id"], ascending=[False, True]).reset_index(drop=True)


def window_starts(window: float, stride: float, seconds: float) -> np.ndarray:
    """Start times (s, relative to the stimulus's start) of the windows that fit inside ``seconds`` (a window may
    end ``WINDOW_SLACK_S`` after it: rounded excerpt times)."""
    n = int(np.floor((seconds - window + WINDOW_SLACK_S) / stride + 1e-9)) + 1
    if n < 1:
        raise ValueError(f"a {window:g} s window does not fit in a {seconds:g} s stimulus")
    return np.round(np.arange(n) * stride, 6)


def stimulus_windows(kept: pd.DataFrame, window: float, stride: float, labels=()) -> pd.DataFrame:
    """One row per (analysed presentation, window) of ``analysed_events``: clip_id, label, the ``labels`` columns,
    event, repeat, window index, ``start_s``/``end_s`` (relative to the stimulus) and ``run_start_s``/``run_end_s``
    (run time)."""
    per_event = [window_starts(window, stride, end - start) for start, end in zip(kept["start"], kept["end"])]
    counts = np.array([len(starts) for starts in per_event], dtype=int)
    rows = kept.loc[kept.index.repeat(counts)].reset_index(drop=True)
    rows["window"] = np.concatenate([np.arange(n) for n in counts]) if len(counts) else []
    rows["start_s"] = np.concatenate(per_event) if per_event else []
    rows["end_s"] = rows["start_s"] + window
    rows["run_start_s"] = rows["onset"] + rows["start_s"]
    rows["run_end_s"] = rows["onset"] + rows["end_s"]
    extra = [column for column in labels if column != "label"]
    return rows[["clip_id", "label", *extra, "event", "repeat", "window", "start_s", "end_s", "run_start_s",
                 "run_end_s"]]


# ---------------------------------------------------------------- folds of a design


def runs_share_stimuli(presentations: pd.DataFrame) -> bool:
    """Whether a stimulus is presented in more than one run (``presentations``: rows with clip_id and run)."""
    return bool((presentations.groupby("clip_id")["run"].nunique() > 1).any())


def stimulus_folds(table: pd.DataFrame, k: int) -> pd.Series:
    """clip_id → its cv fold (1..k) for ``design.cv: stimulus``: the training stimuli of each label dealt in turn
    (sorted by id, then each label's stimuli round-robin from where the last label stopped), so every fold holds
    about as many of each label; the same folds for every subject."""
    training = table[table.split == "train"].sort_values(["label", "clip_id"])
    if len(training) < k:
        raise ConfigError(f"config: outer_folds = {k} but the design has {len(training)} training stimuli; set "
                          f"outer_folds to at most {len(training)}")
    folds = (np.arange(len(training)) % k) + 1
    return pd.Series(folds, index=training.clip_id.to_numpy(), name="cv_fold")


def run_folds(runs: list[int], k: int) -> dict[int, int]:
    """run → its cv fold (1..k) for ``design.cv: run``: k contiguous groups of the training runs."""
    unique = sorted(set(runs))
    if k > len(unique):
        raise ConfigError(f"config: outer_folds = {k} exceeds the training runs of a subject ({len(unique)}): each "
                          f"cv-<k> fold holds out a group of runs; fix: set outer_folds to at most {len(unique)}, or "
                          "leave the cv-<k> folds out of `folds`")
    return {int(run): fold + 1 for fold, group in enumerate(np.array_split(np.asarray(unique), k)) for run in group}


def check_cv_scheme(design: DesignOptions, shared: bool, where) -> None:
    """Leave-run-out folds only where runs share no stimulus: otherwise a left-out run's stimuli were trained on
    (classification of heard stimuli, not reconstruction of new music)."""
    if design.cv == "run" and shared:
        raise InputError(where, "design.cv is run, but runs share stimuli: a left-out run's stimuli are in the "
                         "training runs, so its folds would score stimuli the model was trained on",
                         "set `design.cv: stimulus` (held-out stimuli, stratified by the first label)")
