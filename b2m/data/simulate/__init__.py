"""A synthetic study in ds003720's exact layout, with a planted truth kept outside the BIDS tree.

``simulate_study(out_dir, SimulationConfig())`` writes::

    out_dir/ds003720/        BIDS: sub-XXX/func/*_bold.nii (int16; .nii.gz with gzip_bold), *_bold.json,
                             *_events.tsv
    out_dir/stimuli/         GTZAN layout: <genre>/<genre>.<nnnnn>.wav
    out_dir/corpus/          more tracks in the same styles (GTZAN layout, ids <genre>.01000 on): a corpus to
                             retrieve from beside the stimuli
    out_dir/captions.csv     Brain2Music caption format (BOM, ID,DescEN, IDs <clip>_15s)
    out_dir/atlas/           atlas.nii.gz + atlas.tsv (12 cortical ROIs), cortex_mask.nii.gz (with
                             voxel_dropout, each subject's own <subject>_cortex_mask.nii.gz too)
    out_dir/truth/           what the pipeline must recover; only tests read it

Planted truth: voxels in the temporal ROIs respond to six stimulus descriptors of what is heard in each
1.5 s scan (loudness, brightness, onset rate, percussiveness, pitch height, mode), each with its own
weights and HRF peak, at a signal-to-noise variance ratio ``snr`` (half of it in temporal_inferior; with
``snr_spread`` each subject's own). Subjects differ in which voxels respond, their weights and HRF peaks, and
with ``voxel_dropout`` in which voxels their masks hold.
Noise is AR(1) plus slow drift; every other voxel is noise and drift only.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import soundfile as sf

from b2m import __version__
from b2m.data.simulate.brain import (PLANTED_ROIS, ar1_noise, brain_geometry, convolve_drive, drift,
                                     roi_names)
from b2m.data.simulate.music import STYLES, render_clip
from b2m.io import atomic_path, write_json, write_npy, write_parquet
from b2m.options import DesignOptions, SimulationConfig

log = logging.getLogger(__name__)

TR = 1.5
EVENT_SECONDS = 15.0
FADE_SECONDS = 2.0
DESCRIPTORS = ("loudness", "brightness", "onset_rate", "percussiveness", "pitch", "mode")
GTZAN_GENRES = tuple(STYLES)  # the genres of ds003720's GTZAN clips, which the demo study simulates
# ds003720's design, which the simulated study has (config/config.yaml's `design` section says the same).
DESIGN = DesignOptions(tasks=("Training", "Test"), stimulus_template="{genre}/{genre}.{track:05d}",
                       excerpt_start="start", excerpt_end="end", labels=("genre",), lead_in=1, test={"task": "Test"})


def clip_id(genre: str, track: int) -> str:
    """GTZAN file stem of a clip, e.g. ``clip_id("blues", 17) == "blues.00017"``."""
    return f"{genre}.{int(track):05d}"


def subject_ids(n: int) -> list[str]:
    return [f"sub-{i:03d}" for i in range(1, n + 1)]


def _rng(seed: int, *keys) -> np.random.Generator:
    words = [zlib.crc32(str(k).encode()) for k in keys]
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


# ---------------------------------------------------------------- schedule

def schedule(cfg: SimulationConfig) -> tuple[pd.DataFrame, dict[tuple[str, int], list[str]]]:
    """The clips (clip_id, genre, track, split, start, end) and the event order of every run, keyed by
    (task, run), in ds003720's design: each run's first event is a lead-in that is not analysed."""
    rng = _rng(cfg.seed, "schedule")
    per_genre_train = 4 * cfg.n_training_runs
    clips, train_by_genre, test_by_genre = [], {}, {}
    for genre in GTZAN_GENRES:
        tracks = rng.choice(100, size=per_genre_train + cfg.n_test_runs, replace=False)
        for index, track in enumerate(tracks):
            start = round(float(rng.uniform(0, cfg.clip_seconds - EVENT_SECONDS)), 2)
            split = "train" if index < per_genre_train else "test"
            clips.append((clip_id(genre, track), genre, int(track), split, start, round(start + EVENT_SECONDS, 2)))
        train_by_genre[genre] = [clip_id(genre, t) for t in tracks[:per_genre_train]]
        test_by_genre[genre] = [clip_id(genre, t) for t in tracks[per_genre_train:]]
    table = pd.DataFrame(clips, columns=["clip_id", "genre", "track", "split", "start", "end"])

    runs: dict[tuple[str, int], list[str]] = {}
    training = []
    for r in range(cfg.n_training_runs):
        order = [c for g in GTZAN_GENRES for c in train_by_genre[g][4 * r:4 * r + 4]]
        training.append(list(rng.permutation(order)))
    for r, order in enumerate(training):
        runs[("Training", r + 1)] = [training[r - 1][-1]] + order
    for r in range(cfg.n_test_runs):
        cycle = list(rng.permutation([test_by_genre[g][r] for g in GTZAN_GENRES]))
        runs[("Test", r + 1)] = [cycle[-1]] + cycle * 4
    return table, runs


def events_text(order: list[str], clips: pd.DataFrame, half_quoted_tail: int = 0) -> str:
    """events.tsv as ds003720 writes it: CRLF, no final newline, genres in single quotes; the last
    ``half_quoted_tail`` rows carry only the closing quote (the Training run-04 quirk)."""
    info = clips.set_index("clip_id")
    lines = ["onset\tduration\tgenre\ttrack\tstart\tend"]
    for index, cid in enumerate(order):
        row = info.loc[cid]
        quoted = f"{row.genre}'" if index >= len(order) - half_quoted_tail else f"'{row.genre}'"
        lines.append(f"{int(index * EVENT_SECONDS)}\t{int(EVENT_SECONDS)}\t{quoted}\t{row.track}"
                     f"\t{row.start:g}\t{row.end:g}")
    return "\r\n".join(lines)


# ---------------------------------------------------------------- stimuli and descriptors

def excerpt_descriptors(clip, start: float, sr: int, seconds: float = EVENT_SECONDS, tr: float = TR) -> np.ndarray:
    """The six planted descriptors of each ``tr`` s frame of the ``seconds`` s excerpt from ``start`` (s) as played
    (faded and RMS-normalised), frames × 6 (the whole frames that fit in the excerpt)."""
    a, n = int(round(start * sr)), int(round(seconds * sr))
    t = np.arange(n) / sr
    fade = np.clip(np.minimum(t, seconds - t) / FADE_SECONDS, 0, 1)
    tonal, drums = clip.tonal[a:a + n] * fade, clip.drums[a:a + n] * fade
    gain = 1.0 / (np.sqrt(np.mean((tonal + drums) ** 2)) + 1e-12)
    tonal, drums = tonal * gain, drums * gain
    frame = int(round(tr * sr))
    played = tonal + drums
    notes = clip.notes.copy()
    notes[:, 0] -= start
    rows = []
    for f in range(int(np.floor(seconds / tr + 1e-9))):
        lo, hi = f * tr, (f + 1) * tr
        mix = played[f * frame:(f + 1) * frame]
        energy = np.mean(mix ** 2) + 1e-10
        spectrum = np.abs(np.fft.rfft(mix)) ** 2
        freqs = np.fft.rfftfreq(len(mix), 1 / sr)
        centroid = (spectrum * freqs).sum() / (spectrum.sum() + 1e-12)
        onsets = np.sum((notes[:, 0] >= lo) & (notes[:, 0] < hi))
        sounding = notes[(notes[:, 2] > 0) & (notes[:, 0] < hi) & (notes[:, 0] + notes[:, 1] > lo)]
        pitch = np.average(sounding[:, 2], weights=sounding[:, 3]) if len(sounding) else np.nan
        rows.append((10 * np.log10(energy), np.log(centroid + 1.0), onsets / tr,
                     np.mean(drums[f * frame:(f + 1) * frame] ** 2) / energy, pitch,
                     1.0 if clip.mode in ("major", "pentatonic") else -1.0))
    table = np.array(rows)
    pitch = table[:, 4]
    pitch[np.isnan(pitch)] = np.nanmean(pitch) if np.isfinite(pitch).any() else 60.0
    return table


def write_wav(path: Path, mix: np.ndarray, rate: int) -> None:
    """16-bit WAV peaking at 0.9."""
    with atomic_path(path) as tmp:
        sf.write(tmp, mix / (np.abs(mix).max() + 1e-12) * 0.9, rate, subtype="PCM_16", format="WAV")


def _render_stimulus(cfg: SimulationConfig, out_dir: Path, clip_row: dict) -> list[tuple]:
    """Render one stimulus clip (a row of the clip table) to its WAV and return its descriptor rows (clip_id,
    split, frame, descriptors)."""
    name, genre = clip_row["clip_id"], clip_row["genre"]
    clip = render_clip(genre, cfg.clip_seconds, cfg.audio_rate, _rng(cfg.seed, "clip", name))
    write_wav(out_dir / "stimuli" / genre / f"{name}.wav", clip.mix, cfg.audio_rate)
    values = excerpt_descriptors(clip, clip_row["start"], cfg.audio_rate)
    return [(name, clip_row["split"], frame, *vector) for frame, vector in enumerate(values)]


def _render_corpus_track(cfg: SimulationConfig, out_dir: Path, track: tuple[str, str]) -> None:
    genre, name = track
    clip = render_clip(genre, cfg.clip_seconds, cfg.audio_rate, _rng(cfg.seed, "corpus", name))
    write_wav(out_dir / "corpus" / genre / f"{name}.wav", clip.mix, cfg.audio_rate)


def _each(function, items: list, pool) -> list:
    """``function`` of every item in order, in ``pool``'s processes where there is one."""
    return list(pool.map(function, items, chunksize=8) if pool else map(function, items))


