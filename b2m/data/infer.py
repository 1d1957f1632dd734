"""A study's config inferred from its BIDS folder (``b2m init-config``): each decision with what was found and why.

``infer_study`` reads every run's events and sidecars (no image) and decides, in order:

- the stimulus: the column or template given, else BIDS ``stim_file``, else the first text column whose values
  name files in the stimulus folder; none makes a labels-only design (each event a stimulus of its own). Two
  numeric columns whose difference is every named event's duration are the excerpt's start and end in its file.
- the labels: those given, else the text columns of 2..``MAX_LABEL_VALUES`` values that are constant per stimulus.
- the events left out: values of the stimulus or a label column that name no stimulus (``NON_STIMULUS_WORDS``).
- the folds: a task whose name holds "test" is the declared test set; cv-<k> folds hold out runs where runs share
  no stimulus, else stimuli; ``MAX_OUTER_FOLDS`` at most.
- the feature spaces the design allows: the offline acoustic one where events name their audio, one one-hot space
  per label, and reconstruction (retrieval from the study's own stimuli) where there is audio.

``render_config`` writes the result as a commented YAML config; every ``Setting`` carries its comment.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from b2m.data.bids import STIMULI_FOLDER, BidsDataset
from b2m.data.design import runs_share_stimuli
from b2m.errors import InputError
from b2m.layout import Layout
from b2m.models.decoders import DECODERS
from b2m.options import DEFAULT_DECODING_MODELS, CleaningOptions, DesignOptions, WindowOptions

# Words of event values that name no stimulus (a response, a cue, rest): such events are left out (design.drop).
# A value is one where it is "n/a" or one of its words (split at anything but letters and digits) is in the list.
NON_STIMULUS_WORDS = ("response", "button", "press", "catch", "rest", "fixation", "baseline", "instruction", "cue",
                      "tone", "tones", "silence")
MISSING = "n/a"
BIDS_STIMULUS_COLUMN = "stim_file"
BIDS_LABEL_COLUMN = "trial_type"   # BIDS's condition column: the first label candidate where it is one
MAX_LABEL_VALUES = 20              # a label column has 2..20 values
EXCERPT_TOLERANCE_S = 0.01         # end - start must equal the event's duration within this
MAX_OUTER_FOLDS = 4
MIN_WINDOW_S = 1.5                 # the paper's window; at least the largest TR, so every window holds a scan
SEGMENT_S = 15.0                   # segments identified by their time courses in stimuli at least twice as long
PERMUTATIONS = 1000                # encoding's permutation null: the smallest p is 1/1001
PERMUTATION_BLOCK_S = 30.0         # blocks of stimuli at least twice as long, exchanged by the permutation null
RECONSTRUCTION_CHUNKS = 2          # the study's own stimuli are a small corpus
INIT_FIX = "give the stimulus (--stimulus-column or --stimulus-template) or the label columns (--labels)"


@dataclass(frozen=True)
class Survey:
    """What a BIDS folder holds: its subjects, sessions and tasks, each run's TR (s, from its sidecars by
    inheritance) and length (s, the end of its last event), and every run's events (``events``: one table, with
    ``subject``, ``task``, ``run_file``)."""

    root: Path
    subjects: tuple[str, ...]
    sessions: tuple[str, ...]
    tasks: tuple[str, ...]
    runs: pd.DataFrame          # one row per run: subject, task, run_file, tr, seconds, sidecars
    events: pd.DataFrame
    columns: tuple[str, ...]    # the events columns every run has, besides onset and duration


@dataclass(frozen=True)
class StimulusChoice:
    """Which events column (or template) names each event's stimulus file, the excerpt columns, and why."""

    column: str | None
    template: str | None
    why: str
    start: str | None = None
    end: str | None = None
    excerpt_why: str = ""
    files_found: int = 0
    files_named: int = 0


@dataclass(frozen=True)
class LabelChoice:
    """The label columns chosen among the candidates, the events left out (column → values), and why."""

    labels: tuple[str, ...]
    candidates: tuple[str, ...]
    why: str
    drop: dict = field(default_factory=dict)
    drop_why: str = ""


