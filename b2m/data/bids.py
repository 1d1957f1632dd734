"""A study's BIDS folder: subjects, sessions, runs, sidecars by inheritance, and the design's stimulus table.

Runs are found from their events files, ``sub-<s>/[ses-<t>/]func/sub-<s>[_ses-<t>]_task-<x>[_acq-…][_run-<n>]
[_echo-…]_events.tsv``, and named by the file's own entities (``run-1`` and ``run-01`` alike). Entities are parsed
by nilearn (``nilearn.interfaces.bids.parse_bids_filename``, already a dependency); the sidecar of a run is the
merge of every ``*_bold.json`` from the dataset's root down to the run's folder whose entities the run has (the BIDS
inheritance principle), the nearer file winning: a small walk that pybids would do with a database index and a
dependency tree b2m does not otherwise need. The BOLD image is the run's ``_bold.nii[.gz]``, or with fMRIPrep
derivatives ``<fmriprep>/sub-<s>/[ses-<t>/]func/<run>_space-<space>_desc-preproc_bold.nii[.gz]``.

Which tasks and events are analysed, and which runs hold the declared test set, is the design's
(``DesignOptions``, ``b2m.data.design``).
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from b2m.data.design import analysed_events, runs_share_stimuli, stimulus_table
from b2m.data.events import read_events
from b2m.errors import InputError
from b2m.io import regular_file
from b2m.options import DesignOptions

log = logging.getLogger(__name__)

STIMULI_FOLDER = "stimuli"  # BIDS: the folder of stimulus files, beside sub-*


def entities_of(path) -> dict[str, str]:
    """The BIDS entities of a file name (``sub``, ``ses``, ``task``, ``run``, …) as text."""
    from nilearn.interfaces.bids import parse_bids_filename

    return dict(parse_bids_filename(str(path))["entities"])


def matches(entities: dict, wanted: dict | None) -> bool:
    """Whether ``entities`` hold every entity of ``wanted`` (run numbers compared as numbers)."""
    def same(a, b):
        a, b = str(a), str(b)
        return a == b or (a.isdigit() and b.isdigit() and int(a) == int(b))

    return all(key in entities and same(entities[key], value) for key, value in (wanted or {}).items())


@dataclass(frozen=True)
class Run:
    """One functional run: its entities, its split ("train" or "test"), its place among the subject's analysed runs
    (``index``, 1-based) and the paths of its files."""

    subject: str
    task: str
    split: str
    events: Path
    index: int
    root: Path
    entities: tuple = ()
    preprocessed: Path | None = None
    space: str | None = None
    expected_tr: float | None = None

    @property
    def stem(self) -> str:
        """The run's file name before ``_events.tsv`` (its own entities, as the dataset writes them)."""
        return self.events.name[: -len("_events.tsv")]

    @property
    def run(self) -> int:
        """The BIDS run number (0 where the run has none)."""
        value = dict(self.entities).get("run", "0")
        return int(value) if value.isdigit() else 0

    @property
    def sidecars(self) -> list[Path]:
        """The ``*_bold.json`` files this run inherits from, from the root down (the nearest last)."""
        own = dict(self.entities)
        folders = [self.root, self.root / self.subject]
        if "ses" in own:
            folders.append(self.root / self.subject / f"ses-{own['ses']}")
        folders.append(self.events.parent)
        found = []
        for folder in dict.fromkeys(folders):
            candidates = sorted(folder.glob("*_bold.json")) if folder.is_dir() else []
            found += sorted((p for p in candidates if matches(own, entities_of(p))),
                            key=lambda p: len(entities_of(p)))
        return found

    @property
    def sidecar(self) -> Path:
        """The nearest sidecar (the run's own ``_bold.json`` where there is none: the file an error names)."""
        chain = self.sidecars
        return chain[-1] if chain else self.events.with_name(f"{self.stem}_bold.json")

    def metadata(self) -> dict:
        """The run's BOLD metadata: its sidecars merged, the nearest winning."""
        merged = {}
        for path in self.sidecars:
            path = regular_file(path, "BOLD sidecar", "restore the run's _bold.json")
            try:
                merged.update(json.loads(path.read_bytes()))
            except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
                raise InputError(path, f"not a JSON sidecar ({type(err).__name__}: {err})",
                                 "restore the sidecar from the dataset") from err
        return merged

    @property
    def bold(self) -> Path:
        """The run's BOLD image (raw, or fMRIPrep's preprocessed one), .nii or .nii.gz; a missing one is an
        error naming both."""
        if self.preprocessed is None:
            return self._image(self.events.parent, f"{self.stem}_bold", "BOLD image",
                               "download the run, or leave the subject out of the config's `subjects`")
        return self._image(self.preprocessed, f"{self.stem}_space-{self.space}_desc-preproc_bold",
                           "fMRIPrep preprocessed BOLD image",
                           f"run fMRIPrep with --output-spaces {self.space.split('_')[0]}, or set "
                           f"`dataset.fmriprep.space` to a space of the files in {self.preprocessed}")

    @property
    def brain_mask(self) -> Path:
        """fMRIPrep's brain mask of the run, in the run's space (fMRIPrep input only)."""
        return self._image(self.preprocessed, f"{self.stem}_space-{self.space}_desc-brain_mask",
                           "fMRIPrep brain mask", "restore fMRIPrep's output or give `responses.mask`")

    def image_files(self) -> list[Path]:
        """The run's images that exist: its BOLD (raw or fMRIPrep's, .nii or .nii.gz) and, for fMRIPrep input,
        its brain mask."""
        if self.preprocessed is None:
            names = [(self.events.parent, f"{self.stem}_bold")]
        else:
            names = [(self.preprocessed, f"{self.stem}_space-{self.space}_desc-{kind}")
                     for kind in ("preproc_bold", "brain_mask")]
        return [folder / f"{name}{suffix}" for folder, name in names for suffix in (".nii", ".nii.gz")
                if (folder / f"{name}{suffix}").exists()]

    @staticmethod
    def _image(folder: Path, name: str, what: str, fix: str) -> Path:
        for suffix in (".nii", ".nii.gz"):
            path = folder / f"{name}{suffix}"
            if path.exists():
                return path
        raise InputError(folder / f"{name}.nii", f"{what} missing (.nii or .nii.gz)", fix)

    def read_events(self) -> pd.DataFrame:
        """The run's events as the file has them (``b2m.data.events``)."""
        return read_events(self.events)

    def analysed(self, design: DesignOptions) -> pd.DataFrame:
        """The run's analysed presentations (``b2m.data.design.analysed_events``)."""
        return analysed_events(self.read_events(), design, self.stem, self.events)

    def header_repetition_time(self, img) -> float | None:
        """The TR (s) the image header declares (pixdim[4] in its time unit), None where it declares none."""
        zooms = img.header.get_zooms()
        if len(zooms) < 4 or not zooms[3] > 0:
            return None
        unit = img.header.get_xyzt_units()[1]
        return float(zooms[3]) * {"msec": 1e-3, "usec": 1e-6}.get(unit, 1.0)

    def check_header_tr(self, img, path) -> None:
        """The image header's TR must agree with the sidecar's (the BIDS validator's REPETITION_TIME_MISMATCH).
        A header that gives the TR in milliseconds but labels them seconds (or the reverse; old FSL and SPM
        writers) is accepted with a warning: the number is right, only its unit is not."""
        header_tr, sidecar_tr = self.header_repetition_time(img), self.repetition_time()
        if header_tr is None or abs(header_tr - sidecar_tr) <= 1e-3:
            return
        if any(abs(header_tr * factor - sidecar_tr) <= 1e-3 for factor in (1e-3, 1e3)):
            log.warning("%s: the header's TR is %g in a mislabelled time unit; the sidecar's %g s is used",
                        path, header_tr, sidecar_tr)
        else:
            raise InputError(path, f"the NIfTI header's TR (pixdim[4]) is {header_tr:g} s, the sidecar "
                             f"{self.sidecar.name} says {sidecar_tr:g} s",
                             "correct the header or the sidecar so both give the TR the run was acquired at "
                             "(nibabel: img.header.set_zooms(...))")

    def repetition_time(self) -> float:
        """TR in seconds from the run's sidecars (by inheritance)."""
        if not self.sidecars:
            raise InputError(self.sidecar, "no BOLD sidecar: neither the run's own nor one it inherits (e.g. "
                             f"task-{self.task}_bold.json at the dataset's root)", "restore the run's _bold.json")
        try:
            tr = self.metadata()["RepetitionTime"]
            if isinstance(tr, bool) or not 0 < float(tr) < float("inf"):
                raise ValueError(f"RepetitionTime {tr!r} is not a positive number of seconds")
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(self.sidecar, f"no valid RepetitionTime ({type(err).__name__}: {err})",
                             "the sidecar must be JSON with RepetitionTime in seconds") from err
        if self.expected_tr is not None and abs(float(tr) - self.expected_tr) > 1e-6:
            raise InputError(self.sidecar, f"RepetitionTime {float(tr):g} s, but the config says "
                             f"{self.expected_tr:g} s", "correct the sidecar, or set dataset.repetition_time to "
                             "the TR the data were acquired at")
        return float(tr)