def write_stimuli(cfg: SimulationConfig, clips: pd.DataFrame, out_dir: Path, pool=None) -> pd.DataFrame:
    """Render every clip to ``stimuli/<genre>/<clip>.wav`` and return the descriptor table
    (clip_id, split, frame, descriptors); each clip from its own seed, so ``pool`` changes no file."""
    rows = [row for clip_rows in _each(partial(_render_stimulus, cfg, out_dir), clips.to_dict("records"), pool)
            for row in clip_rows]
    log.info("stimuli: %d clips rendered", len(clips))
    return with_z_scores(pd.DataFrame(rows, columns=["clip_id", "split", "frame", *DESCRIPTORS]))


def with_z_scores(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``z_<descriptor>``: each descriptor z-scored over all of its rows."""
    for name in DESCRIPTORS:
        values = table[name]
        table[f"z_{name}"] = (values - values.mean()) / (values.std() + 1e-12)
    return table


def write_corpus(cfg: SimulationConfig, out_dir: Path, pool=None) -> None:
    """Render ``corpus_tracks_per_genre`` more tracks of every genre to ``corpus/<genre>/<genre>.01NNN.wav``."""
    tracks = [(genre, clip_id(genre, 1000 + number)) for genre in GTZAN_GENRES
              for number in range(cfg.corpus_tracks_per_genre)]
    _each(partial(_render_corpus_track, cfg, out_dir), tracks, pool)
    log.info("corpus: %d extra tracks rendered", len(tracks))


def write_captions(clips: pd.DataFrame, path: Path) -> None:
    captions = pd.DataFrame({"ID": clips["clip_id"] + "_15s",
                             "DescEN": [STYLES[g].caption for g in clips["genre"]]})
    with atomic_path(path) as tmp:
        captions.to_csv(tmp, index=False, encoding="utf-8-sig")


# ---------------------------------------------------------------- brain

def _nifti(data: np.ndarray, cfg: SimulationConfig, tr: float | None = None) -> nib.Nifti1Image:
    """An image on the simulated grid; a 4-D one (``tr`` given) declares its TR (s) in the header."""
    affine = np.diag([cfg.voxel_mm] * 3 + [1.0])
    affine[:3, 3] = -np.array(cfg.shape) * cfg.voxel_mm / 2
    img = nib.Nifti1Image(data, affine)
    if tr is not None:
        img.header.set_xyzt_units("mm", "sec")
        zooms = img.header.get_zooms()
        img.header.set_zooms(zooms[:3] + (tr,))
    return img


def subject_snr(cfg: SimulationConfig, subject: str, subjects: list[str] | None = None) -> float:
    """A subject's planted SNR: ``snr`` × ``snr_spread`` to a power from -1 (the first of ``subjects``, default
    ``subject_ids(n_subjects)``) to 1 (the last), evenly spaced; ``snr`` itself for every subject when the spread
    is 1."""
    subjects = subjects or subject_ids(cfg.n_subjects)
    if cfg.snr_spread == 1 or len(subjects) == 1:
        return cfg.snr
    position = subjects.index(subject) / (len(subjects) - 1)
    return cfg.snr * cfg.snr_spread ** (2 * position - 1)


def plant_subject(cfg: SimulationConfig, subject: str, atlas_cortex: np.ndarray, subjects: list[str] | None = None,
                  features: tuple[str, ...] = DESCRIPTORS) -> pd.DataFrame:
    """Which cortical voxels respond, with which weights ``w_<feature>`` (unit norm), HRF peak and SNR
    (``subject_snr`` among ``subjects``)."""
    rng = _rng(cfg.seed, "plant", subject)
    names = roi_names()
    ijk = np.argwhere(atlas_cortex > 0)
    labels = atlas_cortex[tuple(ijk.T)]
    roi = np.array([names[label - 1] for label in labels])
    share = np.array([PLANTED_ROIS.get(name.split("_", 1)[1], 0.0) for name in roi])
    planted = (share > 0) & (rng.random(len(ijk)) < cfg.planted_fraction)
    weights = rng.standard_normal((len(ijk), len(features)))
    weights /= np.linalg.norm(weights, axis=1, keepdims=True)
    table = pd.DataFrame({"i": ijk[:, 0], "j": ijk[:, 1], "k": ijk[:, 2], "roi_label": labels, "roi": roi,
                          "planted": planted,
                          "snr": np.where(planted, subject_snr(cfg, subject, subjects) * share, 0.0),
                          "hrf_peak_s": np.where(planted, rng.choice([4.5, 5.5, 6.5], len(ijk)), np.nan)})
    for k, name in enumerate(features):
        table[f"w_{name}"] = np.where(planted, weights[:, k], 0.0)
    return table


def planted_brain_index(brain: np.ndarray, voxels: pd.DataFrame) -> np.ndarray:
    """The planted voxels' positions among the brain mask's voxels (C order)."""
    planted = voxels[voxels["planted"]]
    brain_index = np.full(brain.shape, -1)
    brain_index[brain] = np.arange(int(brain.sum()))
    return brain_index[planted["i"], planted["j"], planted["k"]]


def subject_signal(voxels: pd.DataFrame, run_drives: list[np.ndarray], trs: list[float],
                   features: tuple[str, ...] = DESCRIPTORS) -> list[np.ndarray]:
    """Noise-free planted signal per run (scans × planted voxels) from its drive (scans × features) at its TR (s),
    scaled so that its variance over all runs equals the voxel's SNR (noise has unit variance)."""
    planted = voxels[voxels["planted"]]
    weights = planted[[f"w_{d}" for d in features]].to_numpy()
    runs = []
    for drive, tr in zip(run_drives, trs):
        out = np.zeros((len(drive), len(planted)))
        for peak in np.unique(planted["hrf_peak_s"]):
            cols = np.flatnonzero(planted["hrf_peak_s"].to_numpy() == peak)
            out[:, cols] = convolve_drive(drive, tr, peak) @ weights[cols].T
        runs.append(out)
    stacked = np.concatenate(runs)
    scale = np.sqrt(planted["snr"].to_numpy()) / (stacked.std(axis=0) + 1e-12)
    return [(r - stacked.mean(axis=0)) * scale for r in runs]