@dataclass(frozen=True)
class FoldChoice:
    """The declared test set, the cv scheme and its k, the outer folds, and why."""

    test: dict | None
    test_why: str
    cv: str
    cv_why: str
    outer_folds: int
    outer_why: str
    folds: tuple[str, ...]
    folds_why: str


@dataclass(frozen=True)
class Setting:
    """One key of the config with the comment written above it: a value, or (``children``) a section of keys. A
    setting without a key is a comment alone (a choice not made, said why)."""

    key: str | None
    comment: str
    value: object = None
    children: tuple["Setting", ...] = ()

    def as_config(self) -> dict:
        """The section's keys as the config dict they are written as."""
        return {child.key: child.as_config() if child.children else child.value
                for child in self.children if child.key is not None}


@dataclass(frozen=True)
class InferredStudy:
    """Every decision of ``b2m init-config`` and the commented config they make (``settings``)."""

    survey: Survey
    stimulus: StimulusChoice
    labels: LabelChoice
    design: DesignOptions
    folds: FoldChoice
    settings: Setting

    @property
    def config(self) -> dict:
        return self.settings.as_config()


# ---------------------------------------------------------------- the folder


def survey_folder(root) -> Survey:
    """Every subject's runs of every task, with their TRs and events (``InputError`` for a bad file)."""
    dataset = BidsDataset(root)
    subjects = dataset.subjects()
    if not subjects:
        raise InputError(dataset.root, "no sub-*/func or sub-*/ses-*/func folder: not a BIDS folder of fMRI runs",
                         "give the study's BIDS folder (the one holding dataset_description.json and sub-*)")
    runs, tables = [], []
    for subject in subjects:
        for run in dataset.runs(subject):
            events = run.read_events()
            runs.append({"subject": subject, "task": run.task, "run_file": run.events.name,
                         "session": dict(run.entities).get("ses", ""), "tr": run.repetition_time(),
                         "seconds": float((events.onset + events.duration).max()),
                         "sidecars": tuple(p.name for p in run.sidecars)})
            tables.append(events.assign(subject=subject, task=run.task, run_file=run.events.name))
    common = set.intersection(*(set(t.columns) for t in tables)) - {"onset", "duration", "subject", "task",
                                                                    "run_file"}
    columns = tuple(c for c in tables[0].columns if c in common)
    runs = pd.DataFrame(runs)
    return Survey(dataset.root, tuple(subjects), tuple(sorted(set(runs.session) - {""})),
                  tuple(dict.fromkeys(runs.task)), runs, pd.concat(tables, ignore_index=True), columns)


def names_no_stimulus(value: str) -> bool:
    """Whether an event value names a non-stimulus event (``NON_STIMULUS_WORDS``, or n/a)."""
    words = re.split(r"[^a-z0-9]+", str(value).lower())
    return str(value).lower() == MISSING or any(word in NON_STIMULUS_WORDS for word in words)


def is_numeric(values: pd.Series) -> bool:
    """Whether every value (n/a aside) is a number."""
    values = values.astype(str)
    given = values[values.str.lower() != MISSING]
    return len(given) > 0 and pd.to_numeric(given, errors="coerce").notna().all()


def text_columns(survey: Survey) -> list[str]:
    return [c for c in survey.columns if not is_numeric(survey.events[c])]


def _non_stimulus_values(values: pd.Series) -> list[str]:
    return sorted(v for v in values.unique() if names_no_stimulus(v))


# ---------------------------------------------------------------- the stimulus


def _resolving(values, stimuli) -> int:
    """How many of ``values`` name an audio file in ``stimuli`` (``b2m.features.audio.stimulus_path``)."""
    from b2m.features.audio import stimulus_path

    found = 0
    for value in values:
        try:
            stimulus_path(stimuli, value)
            found += 1
        except InputError:
            pass
    return found