def _run_order(run_entities: dict, split: str) -> tuple:
    run = run_entities.get("run", "0")
    return (split != "train", run_entities.get("ses", ""), run_entities.get("task", ""),
            int(run) if run.isdigit() else 0, tuple(sorted(run_entities.items())))


@dataclass(eq=False)
class BidsDataset:
    """A BIDS folder read with a design: ``subjects()``, ``runs(subject)``, ``presentations()``,
    ``stimulus_table()``. ``fmriprep`` (a folder of fMRIPrep derivatives) and ``space`` (its output space) make the
    runs' BOLD images fMRIPrep's preprocessed ones. The stimulus table is made from every subject's events, so that
    analysing some subjects (``--config subjects=[...]``) changes no other job's inputs."""

    root: Path
    design: DesignOptions = field(default_factory=DesignOptions)
    fmriprep: Path | None = None
    space: str = "T1w"
    repetition_time: float | None = None

    def __post_init__(self):
        self.root = Path(self.root)
        self.fmriprep = Path(self.fmriprep) if self.fmriprep else None
        if not self.root.is_dir():
            raise InputError(self.root, "dataset folder not found",
                             "set `dataset.bids_root` in the config to the study's BIDS folder (or run "
                             "`b2m simulate`)")
        if self.fmriprep and not self.fmriprep.is_dir():
            raise InputError(self.fmriprep, "fMRIPrep derivatives folder not found",
                             "set `dataset.fmriprep.root` to fMRIPrep's output folder (holding sub-XXX/func)")

    def subjects(self) -> list[str]:
        """The subjects that have a func folder (directly or in a session)."""
        return sorted(p.name for p in self.root.glob("sub-*")
                      if (p / "func").is_dir() or any(p.glob("ses-*/func")))

    def events_files(self, subject: str) -> list[Path]:
        folder = self.root / subject
        if not folder.is_dir():
            raise InputError(folder, f"no folder for {subject}",
                             f"check `subjects` in the config; found {self.subjects()}")
        files = sorted(folder.glob("func/*_events.tsv")) + sorted(folder.glob("ses-*/func/*_events.tsv"))
        return [path for path in files if entities_of(path).get("sub") == subject[4:]]

    @functools.cache
    def runs(self, subject: str) -> list[Run]:
        """The subject's runs of the analysed tasks, training runs first, each in (session, task, run) order."""
        found, other_tasks = [], set()
        for path in self.events_files(subject):
            entities = entities_of(path)
            task = entities.get("task", "")
            if self.design.tasks and task not in self.design.tasks:
                other_tasks.add(task)
                continue
            split = "test" if self.design.test and matches(entities, self.design.test) else "train"
            found.append((_run_order(entities, split), path, entities, split))
        self._check_task_names(subject, other_tasks)
        if not found:
            raise InputError(self.root / subject, f"no runs of the analysed tasks "
                             f"{list(self.design.tasks) or 'any'} for {subject} (other tasks: {sorted(other_tasks)})",
                             "set `design.tasks` to task names of the dataset's file names")
        runs = []
        for _, path, entities, split in sorted(found, key=lambda item: item[0]):
            preprocessed = self.fmriprep / path.parent.relative_to(self.root) if self.fmriprep else None
            run = Run(subject, entities.get("task", ""), split, path, len(runs) + 1, self.root,
                      tuple(sorted(entities.items())), preprocessed, self.space if preprocessed else None,
                      self.repetition_time)
            if run.analysed(self.design).empty:
                log.info("%s: no event of %s is analysed (design.keep / drop / lead_in): the run is left out",
                         subject, run.stem)
                continue
            runs.append(run)
        if not runs:
            raise InputError(self.root / subject, f"no analysed event in any run of {subject}",
                             "check design.keep, design.drop, design.lead_in and design.tasks against the events")
        return runs

    def _check_task_names(self, subject: str, other_tasks: set[str]) -> None:
        """Runs of a task that differs from an analysed one only in case are an error (they would be ignored in
        silence); runs of other tasks are left out, with a warning."""
        for task in sorted(other_tasks):
            configured = next((t for t in self.design.tasks if t.lower() == task.lower()), None)
            if configured:
                raise InputError(self.root / subject, f"{subject} has runs of task-{task}, the config names "
                                 f"task-{configured}", f"task names are case-sensitive: name task {task} in "
                                 "`design.tasks` (and `design.test`) or rename the files")
            log.info("%s: runs of task-%s are not among design.tasks: left out", subject, task)

    def run_files(self, subject: str, images: bool = True) -> list[Path]:
        """The files of the subject's runs that a step reads and that exist: each run's events and sidecars and,
        with ``images``, its images. The workflow makes them a job's inputs, so a corrected file reruns what read
        it."""
        files = []
        for run in self.runs(subject):
            files += [run.events, *run.sidecars, *(run.image_files() if images else [])]
        return [path for path in dict.fromkeys(files) if path.exists()]

    @functools.cached_property
    def presentations(self) -> pd.DataFrame:
        """Every analysed presentation of every subject's runs (``analysed_events`` with subject, run index, split
        and events_file)."""
        tables = []
        for subject in self.subjects():
            for run in self.runs(subject):
                kept = run.analysed(self.design)
                tables.append(kept.assign(subject=subject, run=run.index, split=run.split,
                                          events_file=str(run.events)))
        return pd.concat(tables, ignore_index=True)

    def runs_share_stimuli(self) -> bool:
        """Whether some subject hears a stimulus in more than one run."""
        return any(runs_share_stimuli(group) for _, group in self.presentations.groupby("subject"))

    def stimulus_table(self) -> pd.DataFrame:
        """One row per stimulus of the study (``b2m.data.design.stimulus_table``)."""
        return stimulus_table(self.presentations, self.design)

    def events_of_subjects(self) -> list[Path]:
        return [run.events for subject in self.subjects() for run in self.runs(subject)]

    def stimulus_files(self, stimuli_dir, split: str | None = None, audio: bool = True) -> list[Path]:
        """What the stimulus table is read from (every subject's events) and, with ``audio``, the audio files
        in ``stimuli_dir`` of its stimuli (of ``split`` only, if given) that exist."""
        from b2m.features.audio import stimulus_path

        events = self.events_of_subjects()
        if not audio or not self.design.has_stimuli:
            return events
        table = self.stimulus_table()
        paths = table.path[table.split == split] if split else table.path
        found = []
        for relative in paths:
            try:
                found.append(stimulus_path(stimuli_dir, relative))
            except InputError:
                pass  # the features job names it
        return events + found