def write_bold_run(path: Path, cfg: SimulationConfig, brain: np.ndarray, baseline: np.ndarray,
                   signal: np.ndarray, planted_index: np.ndarray, rng: np.random.Generator, tr: float = TR) -> None:
    """One int16 4-D run of ``len(signal)`` scans of ``tr`` s: baseline × (1 + drift + noise% × (AR(1) noise +
    planted signal))."""
    n_brain, n_scans = int(brain.sum()), len(signal)
    noise = ar1_noise(rng, n_scans, n_brain, cfg.noise_ar)
    noise[:, planted_index] += signal.astype(np.float32)
    values = baseline[brain] * (1 + drift(rng, n_scans, n_brain, tr) + cfg.noise_percent / 100 * noise)
    volume = np.empty(cfg.shape + (n_scans,), dtype=np.int16)
    outside = ~brain
    volume[outside] = np.clip(np.rint(30 + 3 * rng.standard_normal((int(outside.sum()), n_scans))), 0, None)
    volume[brain] = np.clip(np.rint(values.T), -32768, 32767).astype(np.int16)
    with atomic_path(path) as tmp:
        nib.save(_nifti(volume, cfg, tr), tmp)


def bold_sidecar(task: str) -> dict:
    slice_times = list(np.round(np.tile(np.arange(17) * TR / 17, 4), 5))
    return {"Modality": "MR", "MagneticFieldStrength": 3, "Manufacturer": "b2m simulate", "RepetitionTime": TR,
            "EchoTime": 0.03, "FlipAngle": 62, "TaskName": task, "SliceTiming": slice_times,
            "PhaseEncodingDirection": "j-"}