def choose_stimulus(survey: Survey, stimuli, column: str | None = None, template: str | None = None) -> StimulusChoice:
    """The stimulus column or template: the one given, else ``stim_file``, else the first text column whose every
    value (non-stimulus values aside) names a file in ``stimuli``; none: a labels-only design."""
    if column and column not in survey.columns:
        raise InputError(survey.root, f"--stimulus-column {column}: not a column of every events file (they have "
                         f"{list(survey.columns)})", "name a column of the events files")
    if template:
        why = f"the template given (--stimulus-template {template})"
        return StimulusChoice(None, template, why)
    if column:
        return _with_files(StimulusChoice(column, None, f"the column given (--stimulus-column {column})"),
                           survey, stimuli)
    if BIDS_STIMULUS_COLUMN in survey.columns:
        return _with_files(StimulusChoice(BIDS_STIMULUS_COLUMN, None, "the events have BIDS's stim_file column"),
                           survey, stimuli)
    for name in text_columns(survey):
        values = [v for v in survey.events[name].unique() if not names_no_stimulus(v)]
        if values and _resolving(values, stimuli) == len(values):
            why = f"'{name}' is the first text column whose values all name files in {stimuli}"
            return _with_files(StimulusChoice(name, None, why), survey, stimuli)
    why = (f"no events column names a file in {stimuli} (text columns: {text_columns(survey)}) and none is "
           "stim_file: a labels-only design, each analysed event a stimulus of its own known by its labels")
    return StimulusChoice(None, None, why)


def _with_files(choice: StimulusChoice, survey: Survey, stimuli) -> StimulusChoice:
    """``choice`` with how many of the files its column names are in ``stimuli``."""
    values = [v for v in survey.events[choice.column].unique() if not names_no_stimulus(v)]
    return dataclasses.replace(choice, files_found=_resolving(values, stimuli), files_named=len(values))


def named_events(survey: Survey, design: DesignOptions) -> pd.DataFrame:
    """The events of every run that ``design.drop`` leaves in (those naming a stimulus), as the files have them."""
    events = survey.events
    for column, values in (design.drop or {}).items():
        events = events[~events[column].isin(values)]
    return events


def excerpt_columns(presentations: pd.DataFrame, columns) -> tuple[str | None, str | None, str]:
    """The numeric columns a, b with b - a the duration (± ``EXCERPT_TOLERANCE_S``) of every event of
    ``presentations`` (events as the files have them): the excerpt's start and end in its file; (None, None)
    where no pair is."""
    numeric = [c for c in columns if is_numeric(presentations[c])]
    for a in numeric:
        for b in numeric:
            if a == b:
                continue
            length = pd.to_numeric(presentations[b], errors="coerce") - pd.to_numeric(presentations[a],
                                                                                       errors="coerce")
            if ((length - presentations.duration).abs() <= EXCERPT_TOLERANCE_S + 1e-9).all():  # 14.99 s is 15 s
                return a, b, (f"{b} - {a} equals the event's duration (±{EXCERPT_TOLERANCE_S:g} s) on all "
                              f"{len(presentations)} events naming a stimulus: each plays the excerpt {a}..{b} s "
                              "of its file")
    return None, None, (f"no two numeric columns ({numeric}) differ by the events' durations: each event plays "
                        "its file from 0 s for the event's duration")


# ---------------------------------------------------------------- the labels and the events left out


def _stimulus_drop(survey: Survey, stimulus: StimulusChoice) -> dict:
    if not stimulus.column:
        return {}
    values = _non_stimulus_values(survey.events[stimulus.column])
    return {stimulus.column: values} if values else {}


def label_candidates(presentations: pd.DataFrame, columns, stimulus: StimulusChoice) -> list[str]:
    """Text columns (not the stimulus's) with 2..``MAX_LABEL_VALUES`` values besides the non-stimulus ones, each
    constant per stimulus; BIDS's trial_type first."""
    found = []
    for column in columns:
        values = presentations[column]
        named = values[~values.map(names_no_stimulus)]
        if column == stimulus.column or is_numeric(values) or not 2 <= named.nunique() <= MAX_LABEL_VALUES:
            continue
        if (presentations.loc[named.index].groupby("clip_id")[column].nunique() <= 1).all():
            found.append(column)
    return sorted(found, key=lambda c: c != BIDS_LABEL_COLUMN)


