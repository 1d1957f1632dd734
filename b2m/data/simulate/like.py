"""The planted-truth twin of a music-fMRI study: the study's own design and layout, with synthetic brains and music.

``simulate_like(source, out_dir, cfg, design)`` writes::

    out_dir/<source folder's name>/   BIDS in the source's layout: each run's events file byte for byte (with
                                      ``max_seconds``, less the lines of the events that start after it), the
                                      sidecars the runs inherit, dataset_description.json and participants.tsv, and
                                      per run a synthetic ``<run>_bold.nii.gz`` (int16, the run's TR, lasting until
                                      its last event ends plus ``LAG_S`` and ``TAIL_SCANS`` scans)
    out_dir/<source folder's name>/stimuli/   a synthetic 16-bit WAV for every stimulus the design names, at the
                                      design's path (``.wav`` added where the name has no audio suffix)
    out_dir/atlas/                    atlas.nii.gz + atlas.tsv, cortex_mask.nii.gz (as ``b2m simulate``)
    out_dir/truth/                    <subject>_voxels.parquet, <subject>_signal.npy, descriptors.parquet (designs
                                      with stimuli), truth.json; never inside the BIDS tree

The presentations and stimuli are read through ``BidsDataset`` on the twin, so they are what the pipeline will
resolve. Planted voxels respond as in ``b2m simulate``: to the six z-scored descriptors of the audio heard in each
scan (frames of one TR over each presentation's excerpt, from the scan of its onset), or, in a design without
stimuli, to the one-hot of each analysed event's label during the event; HRF-convolved at the run's TR and scaled
to the voxel's SNR. A stimulus sounds in the style its label names (a ``STYLES`` key), else in one chosen by a
stable hash of its label or, without labels, of its id.
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from b2m.data.bids import BidsDataset, Run
from b2m.data.events import read_events
from b2m.data.simulate import (DESCRIPTORS, PLANTED_ROIS, _each, _rng, baseline_image, excerpt_descriptors,
                               planted_brain_index, plant_subject, subject_signal, with_z_scores, worker_pool,
                               write_atlas, write_bold_run, write_wav)
from b2m.data.simulate.music import STYLES, render_clip
from b2m.errors import InputError
from b2m.features.audio import AUDIO_SUFFIXES
from b2m.io import atomic_path, regular_file, write_json, write_npy, write_parquet
from b2m.options import DesignOptions, SimulationConfig

log = logging.getLogger(__name__)

LAG_S = 6.0  # the hemodynamic response's lag kept after a run's last event (s)
TAIL_SCANS = 3  # scans after that
BIDS_STIMULUS_COLUMN = "stim_file"  # the design's stimulus column where none is given and the events have it
ROOT_FILES = ("dataset_description.json", "participants.tsv", "participants.json")
DESIGN_FIX = ("name the events column of the stimulus files (--stimulus-column) or a template of columns "
              "(--stimulus-template), or the label columns of a design without stimuli (--labels)")


def resolved_design(dataset: BidsDataset, subject: str) -> DesignOptions:
    """The dataset's design with ``stim_file`` as its stimulus column where it names none and the subject's first
    run's events have that column; a design with neither stimuli nor labels is an error."""
    design = dataset.design
    if not design.has_stimuli and BIDS_STIMULUS_COLUMN in dataset.runs(subject)[0].read_events().columns:
        design = DesignOptions(**{**asdict(design), "stimulus_column": BIDS_STIMULUS_COLUMN})
    if not design.has_stimuli and not design.labels:
        raise InputError(dataset.runs(subject)[0].events, "the design names no stimulus and no label, so there is "
                         "nothing for planted voxels to respond to", DESIGN_FIX)
    return design


def chosen_runs(dataset: BidsDataset, subjects: int | None, runs: int | None) -> dict[str, list[Run]]:
    """The first ``subjects`` subjects (all without a cap) and of each the first ``runs`` runs of each task."""
    chosen = {}
    for subject in dataset.subjects()[:subjects]:
        per_task: dict[str, list[Run]] = {}
        for run in dataset.runs(subject):
            per_task.setdefault(run.task, []).append(run)
        chosen[subject] = sorted((run for task_runs in per_task.values() for run in task_runs[:runs]),
                                 key=lambda run: run.index)
    return chosen


