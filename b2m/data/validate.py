"""Check a study's data before any compute is spent on it: every check of the steps that read the data, for every
subject at once, in seconds: the events, sidecars and captions, the BOLD images' headers (no scan is read), the
mask and atlas, the authors' arrays, and every stimulus excerpt's audio. Each file is opened through its reader's
guard, so a FIFO or device is never opened and an empty, corrupt or other-format file is a problem naming it.

``validate_study`` collects what it found (subjects, runs per task, TRs, grids, stimuli, labels, captions) and every
problem (an ``InputError``: file, problem, fix) instead of stopping at the first, and notes the quirks of the
events files it read through. ``b2m validate`` prints the report; the workflow's first rule runs it and refuses the
DAG on any problem.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from b2m.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class ValidationReport:
    """What a validation found (``lines``), the quirks it accepted and the problems that refuse the study."""

    lines: list[str] = field(default_factory=list)
    quirks: list[str] = field(default_factory=list)
    problems: list[InputError] = field(default_factory=list)

    def check(self, test, *args):
        """Run one check; an ``InputError`` becomes a problem of the report (None is returned then)."""
        try:
            return test(*args)
        except InputError as err:
            if str(err) not in map(str, self.problems):  # a file read by two checks is one problem
                self.problems.append(err)
            return None

    def text(self) -> str:
        parts = ["b2m validate", *[f"  {line}" for line in self.lines]]
        parts += ["accepted quirks:", *[f"  - {quirk}" for quirk in self.quirks]] if self.quirks else []
        if self.problems:
            parts += [f"refused: {len(self.problems)} problem(s)", *[f"  - {err}" for err in self.problems]]
        else:
            parts.append("passed: nothing refused")
        return "\n".join(parts)


def _subject_runs(dataset, subject: str, images: bool, report: ValidationReport):
    """A subject's runs, each read and checked from its events, sidecar and (with ``images``) image header."""
    from b2m.data.responses import _open_bold, check_run_length, check_same_grid

    runs = report.check(dataset.runs, subject)
    if runs is None:
        return [], None
    reference = None
    for run in runs:
        events, tr = report.check(run.read_events), report.check(run.repetition_time)
        if events is None or tr is None or not images:
            continue
        img = report.check(lambda: _open_bold(run.bold))
        if img is None:
            continue
        reference = reference or (img, run.bold)
        report.check(run.check_header_tr, img, run.bold)
        report.check(check_same_grid, img, reference[0], run.bold, reference[1])
        report.check(check_run_length, run, events, img.shape[3], tr, run.bold)
    grid = f"{'×'.join(map(str, reference[0].shape[:3]))} of {reference[0].header.get_zooms()[0]:g} mm" \
        if reference else None
    return runs, grid


def _check_windows(dataset, runs, windows, lag_s: float, report: ValidationReport) -> None:
    """Every window of every run holds a scan (a window longer than a stimulus is named by ``_check_windows_fit``)."""
    from b2m.data.design import stimulus_windows
    from b2m.data.responses import check_windows_hold_scans, window_scan_ranges

    for run in runs:
        kept, tr = report.check(run.analysed, dataset.design), report.check(run.repetition_time)
        for window, stride in windows if kept is not None and tr is not None else []:
            try:
                rows = stimulus_windows(kept, window, stride)
            except ValueError:
                continue
            first, stop = window_scan_ranges(rows, tr, lag_s)
            report.check(check_windows_hold_scans, first, stop, window, run)


def _check_labels(spec, subject: str, reference: Path, report: ValidationReport) -> None:
    from b2m.data.responses import load_label_image

    for what, path in (("mask", spec.mask), ("atlas", spec.atlas)):
        if path and path != "compute":
            report.check(load_label_image, path.replace("{subject}", subject), reference, what)


def _check_stimuli(table: pd.DataFrame, stimuli, report: ValidationReport) -> None:
    """Every stimulus's audio is read and its excerpt cut as the features step will: found, readable, long enough,
    not silent."""
    from b2m.features.audio import excerpt, load_audio, stimulus_path

    found = 0
    for clip in table.itertuples():
        path = report.check(stimulus_path, stimuli, clip.path)
        cut = report.check(lambda file, c: excerpt(*load_audio(file), c.start, c.end, file), path, clip) \
            if path is not None else None
        found += cut is not None
    report.lines.append(f"stimuli: {found} of {len(table)} clips' audio found in {stimuli}")