def choose_labels(survey: Survey, presentations: pd.DataFrame, stimulus: StimulusChoice,
                  given: tuple[str, ...] = ()) -> LabelChoice:
    """The labels given, else every candidate (``label_candidates``); and the events left out: the non-stimulus
    values of the stimulus column and of the labels."""
    missing = [c for c in given if c not in survey.columns]
    if missing:
        raise InputError(survey.root, f"--labels {missing}: not columns of every events file (they have "
                         f"{list(survey.columns)})", "name columns of the events files")
    candidates = tuple(label_candidates(presentations, survey.columns, stimulus))
    if given:
        labels, why = tuple(given), f"the labels given (--labels {' '.join(given)})"
    elif stimulus.column or stimulus.template:
        labels, why = candidates, "every candidate" if candidates else "none"
    else:
        labels, why = candidates[:1], "the column the events vary in"
    if not labels and not (stimulus.column or stimulus.template):
        raise InputError(survey.root, f"the events name no stimulus and no column labels them (text columns: "
                         f"{text_columns(survey)})", INIT_FIX)
    why = (f"candidates (text columns of 2-{MAX_LABEL_VALUES} values, constant per stimulus, not the stimulus's): "
           f"{list(candidates) or 'none'}; chosen: {why}")
    drop = _stimulus_drop(survey, stimulus)
    for column in labels:
        values = _non_stimulus_values(survey.events[column])
        if values:
            drop[column] = values
    drop_why = ("values naming no stimulus (a response, cue, rest, tones, n/a, ...): "
                + "; ".join(f"{c} {v}" for c, v in drop.items()) + " are left out") if drop else (
        "no value of the stimulus or label columns names a non-stimulus event (response, cue, rest, tones, n/a, "
        "...): every event is analysed")
    return LabelChoice(labels, candidates, why, drop, drop_why)


# ---------------------------------------------------------------- the folds


def choose_test(survey: Survey) -> tuple[dict | None, str]:
    """The declared test set: the runs of a task whose name holds "test" (where other tasks train)."""
    named = [task for task in survey.tasks if "test" in task.lower()]
    if named and len(named) < len(survey.tasks):
        runs = int((survey.runs.task == named[0]).sum())
        return {"task": named[0]}, (f"task {named[0]}'s name holds 'test': its {runs} runs are the declared test set"
                                    f" (the other tasks' runs train)" + (f"; tasks {named[1:]} also hold 'test' and "
                                                                         "train" if named[1:] else ""))
    return None, (f"no task name holds 'test' (tasks {list(survey.tasks)}): no declared test set, so no `test` "
                  "fold; the cv-<k> folds hold data out")


def _lead_in_hint(presentations: pd.DataFrame) -> str:
    """Where runs share stimuli only through each run's first event (a lead-in, as in ds003720), the hint to set
    ``design.lead_in``."""
    first = presentations.groupby(["subject", "run"])["event"].transform("min") == presentations.event
    rest = presentations[~first]
    if any(runs_share_stimuli(group) for _, group in rest.groupby("subject")):
        return ""
    return (" They share them only through each run's first event: if that event is a lead-in that is not analysed "
            "(e.g. a repeat of the previous run's last stimulus), set design.lead_in: 1 and cv: run.")