def capped_events(path: Path, max_seconds: float | None) -> bytes:
    """An events file's bytes; with ``max_seconds``, less the lines of the events that start after it (the header
    and every other line byte for byte)."""
    data = regular_file(path, "events file", "restore the file from the dataset").read_bytes()
    if max_seconds is None:
        return data
    onsets = read_events(path)["onset"].to_numpy()
    header, *lines = data.splitlines(keepends=True)
    rows = [line for line in lines if line.strip()]
    if len(rows) != len(onsets):
        raise InputError(path, f"{len(rows)} lines of text but {len(onsets)} events: a row spans lines",
                         "restore the file from the dataset, or leave out --max-seconds (the file is then copied)")
    kept = [row for row, onset in zip(rows, onsets) if onset <= max_seconds]
    if not kept:
        raise InputError(path, f"no event starts within --max-seconds {max_seconds:g}",
                         f"give --max-seconds of at least {onsets.min():g}")
    return header + b"".join(kept)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def copy_metadata(source: BidsDataset, runs: dict[str, list[Run]], twin_root: Path, max_seconds: float | None) -> None:
    """The twin's events (capped), the sidecars its runs inherit and the dataset's root files, at the source's
    relative paths; every events file is read before anything is written."""
    files = {path: path.read_bytes() for path in (source.root / name for name in ROOT_FILES) if path.is_file()}
    for run in (run for subject_runs in runs.values() for run in subject_runs):
        files[run.events] = capped_events(run.events, max_seconds)
        files.update((sidecar, sidecar.read_bytes()) for sidecar in run.sidecars if sidecar not in files)
    for path, data in files.items():
        write_bytes(twin_root / path.relative_to(source.root), data)
    log.info("twin: %d events files, sidecars and root files copied to %s", len(files), twin_root)


def style_of(key: str) -> str:
    """The style a stimulus sounds in: ``key`` (a label value, or a stimulus id) where it is a ``STYLES`` key, else
    one chosen by a stable hash of it."""
    return key if key in STYLES else tuple(STYLES)[zlib.crc32(key.encode()) % len(STYLES)]


def audio_file(stimuli_dir: Path, relative: str) -> Path:
    """Where a stimulus's audio goes: its path under the stimulus folder, ``.wav`` added where it has no audio
    suffix (as ``b2m.features.audio.stimulus_path`` looks for it)."""
    name = relative if Path(relative).suffix.lower() in AUDIO_SUFFIXES else f"{relative}.wav"
    return stimuli_dir / name


def render_stimulus(cfg: SimulationConfig, stimuli_dir: Path, trs: tuple[float, ...], stimulus: dict) -> list[tuple]:
    """Render one stimulus (a stimulus-table row) to its WAV, 1 s past its excerpt's end, and return the
    descriptor rows (clip_id, tr, frame, descriptors) of its excerpt at each TR of ``trs``."""
    clip = render_clip(stimulus["style"], stimulus["end"] + 1.0, cfg.audio_rate,
                       _rng(cfg.seed, "like-clip", stimulus["clip_id"]))
    write_wav(audio_file(stimuli_dir, stimulus["path"]), clip.mix, cfg.audio_rate)
    return [(stimulus["clip_id"], tr, frame, *vector) for tr in trs
            for frame, vector in enumerate(excerpt_descriptors(clip, stimulus["start"], cfg.audio_rate,
                                                               stimulus["end"] - stimulus["start"], tr))]


def write_stimuli(cfg: SimulationConfig, table: pd.DataFrame, stimuli_dir: Path, trs: tuple[float, ...],
                  pool=None) -> pd.DataFrame:
    """Every stimulus of the stimulus table rendered in ``style`` (each from its own seed); the descriptor table
    (clip_id, tr, frame, descriptors, z-scored descriptors)."""
    rows = [row for clip_rows in _each(partial(render_stimulus, cfg, stimuli_dir, trs), table.to_dict("records"),
                                       pool) for row in clip_rows]
    log.info("twin: %d stimuli rendered to %s", len(table), stimuli_dir)
    return with_z_scores(pd.DataFrame(rows, columns=["clip_id", "tr", "frame", *DESCRIPTORS]))


def run_scans(run: Run, tr: float) -> int:
    """Scans of a twin run: until its last event ends, plus ``LAG_S`` and ``TAIL_SCANS``."""
    events = run.read_events()
    return math.ceil(float((events.onset + events.duration).max() + LAG_S) / tr) + TAIL_SCANS


def place(drive: np.ndarray, onset: float, tr: float, block: np.ndarray) -> None:
    """Write ``block`` (scans × features) into ``drive`` from the scan of ``onset`` (s), cut at the run's end."""
    first = int(round(onset / tr))
    stop = min(len(drive), first + len(block))
    drive[first:stop] = block[: max(stop - first, 0)]


def stimulus_drive(presented: pd.DataFrame, tr: float, n_scans: int, descriptors: pd.DataFrame) -> np.ndarray:
    """A run's drive (scans × descriptors): each presentation's z-scored excerpt frames from its onset's scan."""
    frames = descriptors[descriptors.tr == tr].set_index("clip_id")[[f"z_{d}" for d in DESCRIPTORS]]
    drive = np.zeros((n_scans, len(DESCRIPTORS)))
    for clip_id, onset in zip(presented.clip_id, presented.onset):
        place(drive, onset, tr, frames.loc[[clip_id]].to_numpy())
    return drive


def label_drive(presented: pd.DataFrame, tr: float, n_scans: int, labels: tuple[str, ...]) -> np.ndarray:
    """A run's drive (scans × labels): the one-hot of each analysed event's label over the scans inside it."""
    drive = np.zeros((n_scans, len(labels)))
    for label, onset, duration in zip(presented.label, presented.onset, presented.duration):
        scans = int(round((onset + duration) / tr)) - int(round(onset / tr))
        place(drive, onset, tr, np.tile(np.eye(len(labels))[labels.index(label)], (scans, 1)))
    return drive