def _check_captions(table: pd.DataFrame, captions, report: ValidationReport) -> None:
    from b2m.data.captions import LENGTH_SUFFIX, captions_for, mended_ids

    texts = report.check(captions_for, captions, table.clip_id)
    if texts is not None:
        raw = pd.read_csv(captions, encoding="utf-8-sig", dtype=str, keep_default_na=False)["ID"].str.strip()
        ids = {given: LENGTH_SUFFIX.sub("", given) for given in raw}  # as the file writes it → as read
        mended = mended_ids(ids.values(), table.clip_id)
        report.quirks += [f"caption ID {given!r} read as {mended[read]}" for given, read in ids.items()
                          if read in mended]
        report.lines.append(f"captions: {len(texts)} of {len(table)} clips captioned ({captions})")


def _check_folds(dataset, table: pd.DataFrame, folds, spec_subjects, report: ValidationReport) -> None:
    """Each fold of the config can be cut from the design without a leak: leave-run-out only where runs share no
    stimulus, enough training stimuli for the cv folds, a held-out label value with training stimuli."""
    from b2m.data.design import check_cv_scheme, run_folds, stimulus_folds
    from b2m.errors import ConfigError

    design, where = dataset.design, dataset.root
    cv = [f for f in folds if f.startswith("cv-")]
    if cv:
        report.check(check_cv_scheme, design, report.check(dataset.runs_share_stimuli) or False, where)
        try:
            if design.cv == "stimulus":
                stimulus_folds(table, design.outer_folds)
            else:
                for subject in spec_subjects:
                    run_folds([run.index for run in dataset.runs(subject) if run.split == "train"], design.outer_folds)
        except (ConfigError, InputError) as err:
            report.problems.append(InputError(where, str(err), "lower outer_folds or leave the cv folds out"))
    if "test" in folds and not (table.split == "test").any():
        report.problems.append(InputError(where, "fold test: the design declares no test set (design.test names no "
                                          "run)", "name the test runs in `design.test`, or use cv-<k> folds"))
    for fold in folds:
        column = next((c for c in dataset.design.labels if fold.startswith(f"{c}-")), None)
        if column and fold[len(column) + 1:] not in set(table.loc[table.split == "train", column]):
            report.problems.append(InputError(where, f"fold {fold}: no training stimulus with {column} = "
                                              f"{fold[len(column) + 1:]} to test on", f"leave {fold} out of `folds`"))
        elif fold != "test" and not fold.startswith("cv-") and not column:
            report.problems.append(InputError(where, f"fold {fold} is neither test, cv-<k> nor <label>-<value> of a "
                                              f"label of design.labels {list(dataset.design.labels)}",
                                              "name folds as test, cv-<k> or <label column>-<value>"))


def _check_windows_fit(dataset, table: pd.DataFrame, windows, report: ValidationReport) -> None:
    """Every feature space's window fits inside the shortest stimulus (else that stimulus has no window)."""
    from b2m.data.design import WINDOW_SLACK_S

    shortest = table.loc[(table.end - table.start).idxmin()]
    seconds = float(shortest.end - shortest.start)
    for window in sorted({w for w, _ in windows if w > seconds + WINDOW_SLACK_S}):
        report.problems.append(InputError(dataset.root, f"a window of {window:g} s is longer than stimulus "
                                          f"{shortest.clip_id} ({seconds:g} s), which would have no window",
                                          "make each feature's window_s at most the shortest stimulus's duration"))


def _check_labels_vary(dataset, table: pd.DataFrame, report: ValidationReport) -> None:
    """A label that takes one value labels nothing (its one-hot space is constant, its class agreement trivial)."""
    for column in dataset.design.labels:
        if table[column].nunique() < 2:
            report.problems.append(InputError(dataset.root, f"label '{column}' has one value "
                                              f"({table[column].iloc[0]!r}) over every stimulus",
                                              "name another column in `design.labels`, or leave it out"))


def _check_authors_arrays(folder, subject: str, runs, report: ValidationReport) -> None:
    """The subject's arrays as the authors-arrays step reads them: shapes, voxels, a usable voxel in every run."""
    from b2m.data.authors import ARRAY_NAMES, load_authors_arrays

    paths = [Path(folder) / ARRAY_NAMES[split].format(subject=subject) for split in ("train", "test")]
    arrays = report.check(load_authors_arrays, *paths, runs)
    if arrays is not None and arrays.unusable.any():
        report.lines.append(f"{subject}: {arrays.unusable.sum()} of {len(arrays.unusable)} voxels of the authors' "
                            "arrays are constant or non-finite in a run: dropped")