def choose_folds(dataset: BidsDataset, test: dict | None, test_why: str) -> FoldChoice:
    """cv ``run`` where no subject hears a stimulus in two runs, else ``stimulus``; k = min(4, the fewest training
    runs of a subject, or the training stimuli); the folds: ``test`` where declared, else cv-1..cv-k."""
    presentations = dataset.presentations
    table = dataset.stimulus_table()
    if dataset.runs_share_stimuli():
        shared = int((presentations.groupby(["subject", "clip_id"])["run"].nunique() > 1).groupby(
            "clip_id").any().sum())
        cv = "stimulus"
        cv_why = (f"runs share stimuli ({shared} stimuli are heard in more than one run of a subject): a left-out run's"
                  " stimuli would be trained on, so cv-<k> folds hold out groups of stimuli" + (
                      f" (stratified by {dataset.design.labels[0]})." if dataset.design.labels else ".")
                  + _lead_in_hint(presentations))
        units, what = int((table.split == "train").sum()), "training stimuli"
    else:
        cv = "run"
        cv_why = ("no subject hears a stimulus in two runs: cv-<k> folds hold out groups of training runs (a run's "
                  "scans stay together)")
        units = min(sum(run.split == "train" for run in dataset.runs(s)) for s in dataset.subjects())
        what = "training runs (the fewest of a subject)"
    if units < 2:
        raise InputError(dataset.root, f"{units} {what}: too few to hold any out", INIT_FIX)
    k = min(MAX_OUTER_FOLDS, units)
    outer_why = f"min({MAX_OUTER_FOLDS}, {units} {what})"
    cv_folds = tuple(f"cv-{n}" for n in range(1, k + 1))
    label = dataset.design.labels[0] if dataset.design.labels else None
    how = (f" To train without one value of a label and test on it, add <label>-<value> folds (e.g. "
           f"{label}-{sorted(table[label])[0]}); none is added by default." if label else
           " No label, so no <label>-<value> folds.")
    if test:
        folds, folds_why = ("test",), ("the declared test set only: it is the study's own held-out evaluation; add "
                                       f"{', '.join(cv_folds)} to also score every training stimulus out of fold "
                                       f"({k} more fits of every model)." + how)
    else:
        folds, folds_why = cv_folds, "no declared test set: every training stimulus is scored out of fold." + how
    return FoldChoice(test, test_why, cv, cv_why, k, outer_why, folds, folds_why)


def repeats_text(presentations: pd.DataFrame) -> str:
    """How often each stimulus is presented to a subject, per split: ``1× (468), 2× (12)``."""
    counts = presentations.groupby(["split", "subject", "clip_id"]).size().groupby(["split", "clip_id"]).max()
    parts = []
    for split in ("train", "test"):
        if split in counts.index.get_level_values("split"):
            tally = counts[split].value_counts().sort_index()
            parts.append(f"{split}: " + ", ".join(f"{times}× ({n} stimuli)" for times, n in tally.items()))
    return "; ".join(parts)


# ---------------------------------------------------------------- the whole study


def _provisional_design(survey: Survey, stimulus: StimulusChoice) -> DesignOptions:
    """The stimulus alone, with every non-stimulus value of every text column left out: the presentations the
    excerpt columns and the label candidates are found among."""
    drop = {c: _non_stimulus_values(survey.events[c]) for c in text_columns(survey)}
    return DesignOptions(stimulus_column=stimulus.column, stimulus_template=stimulus.template,
                         drop={c: v for c, v in drop.items() if v} or None)


def infer_study(root, stimuli=None, stimulus_column: str | None = None, stimulus_template: str | None = None,
                labels: tuple[str, ...] = (), results: str | None = None) -> InferredStudy:
    """Every decision of ``b2m init-config`` on the BIDS folder ``root`` (``stimuli``: the folder stimulus names
    are relative to, default ``<root>/stimuli``; ``results``: default ``results-<folder name>``)."""
    survey = survey_folder(root)
    stimuli = str(stimuli or Path(str(root)) / STIMULI_FOLDER)
    stimulus = choose_stimulus(survey, stimuli, stimulus_column, stimulus_template)
    first = _provisional_design(survey, stimulus)
    provisional = BidsDataset(root, first).presentations
    if stimulus.column or stimulus.template:
        start, end, why = excerpt_columns(named_events(survey, first), survey.columns)
        stimulus = dataclasses.replace(stimulus, start=start, end=end, excerpt_why=why)
    chosen = choose_labels(survey, provisional, stimulus, tuple(labels))
    test, test_why = choose_test(survey)
    design = DesignOptions(tasks=survey.tasks, stimulus_column=stimulus.column, stimulus_template=stimulus.template,
                           excerpt_start=stimulus.start, excerpt_end=stimulus.end, labels=chosen.labels,
                           drop=chosen.drop or None, test=test)
    dataset = BidsDataset(root, design)
    folds = choose_folds(dataset, test, test_why)
    design = dataclasses.replace(design, cv=folds.cv, outer_folds=folds.outer_folds)
    results = Setting("results", "every output goes here (--results)", results) if results else Setting(
        "results", "every output goes here (default: results-<folder name>)", f"results-{survey.root.resolve().name}")
    settings = study_settings(survey, stimulus, chosen, design, folds, dataset, stimuli, results, str(root))
    return InferredStudy(survey, stimulus, chosen, design, folds, settings)


