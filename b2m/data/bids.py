"""Discover subjects, tasks and runs in a BIDS folder of ds003720's layout.

Layout: ``sub-XXX/func/sub-XXX_task-<Task>_run-NN_{bold.nii[.gz],bold.json,events.tsv}``, no sessions.
The training task (``Training``) and the test task (``Test``) are named in the config. With fMRIPrep
derivatives, the BOLD images (and brain masks) come from
``<fmriprep>/sub-XXX/func/sub-XXX_task-<Task>_run-NN_space-<space>_desc-preproc_bold.nii[.gz]`` and the events
and sidecars from the raw folder.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from b2m.data.events import analysed_events, check_training_events, read_events
from b2m.errors import InputError
from b2m.io import regular_file

log = logging.getLogger(__name__)
RUN_PATTERN = re.compile(r"^(sub-[A-Za-z0-9]+)_task-([A-Za-z0-9]+)_run-(\d+)_events\.tsv$")


@dataclass(frozen=True)
class Run:
    """One functional run: its split ("train" or "test") and the paths of its files."""

    subject: str
    task: str
    run: int
    split: str
    events: Path
    preprocessed: Path | None = None
    space: str | None = None
    expected_tr: float | None = None

    @property
    def stem(self) -> str:
        return f"{self.subject}_task-{self.task}_run-{self.run:02d}"

    @property
    def sidecar(self) -> Path:
        return self.events.with_name(f"{self.stem}_bold.json")

    @property
    def bold(self) -> Path:
        """The run's BOLD image (raw, or fMRIPrep's preprocessed one), .nii or .nii.gz; a missing one is an
        error naming both."""
        if self.preprocessed is None:
            return self._image(self.events.parent, f"{self.stem}_bold", "BOLD image",
                               "download the run (b2m expects the full ds003720 layout) or drop the subject "
                               "from the config's `subjects`")
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
        """The run's events, checked: no overlap, and in a training run no clip played twice."""
        events = read_events(self.events)
        if self.split == "train":
            check_training_events(events, self.events)
        return events

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
                             "(nibabel: img.header.set_zooms(...); ds003720: 1.5 s)")

    def repetition_time(self) -> float:
        """TR in seconds from the run's JSON sidecar."""
        sidecar = regular_file(self.sidecar, "BOLD sidecar", "restore the run's _bold.json")
        try:
            tr = json.loads(sidecar.read_bytes())["RepetitionTime"]
            if isinstance(tr, bool) or not 0 < float(tr) < float("inf"):
                raise ValueError(f"RepetitionTime {tr!r} is not a positive number of seconds")
        except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
            raise InputError(self.sidecar, f"no valid RepetitionTime ({type(err).__name__}: {err})",
                             "the sidecar must be JSON with RepetitionTime in seconds") from err
        if self.expected_tr is not None and abs(float(tr) - self.expected_tr) > 1e-6:
            raise InputError(self.sidecar, f"RepetitionTime {float(tr):g} s, but the config says "
                             f"{self.expected_tr:g} s", "correct the sidecar, or set dataset.repetition_time to "
                             "the TR the data were acquired at (ds003720: 1.5 s)")
        return float(tr)