# ---------------------------------------------------------------- the study

@dataclass(frozen=True)
class StudyDesign:
    """What every subject shares: the event order of each run, the stimulus drives (scans × descriptors,
    one per run in BIDS order), the brain geometry and the baseline image."""

    clips: pd.DataFrame
    runs: dict
    run_keys: list
    drives: list
    brain: np.ndarray
    atlas: np.ndarray
    baseline: np.ndarray


def write_subject(cfg: SimulationConfig, design: StudyDesign, subject: str, bids: Path, truth: Path) -> None:
    """One subject's runs (BOLD, events, sidecars) and its truth (planted voxels, noise-free signal)."""
    func = bids / subject / "func"
    func.mkdir(parents=True, exist_ok=True)
    voxels = plant_subject(cfg, subject, design.atlas)
    planted_index = planted_brain_index(design.brain, voxels)
    signals = subject_signal(voxels, design.drives, [TR] * len(design.drives))
    suffix = ".nii.gz" if cfg.gzip_bold else ".nii"
    for (task, number), signal in zip(design.run_keys, signals):
        stem = f"{subject}_task-{task}_run-{number:02d}"
        quirk = 3 if (task, number) == ("Training", 4) else 0
        with atomic_path(func / f"{stem}_events.tsv") as tmp:
            tmp.write_bytes(events_text(design.runs[(task, number)], design.clips, quirk).encode())
        write_json(func / f"{stem}_bold.json", bold_sidecar(task))
        write_bold_run(func / f"{stem}_bold{suffix}", cfg, design.brain, design.baseline, signal, planted_index,
                       _rng(cfg.seed, "noise", subject, task, number))
    log.info("%s: %d runs written, %d planted voxels", subject, len(design.run_keys), len(planted_index))
    write_parquet(truth / f"{subject}_voxels.parquet", voxels, asdict(cfg))
    write_npy(truth / f"{subject}_signal.npy", np.concatenate(signals).astype(np.float32),
              {"rows": "runs in BIDS order (Training then Test) × 410 scans", "columns": "planted voxels"})