def _trs_text(survey: Survey) -> str:
    per_task = survey.runs.groupby("task", sort=False)["tr"]
    sidecars = sorted({name for chain in survey.runs.sidecars for name in chain if not name.startswith("sub-")})
    inherited = f" (inherited from {', '.join(sidecars)} and any run's own)" if sidecars else " (each run's own)"
    return "TR from every run's sidecars by BIDS inheritance" + inherited + ": " + "; ".join(
        f"task {task} {', '.join(f'{tr:g}' for tr in sorted(trs.unique()))} s ({len(trs)} runs)"
        for task, trs in per_task)


def label_feature_name(column: str) -> str:
    """A feature space's name for the one-hot space of ``column`` (lower case letters, digits and dashes)."""
    name = re.sub(r"[^a-z0-9]+", "-", column.lower()).strip("-")
    return name if name and name != "acoustic" else f"labels-{name}"


def study_settings(survey: Survey, stimulus: StimulusChoice, labels: LabelChoice, design: DesignOptions,
                   folds: FoldChoice, dataset: BidsDataset, stimuli: str, results: Setting, root: str) -> Setting:
    """The commented config of the decisions."""
    audio = bool(stimulus.column or stimulus.template)
    header = (f"b2m config of the BIDS study {survey.root.name}, written by `b2m init-config` from what the folder "
              f"holds: {len(survey.subjects)} subjects, tasks {list(survey.tasks)}, {len(survey.runs)} runs. Each "
              "choice says what was found and why; check them, then `b2m validate --config <this file>` and "
              "`snakemake --configfile <this file>`.")
    sections = [
        results,
        dataset_setting(survey, stimulus, stimuli, root, audio),
        Setting("subjects", f"every subject with functional runs ({len(survey.subjects)})" + (
            f", sessions {list(survey.sessions)} (each run found in its session's folder)" if survey.sessions
            else ", no sessions"), list(survey.subjects)),
        design_setting(survey, stimulus, labels, design, folds, dataset),
        Setting("outer_folds", f"k of the cv-<k> folds: {folds.outer_why}", folds.outer_folds),
        Setting("folds", folds.folds_why, list(folds.folds)),
        responses_setting(survey),
        *model_settings(survey, labels, audio, float(stimulus_durations(dataset).min())),
    ]
    if audio:
        sections.append(reconstruction_setting(folds, stimuli, results.value, survey.subjects[0]))
    return Setting(None, header, children=tuple(sections))


def dataset_setting(survey: Survey, stimulus: StimulusChoice, stimuli: str, root: str, audio: bool) -> Setting:
    trs = sorted(set(survey.runs.tr))
    found = (f"{stimulus.files_found} of the {stimulus.files_named} files the events name are there" if
             stimulus.column else "the template's files are not looked for here")
    found += "; `b2m validate` without --metadata-only reads every stimulus's audio" + (
        " (put the audio there before running)" if stimulus.column and stimulus.files_found < stimulus.files_named
        else "")
    children = [
        Setting("input", "raw BOLD of the BIDS folder (fmriprep: fMRIPrep's preprocessed BOLD, with "
                "dataset.fmriprep.root)", "bids"),
        Setting("bids_root", "the folder this config was inferred from", root),
        Setting("stimuli", f"the folder the stimulus names are relative to: {found}" if audio else
                "the design names no stimulus file (labels only): nothing is read here", stimuli),
    ]
    if len(trs) == 1:
        children.append(Setting("repetition_time", _trs_text(survey) + "; every run must keep it", trs[0]))
    else:
        children.append(Setting(None, _trs_text(survey) + ": runs differ, so no single dataset.repetition_time "
                                "(b2m validate refuses a subject whose runs differ: analyse one TR's tasks)"))
    return Setting("dataset", "the study's files", children=tuple(children))