def validate_study(dataset, spec, lag_s: float, images: bool = True) -> ValidationReport:
    """Every check of the study named by ``dataset`` (a ``BidsDataset``) and ``spec`` (``ValidationOptions``):
    tables, the BOLD images' headers, the mask and atlas, the authors' arrays and each stimulus excerpt's audio;
    ``images`` False skips the BOLD images (metadata only)."""
    from b2m.inputs import INPUT_KINDS

    report = ValidationReport()
    report.quirks += _event_quirks(dataset, spec.subjects, report)
    reads_images = images and INPUT_KINDS[spec.input].reads_images
    for subject in spec.subjects:
        _check_subject(dataset, spec, subject, lag_s, images, reads_images, report)
    if not images:
        report.lines.append("BOLD images, mask, atlas and authors' arrays: not checked (metadata only)")
    table = report.check(dataset.stimulus_table)
    if table is not None:
        _check_stimulus_table(dataset, spec, table, images, report)
    report.lines.append(f"analysed: {len(spec.subjects)} subjects × folds {list(spec.folds)} × windows "
                        f"{[f'{w:g}/{s:g} s' for w, s in spec.windows]}, input {spec.input}")
    return report


def _check_subject(dataset, spec, subject: str, lag_s: float, images: bool, reads_images: bool,
                   report: ValidationReport) -> None:
    """One subject's runs: their TRs (one), the mask and atlas on its grid, the authors' arrays, the windows."""
    runs, grid = _subject_runs(dataset, subject, reads_images, report)
    tasks = pd.Series([r.task for r in runs]).value_counts().to_dict()
    trs = sorted({tr for r in runs if (tr := report.check(r.repetition_time)) is not None})
    report.lines.append(f"{subject}: runs {tasks or 'none'}, TR {trs} s" + (f", grid {grid}" if grid else ""))
    if len(trs) > 1:
        report.problems.append(InputError(runs[0].sidecar, f"{subject}'s runs are on different TRs {trs} s: their "
                                          "scans are not comparable samples of one model",
                                          "analyse the runs of one TR (`design.tasks`), or resample them"))
    if runs and reads_images:
        bold = report.check(lambda: runs[0].bold)
        if bold is not None:
            _check_labels(spec, subject, bold, report)
    if runs and images and spec.authors_arrays:
        _check_authors_arrays(spec.authors_arrays, subject, runs, report)
    _check_windows(dataset, runs, spec.windows, lag_s, report)


def _check_stimulus_table(dataset, spec, table: pd.DataFrame, images: bool, report: ValidationReport) -> None:
    """The stimulus table's checks: labels that vary, windows that fit, folds that hold stimuli, the audio (with
    ``images``) and the captions."""
    counts = table.split.value_counts().to_dict()
    seconds = (table.end - table.start)
    report.lines.append(f"stimuli: {counts.get('train', 0)} training, {counts.get('test', 0)} test, "
                        f"{seconds.min():g}-{seconds.max():g} s" + "".join(
                            f", {c} {sorted(table[c].unique())[:12]}" for c in dataset.design.labels))
    _check_labels_vary(dataset, table, report)
    _check_windows_fit(dataset, table, spec.windows, report)
    _check_folds(dataset, table, spec.folds, spec.subjects, report)
    if images and dataset.design.has_stimuli:
        _check_stimuli(table, spec.stimuli, report)
    elif dataset.design.has_stimuli:
        report.lines.append("stimulus audio: not checked (metadata only)")
    else:
        report.lines.append("stimuli: the design names none (each event is its own, known by its labels): "
                            "label spaces only, no identification of stimuli")
    if spec.captions:
        _check_captions(table, spec.captions, report)


def _event_quirks(dataset, subjects, report: ValidationReport) -> list[str]:
    """The quirks of events files b2m reads through: CRLF lines, values in quotes, values with one quote; each
    kind once, with its first example."""
    from b2m.data.events import QUOTES, events_text

    quirks = {}
    for subject in subjects:
        for path in report.check(dataset.events_files, subject) or []:
            text = report.check(events_text, path) or ""
            if "\r\n" in text:
                quirks.setdefault("crlf", "events files with CRLF line endings")
            values = [value.strip() for line in text.splitlines()[1:] for value in line.split("\t")]
            quoted = [v for v in values if v[:1] in QUOTES and v]
            half = [v for v in values if v[-1:] in QUOTES and v[:1] not in QUOTES and v]
            if quoted:
                quirks.setdefault("quoted", f"values in quotes ({quoted[0]}), read without them")
            if half:
                quirks.setdefault("half", f"values with only the closing quote ({half[0]}, in {path.name}), read "
                                  "without it")
    return sorted(quirks.values())
