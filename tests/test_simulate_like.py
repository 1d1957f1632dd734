"""`b2m simulate --like`: small planted-truth twins of three real designs (shared/real), read back as the pipeline
reads them. Each twin is one subject on a 12×14×10 grid with 8 kHz stimuli (to keep the tests fast)."""

from __future__ import annotations

import hashlib
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy.stats import gamma

from b2m.cli import main
from b2m.data.bids import BidsDataset
from b2m.data.events import read_events
from b2m.features.audio import stimulus_path
from b2m.options import DesignOptions
from conftest import REAL

SMALL = ("--subjects", "1", "--shape", "12", "14", "10", "--snr", "1", "--audio-rate", "8000")
TEMPLATE = "{genre}/{genre}.{track:05d}"
# name → (the flags of its twin, its design as the pipeline's config would give it, the files the twin copies)
TWINS = {
    "ds004007": (("--runs", "1", "--max-seconds", "400"), DesignOptions(stimulus_column="stim_file"),
                 {"dataset_description.json", "task-listen_bold.json",
                  *[f"sub-01/func/sub-01_task-listen_run-01_{kind}" for kind in ("events.tsv", "bold.json")]}),
    "ds000171": (("--labels", "trial_type", "--runs", "2"), DesignOptions(labels=("trial_type",)),
                 {"dataset_description.json", "participants.tsv", "task-music_bold.json", "task-nonmusic_bold.json",
                  *[f"sub-control01/func/sub-control01_task-{task}_run-{run}_events.tsv"
                    for task, run in (("music", 1), ("music", 2), ("nonmusic", 4), ("nonmusic", 5))]}),
    "ds003720": (("--stimulus-template", TEMPLATE, "--excerpt", "start", "end", "--labels", "genre", "--runs", "2",
                  "--tasks", "Test"),
                 DesignOptions(tasks=("Test",), stimulus_template=TEMPLATE, excerpt_start="start", excerpt_end="end",
                               labels=("genre",)),
                 {"dataset_description.json", *[f"sub-001/func/sub-001_task-Test_run-0{run}_{kind}"
                                                for run in (1, 2) for kind in ("events.tsv", "bold.json")]}),
}


def make_twin(name: str, out, *extra) -> None:
    assert main(["simulate", "--like", str(REAL / name), str(out), *SMALL, *TWINS[name][0], *extra]) == 0


@pytest.fixture(scope="module", params=list(TWINS))
def twin(request, tmp_path_factory):
    """(name, the twin's output folder) of each real design."""
    out = tmp_path_factory.mktemp(request.param)
    make_twin(request.param, out)
    return request.param, out


def digests(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_twin_copies_the_events_and_sidecars_in_the_source_layout(twin):
    name, out = twin
    bids = out / name
    copied = {path for path in digests(bids) if not path.startswith("stimuli/") and not path.endswith(".nii.gz")}
    assert copied == TWINS[name][2]
    for relative in copied:
        source, copy = (REAL / name / relative).read_bytes(), (bids / relative).read_bytes()
        if name == "ds004007" and relative.endswith("_events.tsv"):  # --max-seconds 400: the events up to 400 s
            assert source.startswith(copy) and len(copy) < len(source)
            kept = read_events(REAL / name / relative).query("onset <= 400")
            pd.testing.assert_frame_equal(read_events(bids / relative), kept)
            assert len(kept) == 3
        else:
            assert copy == source, relative
    assert not list(bids.rglob("*truth*")) and (out / "truth" / "truth.json").is_file()


def test_the_pipeline_reads_the_same_runs_and_finds_every_stimulus(twin):
    name, out = twin
    design = TWINS[name][1]
    source, copy = BidsDataset(REAL / name, design), BidsDataset(out / name, design)
    assert copy.subjects() == source.subjects()[:1]
    subject = copy.subjects()[0]
    copied = {path.rsplit("/", 1)[1][: -len("_events.tsv")] for path in TWINS[name][2] if path.endswith("events.tsv")}
    source_runs = {run.stem: run for run in source.runs(subject) if run.stem in copied}
    assert [run.stem for run in copy.runs(subject)] == list(source_runs)
    assert [run.repetition_time() for run in copy.runs(subject)] == [
        run.repetition_time() for run in source_runs.values()]
    stimuli = copy.stimulus_table()
    audio = sorted((out / name / "stimuli").rglob("*.wav"))
    if not design.has_stimuli:
        heard = set(np.concatenate([run.read_events().trial_type for run in source_runs.values()]))
        assert not audio and set(stimuli.label) == heard
        return
    assert len(audio) == len(stimuli) > 0
    for row in stimuli.itertuples():
        info = sf.info(stimulus_path(out / name / "stimuli", row.path))
        assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
        assert info.duration >= row.end


def test_each_run_is_int16_bold_at_its_tr_lasting_past_its_last_event(twin):
    name, out = twin
    dataset = BidsDataset(out / name, TWINS[name][1])
    for run in dataset.runs(dataset.subjects()[0]):
        img = nib.load(run.bold)
        tr = run.repetition_time()
        assert img.get_data_dtype() == np.int16 and img.shape[:3] == (12, 14, 10)
        assert run.header_repetition_time(img) == pytest.approx(tr)
        events = run.read_events()
        last_end = float((events.onset + events.duration).max())
        assert last_end + 6 <= img.shape[3] * tr <= last_end + 6 + 5 * tr


def detrended(series: np.ndarray) -> np.ndarray:
    """``series`` (scans × voxels) less a cubic trend (the simulated drift)."""
    trend = np.polynomial.legendre.legvander(np.linspace(-1, 1, len(series)), 3)
    return series - trend @ np.linalg.lstsq(trend, series, rcond=None)[0]


def correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a - a.mean(0), b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a ** 2).sum(0) * (b ** 2).sum(0))