def design_setting(survey: Survey, stimulus: StimulusChoice, labels: LabelChoice, design: DesignOptions,
                   folds: FoldChoice, dataset: BidsDataset) -> Setting:
    presentations = dataset.presentations
    table = dataset.stimulus_table()
    spec = {"column": stimulus.column} if stimulus.column else {"template": stimulus.template}
    spec |= {"start": stimulus.start, "end": stimulus.end} if stimulus.start else {}
    seconds = table.end - table.start
    children = [
        Setting("tasks", f"every task of the folder: {list(survey.tasks)}", list(survey.tasks)),
        Setting("stimulus", f"{stimulus.why}; {stimulus.excerpt_why}", spec) if spec.get("column") or
        spec.get("template") else Setting(None, f"stimulus: none: {stimulus.why}"),
        Setting("labels", labels.why, list(labels.labels)) if labels.labels else
        Setting(None, f"labels: none: {labels.why}"),
        Setting("drop", labels.drop_why, labels.drop) if labels.drop else Setting(None, labels.drop_why),
        Setting("lead_in", "events at each run's start that are not analysed: set it where runs open with a lead-in "
                "event (e.g. a repeat of the previous run's last stimulus)", design.lead_in),
        Setting("test", folds.test_why, folds.test) if folds.test else Setting(None, f"test: none: {folds.test_why}"),
        Setting("cv", folds.cv_why, folds.cv),
    ]
    comment = (f"how events become stimuli: {len(table)} stimuli of {seconds.min():g}-{seconds.max():g} s from "
               f"{len(presentations)} analysed events. Presentations per subject of each stimulus: "
               f"{repeats_text(presentations)} (a stimulus presented several times gives repeats: averaged in test "
               "rows, and the noise ceiling).")
    return Setting("design", comment, children=tuple(children))


def responses_setting(survey: Survey) -> Setting:
    cleaning, shortest = CleaningOptions(), float(survey.runs.seconds.min())
    median = shortest >= 2 * cleaning.drift_window_s
    drift = cleaning.drift if median else "polynomial"
    drift_why = ("drift removed by a running median (the paper's)" if median else
                 f"the shortest run lasts {shortest:g} s (by its events), too short for the paper's "
                 f"{cleaning.drift_window_s:g} s running median (it would span most of the run and leave its trend): "
                 f"each run's drift is a Legendre polynomial of order {cleaning.polynomial_order}")
    window_why = (f"the paper's {cleaning.drift_window_s:g} s running median (a window much longer lets slow drift "
                  "correlate with the slow parts of the stimuli, and the permutation null does not hold; a stimulus "
                  "longer than it loses its own mean response to it, so whole pieces are identified by their time "
                  "courses: decoding.segment_s)")
    children = (
        Setting("mask", "computed from each subject's BOLD (or give a mask NIfTI on the BOLD grid)", "compute"),
        Setting("atlas", "no ROI atlas is known for this folder: whole-mask decoding (give a label NIfTI on the BOLD "
                "grid for the ROI decoders)", None),
        Setting("drift", drift_why, drift),
        *([Setting("drift_window_s", window_why, cleaning.drift_window_s)] if median else []),
        Setting("lag_s", "hemodynamic lag of the scans averaged for a window (the paper's)", WindowOptions().lag_s),
    )
    return Setting("responses", "each run cleaned, z-scored and averaged over lagged windows", children=children)


def stimulus_durations(dataset: BidsDataset) -> pd.Series:
    """Each stimulus's duration (s)."""
    table = dataset.stimulus_table()
    return table.end - table.start