def write_twin_subject(cfg: SimulationConfig, twin: BidsDataset, features: tuple[str, ...], drive_of, brain, atlas,
                       baseline, truth: Path, subject: str) -> list[dict]:
    """One subject's BOLD runs and truth (planted voxels, noise-free signal); returns what each run is."""
    runs = twin.runs(subject)
    trs = [run.repetition_time() for run in runs]
    drives = [drive_of(run.analysed(twin.design), tr, run_scans(run, tr)) for run, tr in zip(runs, trs)]
    voxels = plant_subject(cfg, subject, atlas, twin.subjects(), features)
    planted_index = planted_brain_index(brain, voxels)
    signals = subject_signal(voxels, drives, trs, features)
    for run, tr, signal in zip(runs, trs, signals):
        write_bold_run(run.events.with_name(f"{run.stem}_bold.nii.gz"), cfg, brain, baseline, signal, planted_index,
                       _rng(cfg.seed, "like-noise", subject, run.stem), tr)
    log.info("%s: %d runs written (%s scans), %d planted voxels", subject, len(runs),
             ", ".join(str(len(s)) for s in signals), len(planted_index))
    write_parquet(truth / f"{subject}_voxels.parquet", voxels, asdict(cfg))
    write_npy(truth / f"{subject}_signal.npy", np.concatenate(signals).astype(np.float32),
              {"rows": "the subject's runs in BidsDataset order, each its own number of scans (truth.json)",
               "columns": "planted voxels"})
    return [{"run": run.stem, "repetition_time": tr, "scans": len(signal)}
            for run, tr, signal in zip(runs, trs, signals)]


def simulate_like(source, out_dir, cfg: SimulationConfig = SimulationConfig(), design: DesignOptions = DesignOptions(),
                  subjects: int | None = None, runs: int | None = None, max_seconds: float | None = None,
                  jobs: int = 1) -> dict:
    """Write the twin of the BIDS study at ``source`` under ``out_dir`` (see the module docstring) for its first
    ``subjects`` subjects and their first ``runs`` runs of each task; returns its paths."""
    source_dataset = BidsDataset(source, design)
    if not source_dataset.subjects():
        raise InputError(source_dataset.root, "no subject with a func folder", "point at a BIDS dataset's folder")
    design = resolved_design(source_dataset, source_dataset.subjects()[0])
    source_dataset = BidsDataset(source, design)
    source_dataset.stimulus_table()  # the design must hold for the source before anything is written
    out_dir = Path(out_dir)
    twin_root = out_dir / source_dataset.root.name
    copy_metadata(source_dataset, chosen_runs(source_dataset, subjects, runs), twin_root, max_seconds)

    twin = BidsDataset(twin_root, design)
    stimuli = twin.stimulus_table()
    truth = out_dir / "truth"
    if design.has_stimuli:
        stimuli["style"] = [style_of(label or clip_id) for label, clip_id in zip(stimuli.label, stimuli.clip_id)]
        trs = tuple(sorted({run.repetition_time() for s in twin.subjects() for run in twin.runs(s)}))
        with worker_pool(jobs) as pool:
            descriptors = write_stimuli(cfg, stimuli, twin_root / "stimuli", trs, pool)
        write_parquet(truth / "descriptors.parquet", descriptors, asdict(cfg))
        features, drive_of = DESCRIPTORS, partial(stimulus_drive, descriptors=descriptors)
    else:
        features = tuple(sorted(set(stimuli.label)))
        drive_of = partial(label_drive, labels=features)

    brain, _, atlas = write_atlas(cfg, out_dir / "atlas")
    write = partial(write_twin_subject, cfg, twin, features, drive_of, brain, atlas, baseline_image(cfg, brain),
                    truth)
    with worker_pool(jobs) as pool:
        subject_runs = dict(zip(twin.subjects(), _each(write, twin.subjects(), pool)))
    write_json(truth / "truth.json", {
        "config": asdict(cfg), "design": asdict(design), "source": str(source_dataset.root), "max_seconds": max_seconds,
        "features": list(features), "drive": "stimulus descriptors" if design.has_stimuli else "label one-hot",
        "planted_rois": PLANTED_ROIS, "lag_s": LAG_S, "tail_scans": TAIL_SCANS,
        "signal_model": "noise% x (AR(1) unit noise + sum_k w_k HRF*drive_k scaled to variance snr)",
        "stimuli": dict(zip(stimuli.clip_id, stimuli["style"])) if design.has_stimuli else {},
        "runs": subject_runs})
    return {"bids_root": twin_root, "stimuli": twin_root / "stimuli", "atlas": out_dir / "atlas" / "atlas.nii.gz",
            "mask": out_dir / "atlas" / "cortex_mask.nii.gz", "truth": truth}