def voxel_series(dataset: BidsDataset, subject: str, voxels: pd.DataFrame) -> list[np.ndarray]:
    """Each run's detrended time course (scans × voxels) of ``voxels`` (i, j, k)."""
    return [detrended(np.asarray(nib.load(run.bold).dataobj, dtype=float)[voxels.i, voxels.j, voxels.k].T)
            for run in dataset.runs(subject)]


def test_planted_voxels_follow_their_planted_signal_and_the_others_do_not(twin):
    name, out = twin
    dataset = BidsDataset(out / name, TWINS[name][1])
    subject = dataset.subjects()[0]
    voxels = pd.read_parquet(out / "truth" / f"{subject}_voxels.parquet")
    planted = voxels[voxels.planted]
    other = voxels[~voxels.planted].head(len(planted))
    signal = np.load(out / "truth" / f"{subject}_signal.npy")
    assert signal.shape == (sum(nib.load(r.bold).shape[3] for r in dataset.runs(subject)), len(planted))
    bold = np.concatenate(voxel_series(dataset, subject, planted))
    unplanted = np.concatenate(voxel_series(dataset, subject, other))
    assert correlations(bold, signal).mean() > 0.3
    assert abs(correlations(unplanted, signal).mean()) < 0.1


def boxcar_regressors(run, tr: float, n_scans: int, labels: list[str]) -> np.ndarray:
    """One regressor per label (scans × labels): the events' boxcars convolved with a gamma HRF peaking at 5 s."""
    events = run.read_events()
    fine = np.arange(n_scans * 10) * tr / 10
    boxcars = np.stack([((fine[:, None] >= events.onset[events.trial_type == label].to_numpy())
                         & (fine[:, None] < (events.onset + events.duration)[events.trial_type == label].to_numpy()))
                        .any(1) for label in labels], axis=1).astype(float)
    hrf = gamma.pdf(np.arange(0, 30, tr / 10), 6)
    return np.stack([np.convolve(b, hrf)[:len(fine)] for b in boxcars.T], axis=1)[5::10]


def test_in_a_labels_only_design_planted_voxels_respond_to_the_labels(tmp_path):
    """Independently of the simulator's drive: each label's boxcars from the copied events, with an HRF of this
    test's own, explain the planted voxels' time courses and not the others'."""
    make_twin("ds000171", tmp_path)
    dataset = BidsDataset(tmp_path / "ds000171", TWINS["ds000171"][1])
    subject = dataset.subjects()[0]
    voxels = pd.read_parquet(tmp_path / "truth" / f"{subject}_voxels.parquet")
    labels = json.loads((tmp_path / "truth" / "truth.json").read_text())["features"]
    assert labels == sorted(set(np.concatenate([r.read_events().trial_type for r in dataset.runs(subject)])))
    explained = {True: [], False: []}
    for planted, chosen in ((True, voxels[voxels.planted]), (False, voxels[~voxels.planted].head(200))):
        for run, series in zip(dataset.runs(subject), voxel_series(dataset, subject, chosen)):
            design = detrended(boxcar_regressors(run, run.repetition_time(), len(series), labels))
            fit = design @ np.linalg.lstsq(design, series, rcond=None)[0]
            explained[planted].append(1 - ((series - fit) ** 2).sum(0) / (series ** 2).sum(0))
    assert np.mean(explained[True]) > 0.3 > 0.1 > np.mean(explained[False])


def test_the_same_seed_writes_the_same_bytes_and_another_seed_other_bold(tmp_path):
    for folder, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        make_twin("ds003720", tmp_path / folder, "--runs", "1", "--seed", seed)
    first, again, other = (digests(tmp_path / folder) for folder in "abc")
    assert first == again and len(first) > 20
    changed = {path for path in first if first[path] != other[path]}
    assert any(p.endswith("_bold.nii.gz") for p in changed) and any(p.endswith(".wav") for p in changed)
    assert not any(p.endswith(("_events.tsv", "_bold.json")) for p in changed)


@pytest.mark.parametrize("flags", [(), ("--labels", "genre"), ("--max-seconds", "-1", "--labels", "trial_type")])
def test_a_design_the_events_cannot_hold_is_refused_before_anything_is_written(flags, tmp_path):
    out = tmp_path / "twin"
    assert main(["simulate", "--like", str(REAL / "ds000171"), str(out), *SMALL, *flags]) == 2
    assert not out.exists()


def test_design_flags_without_like_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="--like"):
        main(["simulate", str(tmp_path / "out"), "--labels", "genre"])