@contextlib.contextmanager
def worker_pool(jobs: int):
    """``jobs`` worker processes (forked), or None for one job: the work is done in this process."""
    if jobs <= 1:
        yield None
        return
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        yield pool


def subject_mask_path(atlas_folder: Path, subject: str) -> Path:
    return Path(atlas_folder) / f"{subject}_cortex_mask.nii.gz"


def write_subject_masks(cfg: SimulationConfig, cortex: np.ndarray, atlas_folder: Path) -> dict[str, Path]:
    """With ``voxel_dropout``, each subject's own cortex mask: the cortex without a random share of its voxels
    (drawn per subject), so that subjects have different voxels; none without it."""
    if cfg.voxel_dropout <= 0:
        return {}
    masks = {}
    for subject in subject_ids(cfg.n_subjects):
        kept = cortex & (_rng(cfg.seed, "mask", subject).random(cortex.shape) >= cfg.voxel_dropout)
        masks[subject] = subject_mask_path(atlas_folder, subject)
        with atomic_path(masks[subject]) as tmp:
            nib.save(_nifti(kept.astype(np.uint8), cfg), tmp)
    return masks


def write_atlas(cfg: SimulationConfig, folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Write ``atlas.nii.gz`` + ``atlas.tsv`` (the 12 ROIs) and ``cortex_mask.nii.gz`` to ``folder``; returns the
    brain mask, the cortex mask and the atlas (``brain_geometry``)."""
    brain, cortex, atlas = brain_geometry(cfg.shape)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (("atlas.nii.gz", atlas), ("cortex_mask.nii.gz", cortex.astype(np.uint8))):
        with atomic_path(folder / name) as tmp:
            nib.save(_nifti(data, cfg), tmp)
    with atomic_path(folder / "atlas.tsv") as tmp:
        pd.DataFrame({"index": np.arange(1, len(roi_names()) + 1), "name": roi_names()}).to_csv(
            tmp, sep="\t", index=False)
    return brain, cortex, atlas


def baseline_image(cfg: SimulationConfig, brain: np.ndarray) -> np.ndarray:
    """Every subject's mean image: about 1000 in the brain (sd 150), 30 outside."""
    return np.where(brain, 1000 + 150 * _rng(cfg.seed, "baseline").standard_normal(cfg.shape), 30.0)


def simulate_study(out_dir, cfg: SimulationConfig = SimulationConfig(), jobs: int = 1) -> dict:
    """Write the whole synthetic study under ``out_dir`` (see the module docstring); returns its paths.
    ``jobs`` processes render the clips and write the subjects; the files do not depend on it."""
    out_dir = Path(out_dir)
    bids = out_dir / "ds003720"
    clips, runs = schedule(cfg)
    log.info("simulating %d subjects, %d clips, runs %s", cfg.n_subjects, len(clips), sorted(runs))
    with worker_pool(jobs) as pool:
        descriptors = write_stimuli(cfg, clips, out_dir, pool)
        write_corpus(cfg, out_dir, pool)
    write_captions(clips, out_dir / "captions.csv")

    brain, cortex, atlas = write_atlas(cfg, out_dir / "atlas")
    masks = write_subject_masks(cfg, cortex, out_dir / "atlas")

    write_json(bids / "dataset_description.json", {
        "Name": "b2m synthetic music-genre fMRI (ds003720 layout)", "BIDSVersion": "1.4.0",
        "GeneratedBy": [{"Name": "b2m simulate", "Version": __version__}], "License": "CC0"})
    zdesc = descriptors.set_index(["clip_id", "frame"])[[f"z_{d}" for d in DESCRIPTORS]]
    run_keys = sorted(runs, key=lambda key: (key[0] != "Training", key[1]))
    drives = [np.concatenate([zdesc.loc[cid].to_numpy() for cid in runs[key]]) for key in run_keys]
    truth = out_dir / "truth"
    design = StudyDesign(clips, runs, run_keys, drives, brain, atlas, baseline_image(cfg, brain))
    subjects = subject_ids(cfg.n_subjects)
    write = partial(write_subject, cfg, design, bids=bids, truth=truth)
    with worker_pool(jobs) as pool:
        _each(write, subjects, pool)
    write_parquet(truth / "descriptors.parquet", descriptors, asdict(cfg))
    write_json(truth / "truth.json", {
        "config": asdict(cfg), "tr_s": TR, "descriptors": list(DESCRIPTORS), "planted_rois": PLANTED_ROIS,
        "signal_model": "noise% x (AR(1) unit noise + sum_k w_k HRF*z_descriptor_k scaled to variance snr)",
        "runs": {f"{task}-{number:02d}": runs[(task, number)] for task, number in run_keys}})
    return {"bids_root": bids, "stimuli": out_dir / "stimuli", "corpus": out_dir / "corpus",
            "captions": out_dir / "captions.csv", "atlas": out_dir / "atlas" / "atlas.nii.gz",
            "mask": out_dir / "atlas" / "cortex_mask.nii.gz", "subject_masks": masks, "truth": truth}