def model_settings(survey: Survey, labels: LabelChoice, audio: bool, shortest_s: float) -> list[Setting]:
    """features, encoding (the permutation null; banded ridge over two spaces or more, all of one grid) and
    decoding; ``shortest_s``: the shortest stimulus's duration."""
    tr = float(survey.runs.tr.max())
    window = max(MIN_WINDOW_S, tr)
    grid = {"window_s": window, "stride_s": window}
    spaces = [Setting("acoustic", f"offline audio descriptors (no model weights) of each stimulus's audio, windows "
                      f"of max({MIN_WINDOW_S:g} s, the largest TR {tr:g} s)", {**grid})] if audio else []
    spaces += [Setting(label_feature_name(column), f"one-hot of the label column {column}",
                       {"extractor": "labels", "column": column, **grid}) for column in labels.labels]
    allowed = ("the events name each stimulus's audio: audio spaces (acoustic here; clap-audio, w2v-bert and mert "
               "need model weights: add them), label spaces, identification among stimuli, encoding maps and "
               "reconstruction by retrieval" if audio else
               "no stimulus audio (labels only): label spaces only, giving label decoding and encoding maps; no audio "
               "space, no identification of stimuli, no retrieval or generation")
    found = [Setting("features", f"what the design allows: {allowed}", children=tuple(spaces))]
    encoding = [Setting("n_permutations", "voxel p-values from a permutation null that exchanges whole stimuli (or "
                        "blocks of them), keeping the autocorrelation of the windows within each; the Gaussian "
                        "null (0) would treat those windows as independent", PERMUTATIONS)]
    if shortest_s >= 2 * PERMUTATION_BLOCK_S:
        encoding.append(Setting("permutation_block_s", f"the shortest stimulus lasts {shortest_s:g} s: the null "
                                f"exchanges {PERMUTATION_BLOCK_S:g} s blocks of each, so a fold of a few long pieces "
                                "still has many to permute", PERMUTATION_BLOCK_S))
    if len(spaces) > 1:
        encoding.append(Setting("banded", "every space (one window grid): banded ridge splits each voxel's R² among "
                                "them", [space.key for space in spaces]))
    found.append(Setting("encoding", "encoding models (feature spaces → each voxel)", children=tuple(encoding)))
    decoding = [Setting("models", "the whole mask (the ROI decoders need responses.atlas)",
                        [model for model in DEFAULT_DECODING_MODELS if not DECODERS[model].needs_rois])]
    if audio and shortest_s >= 2 * SEGMENT_S:
        decoding.append(Setting("segment_s", f"the shortest stimulus lasts {shortest_s:g} s: every {SEGMENT_S:g} s "
                                "segment of each is also identified by its time course (a piece's own mean is "
                                "taken for drift by the 240 s filter, so its clip-level mean is not what identifies "
                                "it)", SEGMENT_S))
    found.append(Setting("decoding", "decoders", children=tuple(decoding)))
    return found


def reconstruction_setting(folds: FoldChoice, stimuli: str, results: str, subject: str) -> Setting:
    reconstructed = ["test"] if folds.test else list(folds.folds)
    children = (
        Setting("features", "the acoustic space's decoded windows, standardised by its training targets",
                {"acoustic": {"space": "standardised"}}),
        Setting("folds", "the declared test set" if folds.test else "the cv folds (no declared test set)",
                reconstructed),
        Setting("corpus", "retrieval from the study's own stimuli (any audio file under the folder; a clip and "
                "its duplicates are left out of its own retrieval), vectors cached under the results",
                {"sources": [{"path": stimuli, "layout": "folder"}], "chunks": RECONSTRUCTION_CHUNKS,
                 "cache": str(Layout(results).corpus_cache())}),
        Setting("listening", "the listening page: the first subject's reconstructions",
                {"subjects": [subject], "features": ["acoustic"]}),
        Setting("listening_test", "no listening test (enable it to have listeners compare reconstructions)",
                {"enabled": False}),
    )
    return Setting("reconstruction", "the decoded music retrieved from a corpus", children=children)


# ---------------------------------------------------------------- writing


def _comment_lines(comment: str, indent: int) -> list[str]:
    import textwrap

    pad = " " * indent
    return [f"{pad}# {line}" for line in textwrap.wrap(comment, width=116 - indent)]


def _setting_lines(setting: Setting, indent: int) -> list[str]:
    lines = _comment_lines(setting.comment, indent)
    if setting.key is None:
        return lines
    pad = " " * indent
    if setting.children:
        lines.append(f"{pad}{setting.key}:")
        for child in setting.children:
            lines += _setting_lines(child, indent + 2)
        return lines
    flow = yaml.safe_dump({setting.key: setting.value}, default_flow_style=True, width=float("inf"),
                          sort_keys=False).strip()
    return lines + [pad + flow[1:-1]]


def render_config(settings: Setting) -> str:
    """The YAML text of a config: each setting under its comment, a blank line between top-level sections."""
    lines = _comment_lines(settings.comment, 0)
    for child in settings.children:
        lines += ["", *_setting_lines(child, 0)]
    return "\n".join(lines) + "\n"
