"""Check a study's data before any compute is spent on it: every check of the steps that read the data, for every
subject at once, in seconds: the events, sidecars and captions, the BOLD images' headers (no scan is read), the
mask and atlas, the authors' arrays, and every stimulus excerpt's audio. Each file is opened through its reader's
guard, so a FIFO or device is never opened and an empty, corrupt or other-format file is a problem naming it.

``validate_study`` collects what it found (subjects, runs per task, TRs, grids, clips, stimuli, captions) and every
problem (an ``InputError``: file, problem, fix) instead of stopping at the first, and notes the known quirks of
ds003720 it accepted. ``b2m validate`` prints the report; the workflow's first rule runs it and refuses the DAG on
any problem.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from b2m import GTZAN_GENRES
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
    report.check(dataset.check_same_stimuli, subject)
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


def _check_windows(runs, windows, lag_s: float, report: ValidationReport) -> None:
    from b2m.data.events import stimulus_windows
    from b2m.data.responses import check_windows_hold_scans, window_scan_ranges

    for run in runs:
        events, tr = report.check(run.read_events), report.check(run.repetition_time)
        for window, stride in windows if events is not None and tr is not None else []:
            first, stop = window_scan_ranges(stimulus_windows(events, window, stride), tr, lag_s)
            report.check(check_windows_hold_scans, first, stop, window, run)


def _check_labels(spec, subject: str, reference: Path, report: ValidationReport) -> None:
    from b2m.data.responses import load_label_image

    for what, path in (("mask", spec.mask), ("atlas", spec.atlas)):
        if path and path != "compute":
            report.check(load_label_image, path.replace("{subject}", subject), reference, what)


def _check_stimuli(table: pd.DataFrame, stimuli, report: ValidationReport) -> None:
    """Every clip's audio is read and its excerpt cut as the features step will: found, readable, long enough,
    not silent."""
    from b2m.features.audio import clip_path, excerpt, load_audio

    found = 0
    for clip in table.itertuples():
        path = report.check(clip_path, stimuli, clip.clip_id)
        cut = report.check(lambda file, c: excerpt(*load_audio(file), c.start, c.end, file), path, clip) \
            if path is not None else None
        found += cut is not None
    report.lines.append(f"stimuli: {found} of {len(table)} clips' audio found in {stimuli}")


def _check_captions(table: pd.DataFrame, captions, report: ValidationReport) -> None:
    from b2m.data.captions import captions_for, read_captions

    texts = report.check(captions_for, captions, table.clip_id)
    if texts is not None:
        raw = pd.read_csv(captions, encoding="utf-8-sig", dtype=str, keep_default_na=False)["ID"].str.strip()
        report.quirks += [f"caption ID {given!r} read as {clip}" for given, clip in
                          zip(raw, read_captions(captions).clip_id) if given.removesuffix("_15s") != clip]
        report.lines.append(f"captions: {len(texts)} of {len(table)} clips captioned ({captions})")


def _check_folds(table: pd.DataFrame, folds, report: ValidationReport, where: Path) -> None:
    trained = set(table.genre[table.split == "train"])
    for fold in folds:
        if fold.startswith("genre-") and fold[6:] not in trained:
            report.problems.append(InputError(where, f"fold {fold}: no training clip of genre {fold[6:]} to test on",
                                              f"leave {fold} out of `folds`"))


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
    report = ValidationReport()
    report.quirks += _event_quirks(dataset, spec.subjects, report)
    reads_images = images and spec.input != "authors-arrays"
    for subject in spec.subjects:
        runs, grid = _subject_runs(dataset, subject, reads_images, report)
        tasks = pd.Series([r.task for r in runs]).value_counts().to_dict()
        trs = sorted({tr for r in runs if (tr := report.check(r.repetition_time)) is not None})
        report.lines.append(f"{subject}: runs {tasks or 'none'}, TR {trs} s" + (f", grid {grid}" if grid else ""))
        if runs and reads_images:
            bold = report.check(lambda: runs[0].bold)
            if bold is not None:
                _check_labels(spec, subject, bold, report)
        if runs and images and spec.input == "authors-arrays":
            _check_authors_arrays(spec.authors_arrays, subject, runs, report)
        _check_windows(runs, spec.windows, lag_s, report)
    if not images:
        report.lines.append("BOLD images, mask, atlas and authors' arrays: not checked (metadata only)")
    table = report.check(dataset.stimulus_table)
    if table is not None:
        counts = table.split.value_counts().to_dict()
        report.lines.append(f"clips: {counts.get('train', 0)} training, {counts.get('test', 0)} test, "
                            f"{table.genre.nunique()} of {len(GTZAN_GENRES)} genres")
        _check_folds(table, spec.folds, report, dataset.root)
        report.quirks += [f"{c.clip_id}: a {c.end - c.start:.2f} s excerpt ({c.start:g}-{c.end:g} s), windowed on the "
                          "15 s grid of the others" for c in table.itertuples() if abs(c.end - c.start - 15) > 1e-6]
        report.quirks += [f"{c.clip_id}: the excerpt {c.start:g}-{c.end:g} s ends in the last 0.1 s of a 30 s GTZAN "
                          "clip" for c in table.itertuples() if c.end > 29.9]
        if images:
            _check_stimuli(table, spec.stimuli, report)
        else:
            report.lines.append("stimulus audio: not checked (metadata only)")
        if spec.captions:
            _check_captions(table, spec.captions, report)
    report.lines.append(f"analysed: {len(spec.subjects)} subjects × folds {list(spec.folds)} × windows "
                        f"{[f'{w:g}/{s:g} s' for w, s in spec.windows]}, input {spec.input}")
    return report


def _event_quirks(dataset, subjects, report: ValidationReport) -> list[str]:
    """The ds003720 events quirks b2m reads through: CRLF lines, quoted genres, genres with one quote."""
    from b2m.data.events import events_text

    quirks = set()
    for subject in subjects:
        func = dataset.root / subject / "func"
        for path in sorted(func.glob("*_events.tsv")) if func.is_dir() else []:
            text = report.check(events_text, path) or ""
            if "\r\n" in text:
                quirks.add("events files with CRLF line endings")
            genres = [line.split("\t")[2] for line in text.splitlines()[1:] if line.count("\t") >= 5]
            if any(g.startswith("'") for g in genres):
                quirks.add("genres in single quotes ('disco')")
            half = [g for g in genres if g.endswith("'") and not g.startswith("'")]
            if half:
                quirks.add(f"genres with only the closing quote ({half[0]}, in {path.name.split('_', 1)[1]})")
    return sorted(quirks)