class BidsDataset:
    """A ds003720-layout BIDS folder: ``subjects()``, ``runs(subject)``, ``stimulus_table()``.

    ``fmriprep`` (a folder of fMRIPrep derivatives) and ``space`` (its output space, e.g. ``T1w`` or
    ``MNI152NLin2009cAsym_res-2``) make the runs' BOLD images fMRIPrep's preprocessed ones.
    """

    def __init__(self, root, train_task: str = "Training", test_task: str = "Test", fmriprep=None,
                 space: str = "T1w", repetition_time: float | None = None):
        self.root = Path(root)
        self.repetition_time = repetition_time
        self.tasks = {train_task: "train", test_task: "test"}
        self.fmriprep = Path(fmriprep) if fmriprep else None
        self.space = space
        if not self.root.is_dir():
            raise InputError(self.root, "dataset folder not found",
                             "set `bids_root` in the config to the ds003720 folder (or run `b2m simulate`)")
        if self.fmriprep and not self.fmriprep.is_dir():
            raise InputError(self.fmriprep, "fMRIPrep derivatives folder not found",
                             "set `dataset.fmriprep.root` to fMRIPrep's output folder (holding sub-XXX/func)")

    def subjects(self) -> list[str]:
        return sorted(p.name for p in self.root.glob("sub-*") if (p / "func").is_dir())

    def runs(self, subject: str) -> list[Run]:
        """The subject's runs of the training and test tasks, training first, each in run order."""
        func = self.root / subject / "func"
        if not func.is_dir():
            raise InputError(func, f"no func folder for {subject}",
                             f"check `subjects` in the config; found {self.subjects()}")
        runs, other_tasks = [], set()
        for path in sorted(func.glob("*_events.tsv")):
            match = RUN_PATTERN.match(path.name)
            if match and match.group(1) == subject and match.group(2) in self.tasks:
                preprocessed = self.fmriprep / subject / "func" if self.fmriprep else None
                runs.append(Run(subject, match.group(2), int(match.group(3)), self.tasks[match.group(2)], path,
                                preprocessed, self.space if preprocessed else None, self.repetition_time))
            elif match and match.group(1) == subject:
                other_tasks.add(match.group(2))
        self._check_task_names(func, subject, other_tasks)
        for task in self.tasks:
            if not any(r.task == task for r in runs):
                raise InputError(func, f"no task-{task} runs for {subject} (its runs' tasks: "
                                 f"{sorted(other_tasks)})", "set `dataset.train_task` and `dataset.test_task` to the "
                                 "task names of the dataset's file names")
        return sorted(runs, key=lambda r: (r.split != "train", r.run))

    def _check_task_names(self, func: Path, subject: str, other_tasks: set[str]) -> None:
        """Runs of a task that differs from a configured one only in case are an error (they would be ignored in
        silence); runs of other tasks are left out, with a warning."""
        for task in sorted(other_tasks):
            configured = next((t for t in self.tasks if t.lower() == task.lower()), None)
            if configured:
                raise InputError(func, f"{subject} has runs of task-{task}, the config names task-{configured}",
                                 f"task names are case-sensitive: set `dataset.{self.tasks[configured]}_task: {task}` "
                                 "or rename the files")
            log.warning("%s: runs of task-%s are neither the training nor the test task: left out", subject, task)

    def check_same_stimuli(self, subject: str) -> None:
        """The subject heard the clips of the stimulus table, in the same order: the feature rows are built from
        one subject's events (the first's), so another subject's must match them run by run."""
        first = self.subjects()[0]
        if subject == first:
            return
        reference = {(run.task, run.run): run for run in self.runs(first)}
        for run in self.runs(subject):
            theirs = reference.get((run.task, run.run))
            ours = analysed_events(run.read_events())[["clip_id", "start", "end"]]
            expected = analysed_events(theirs.read_events())[["clip_id", "start", "end"]] if theirs else None
            if expected is None or not ours.reset_index(drop=True).equals(expected.reset_index(drop=True)):
                raise InputError(run.events, f"{subject}'s events differ from {first}'s "
                                 f"({theirs.events.name if theirs else 'no such run'}), whose events the feature rows "
                                 "are built from",
                                 f"b2m builds the feature rows from one subject's events ({first}'s: every ds003720 "
                                 "subject hears the same clips in the same order); restore this subject's events, "
                                 "or analyse subjects who heard other stimuli in a study of their own")

    def run_files(self, subject: str, images: bool = True) -> list[Path]:
        """The files of the subject's runs that a step reads and that exist: each run's events and sidecar and,
        with ``images``, its images. The workflow makes them a job's inputs, so a corrected file reruns what read
        it."""
        files = []
        for run in self.runs(subject):
            files += [run.events, run.sidecar, *(run.image_files() if images else [])]
        return [path for path in files if path.exists()]

    def stimulus_files(self, stimuli_dir, split: str | None = None, audio: bool = True) -> list[Path]:
        """What the stimulus table is read from (the first subject's events) and, with ``audio``, the audio files
        in ``stimuli_dir`` of its clips (of ``split`` only, if given) that exist."""
        from b2m.features.audio import AUDIO_SUFFIXES

        events = [run.events for run in self.runs(self.subjects()[0])]
        table = self.stimulus_table()
        clips = table.clip_id[table.split == split] if split else table.clip_id
        files = [Path(stimuli_dir) / clip.split(".")[0] / f"{clip}{suffix}" for clip in clips
                 for suffix in AUDIO_SUFFIXES]
        return events + [path for path in files if path.exists()] if audio else events

    def stimulus_table(self, subject: str | None = None) -> pd.DataFrame:
        """One row per analysed clip: clip_id, genre, track, split, excerpt ``start``/``end`` (s).

        Every subject of ds003720 hears the same clips; a clip heard in both splits, or with two
        different excerpts, is an error.
        """
        subject = subject or self.subjects()[0]
        rows = []
        for run in self.runs(subject):
            kept = analysed_events(run.read_events())
            kept["split"] = run.split
            kept["events_file"] = str(run.events)
            rows.append(kept)
        table = pd.concat(rows, ignore_index=True)
        for column in ("split", "start", "end"):
            varying = table.groupby("clip_id")[column].nunique()
            if (varying > 1).any():
                clip = varying.index[varying > 1][0]
                files = sorted(set(table.loc[table.clip_id == clip, "events_file"]))
                raise InputError(files[0], f"clip {clip} has more than one '{column}' across runs ({files})",
                                 "a clip must keep its split and excerpt in every run; fix the events files")
        clips = table.drop_duplicates("clip_id")[["clip_id", "genre", "track", "split", "start", "end"]]
        return clips.sort_values(["split", "clip_id"], ascending=[False, True]).reset_index(drop=True)
