"""Fault injection: a small synthetic study in ds003720's layout, mutated on the fly, through the b2m command line.

Every fault in ``FAULTS`` must stop its step with exit status 2 and one message that names the bad file, the
problem and the fix, and leave no output behind. The two that are not errors (constant and NaN voxels) must drop
the voxels, log how many, and keep NaN out of the results. The README's troubleshooting table lists the same
cases, in the same order (a test keeps the two in step).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from b2m.cli import main
from b2m.data.simulate import DESIGN
from b2m.io import load_npy
from conftest import REPO

SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")
# The simulated study's design, as the options document a rule hands a stage that opens the dataset.
DESIGN_OPTIONS = ["--options", json.dumps({"design": dataclasses.asdict(DESIGN)})]


@dataclass
class Study:
    """Paths of the study under test: a pristine one (``source``), copied into ``tmp`` part by part as a fault
    needs to change it (``copy``)."""

    source: dict
    tmp: Path

    def copy(self, name: str) -> Path:
        """The copy of ``name`` (bids_root, stimuli, captions, mask, atlas, responses, features) to mutate."""
        source, target = Path(self.source[name]), self.tmp / name / Path(self.source[name]).name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
        return target

    def path(self, name: str) -> Path:
        """``name``'s copy when a fault made one, else the pristine file."""
        target = self.tmp / name / Path(self.source[name]).name
        return target if target.exists() else Path(self.source[name])

    @property
    def out(self) -> Path:
        return self.tmp / "out"

    def clean_bold(self, *extra) -> list[str]:
        return ["clean-bold", "--bids", str(self.path("bids_root")), "--subject", "sub-001", "--out", str(self.out),
                "--mask", str(self.path("mask")), "--atlas", str(self.path("atlas")), *DESIGN_OPTIONS, *extra]

    def features(self, feature: str = "acoustic", *extra) -> list[str]:
        return ["features", "--bids", str(self.path("bids_root")), "--stimuli", str(self.path("stimuli")),
                "--feature", feature, "--out", str(self.out / f"{feature}.parquet"), *DESIGN_OPTIONS, *extra]

    def window_responses(self, *extra, subject: str = "sub-001") -> list[str]:
        return ["window-responses", "--bids", str(self.path("bids_root")), "--subject", subject, "--clean",
                str(self.path("clean")), "--out", str(self.out), *DESIGN_OPTIONS, *extra]

    def factorise(self) -> list[str]:
        return ["factorise", "--responses", str(self.path("responses")), "--positions", str(self.path("clean")),
                "--out", str(self.out), "--subject", "sub-001", "--n-iter", "1"]

    def decode(self) -> list[str]:
        return ["decode", "--responses", str(self.path("responses")), "--factors", str(self.path("factors")),
                "--features", str(self.path("features")), "--out", str(self.out), "--subject", "sub-001",
                "--n-permutations", "10", "--n-bootstrap", "10"]


def bold(study: Study, run: str) -> Path:
    return study.copy("bids_root") / f"sub-001/func/sub-001_task-{run}_bold.nii"


def rewrite_bold(path: Path, change: Callable[[np.ndarray], np.ndarray], dtype=None) -> None:
    img = nib.load(path, mmap=False)
    data = change(np.asarray(img.dataobj, dtype=dtype).copy())
    header = img.header.copy()
    header.set_data_dtype(data.dtype)
    nib.save(nib.Nifti1Image(data, img.affine, header), path)


def rewrite_events(study: Study, run: str, change: Callable[[str], str]) -> None:
    path = study.copy("bids_root") / f"sub-001/func/sub-001_task-{run}_events.tsv"
    path.write_bytes(change(path.read_bytes().decode()).encode())


def first_clip(study: Study) -> tuple[str, Path]:
    """The first stimulus clip's id and its file in the study's copy of the stimuli."""
    path = sorted(study.copy("stimuli").glob("*/*.wav"))[0]
    return path.stem, path


def mask_and_atlas(study: Study) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mask_img = nib.load(study.source["mask"])
    return mask_img.get_fdata() > 0, nib.load(study.source["atlas"]).get_fdata().astype(np.int32), mask_img.affine


def missing_run(study):
    bold(study, "Training_run-02").unlink()
    return study.clean_bold(), "run-02_bold.nii", "BOLD image missing"


def truncated_nifti(study):
    path = bold(study, "Training_run-02")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return study.clean_bold(), "run-02_bold.nii", "truncated"


def corrupt_nifti_header(study):
    path = bold(study, "Training_run-02")
    data = bytearray(path.read_bytes())
    data[:348] = bytes(range(256)) + bytes(92)
    path.write_bytes(bytes(data))
    return study.clean_bold(), "run-02_bold.nii", "not a readable NIfTI"


def short_run(study):
    rewrite_bold(bold(study, "Test_run-01"), lambda data: data[..., :409])
    return study.clean_bold(), "Test_run-01_bold.nii", "409 scans.*410 scans"


def mask_of_another_shape(study):
    path = study.tmp / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), np.eye(4)), path)
    return study.clean_bold("--mask", str(path)), "mask.nii.gz", "mask grid"


def mask_with_another_affine(study):
    mask, _, affine = mask_and_atlas(study)
    shifted = affine.copy()
    shifted[:3, 3] += 10.0
    path = study.tmp / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), shifted), path)
    return study.clean_bold("--mask", str(path)), "mask.nii.gz", "mask grid"


def sidecar_repetition_time(study):
    path = study.copy("bids_root") / "sub-001/func/sub-001_task-Training_run-03_bold.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "RepetitionTime": 2.0}))
    return study.clean_bold("--tr", "1.5"), "run-03_bold.json", "RepetitionTime 2 s.*1.5 s"


def unknown_genre(study):
    """A genre is a label value of the design, not a fixed list: its stimulus is named by the template, and has no
    audio file."""
    rewrite_events(study, "Training_run-01", lambda text: text.replace("'rock'", "'polka'", 1))
    events = study.copy("bids_root") / "sub-001/func/sub-001_task-Training_run-01_events.tsv"
    track = next(line.split("\t")[3] for line in events.read_text().splitlines() if "polka" in line)
    clip = f"polka/polka.{int(track):05d}"
    return study.features(), f"{clip}.wav", f"no audio file for stimulus {clip}"


def track_without_audio(study):
    clip, path = first_clip(study)
    path.unlink()
    return study.features(), f"{clip}.wav", f"no audio file for stimulus {path.parent.name}/{clip}"


def missing_caption(study):
    path = study.copy("captions")
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    dropped = next(line for line in lines[1:] if line.startswith(first_clip(study)[0]))
    path.write_text("\n".join(line for line in lines if line != dropped) + "\n", encoding="utf-8-sig")
    return study.features("clap-text", "--captions", str(path)), "captions.csv", "no caption for 1 stimuli"


def unreadable_audio(study):
    clip, path = first_clip(study)
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(64))
    return study.features(), f"{clip}.wav", "unreadable audio"


def truncated_audio(study):
    clip, path = first_clip(study)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    return study.features(), f"{clip}.wav", "runs past the end|unreadable audio"


def excerpt_past_the_end(study):
    clip, path = first_clip(study)
    audio, rate = sf.read(path)
    sf.write(path, audio[: 5 * rate], rate)
    return study.features(), f"{clip}.wav", "runs past the end of the 5.00 s audio"


def roi_without_voxels(study):
    mask, atlas, affine = mask_and_atlas(study)
    path = study.tmp / "mask.nii.gz"
    nib.save(nib.Nifti1Image((mask & (atlas != 3)).astype(np.uint8), affine), path)
    return study.clean_bold("--mask", str(path)), "atlas.nii.gz", "ROI label 3 has no voxel in the mask"


def feature_rows_missing(study):
    path = study.copy("features")
    table = pd.read_parquet(path)
    table[table.clip_id != table.clip_id.iloc[0]].to_parquet(path)
    return study.decode(), "acoustic.parquet", "response rows have no feature row"


def feature_rows_twice(study):
    path = study.copy("features")
    table = pd.read_parquet(path)
    pd.concat([table, table.head(1)]).to_parquet(path)
    return study.decode(), "acoustic.parquet", "more than one feature row"


def factors_of_other_responses(study):
    path = study.copy("responses") / "train_rows.parquet"
    rows = pd.read_parquet(path)
    rows["group"] = rows["group"].max() + 1 - rows["group"]  # the inner CV's groups renumbered: other inner splits
    rows.to_parquet(path)
    return study.decode(), "factors.npz", "made for other training rows"


def response_rows_mismatch(study):
    path = study.copy("responses") / "train_rows.parquet"
    pd.read_parquet(path).iloc[:-1].to_parquet(path)
    return study.factorise(), "train.npy", "rows, its row table has"


def rewrite_event_fields(study: Study, run: str, line: int, change: Callable[[list[str]], list[str]]) -> None:
    """Change the tab-separated fields of one line (1-based, the header is line 1) of sub-001's events of ``run``."""
    def rewrite(text: str) -> str:
        newline = "\r\n" if "\r\n" in text else "\n"
        lines = text.split(newline)
        lines[line - 1] = "\t".join(change(lines[line - 1].split("\t")))
        return newline.join(lines)

    rewrite_events(study, run, rewrite)


def overlapping_events(study):
    """Two analysed events overlap (the lead-in on line 2 is not analysed: events that are not may overlap)."""
    rewrite_event_fields(study, "Training_run-02", 4, lambda f: [str(float(f[0]) - 5), *f[1:]])
    return study.clean_bold(), "Training_run-02_events.tsv", "line 4 starts at 25 s, before the previous one ends at 30"


def clip_twice_in_a_training_run(study):
    """A stimulus may be played in several runs (the design's repeats), but always as the same excerpt: run 2 plays
    run 1's first analysed clip with another end."""
    path = study.copy("bids_root") / "sub-001/func/sub-001_task-Training_run-01_events.tsv"
    first = path.read_bytes().decode().splitlines()[2].split("\t")
    rewrite_event_fields(study, "Training_run-02", 4, lambda f: [*f[:2], *first[2:5], str(float(first[5]) - 1)])
    return study.features(), "Training_run-01_events.tsv", "has more than one 'end' across runs"


def run_on_another_grid(study):
    path = bold(study, "Training_run-02")
    img = nib.load(path, mmap=False)
    shifted = img.affine.copy()
    shifted[:3, 3] += 4.0
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), shifted, img.header), path)
    return study.clean_bold(), "Training_run-02_bold.nii", "another affine than the first run's"


def task_named_otherwise(study):
    func = study.copy("bids_root") / "sub-001/func"
    for path in func.glob("*task-Training_*"):
        path.rename(path.with_name(path.name.replace("task-Training", "task-training")))
    return study.clean_bold(), "sub-001", "runs of task-training, the config names task-Training"


def events_differ_between_subjects(study):
    bids = study.copy("bids_root")
    (bids / "sub-002/func").mkdir(parents=True)
    for path in (bids / "sub-001/func").iterdir():
        shutil.copy(path, bids / "sub-002/func" / path.name.replace("sub-001", "sub-002"))
    events = bids / "sub-002/func/sub-002_task-Training_run-02_events.tsv"
    lines = events.read_bytes().decode().split("\r\n" if b"\r\n" in events.read_bytes() else "\n")
    fields = lines[3].split("\t")
    fields[4], fields[5] = str(float(fields[4]) + 1), str(float(fields[5]) + 1)  # the excerpt sub-001 hears, moved
    lines[3] = "\t".join(fields)
    events.write_bytes(("\r\n" if b"\r\n" in events.read_bytes() else "\n").join(lines).encode())
    return study.features(), "sub-001_task-Training_run-02_events.tsv", "has more than one 'start' across runs"


def header_tr_disagrees(study):
    path = bold(study, "Training_run-02")
    img = nib.load(path, mmap=False)
    header = img.header.copy()
    header.set_zooms(header.get_zooms()[:3] + (2.0,))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, header), path)
    return study.clean_bold(), "Training_run-02_bold.nii", r"header's TR \(pixdim\[4\]\) is 2 s.*says 1.5 s"


def run_without_a_usable_voxel(study):
    rewrite_bold(bold(study, "Training_run-03"), lambda data: np.full_like(data, np.nan), dtype=np.float32)
    return study.clean_bold(), "Training_run-03_bold.nii", "every one of the mask's .* voxels is constant or non-finite"


def atlas_with_fractional_labels(study):
    _, atlas, affine = mask_and_atlas(study)
    labels = atlas.astype(np.float32)
    labels[tuple(np.argwhere(atlas == 3)[0])] = 3.5
    path = study.tmp / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(labels, affine), path)
    return study.clean_bold("--atlas", str(path)), "atlas.nii.gz", "non-integer labels .*linear interpolation"


def genre_fold_without_training_clips(study):
    path = study.copy("responses") / "train_rows.parquet"
    rows = pd.read_parquet(path)
    rows.loc[rows.genre == "rock", ["genre", "label"]] = "pop"
    rows.to_parquet(path)
    return [*study.factorise(), "--fold", "genre-rock"], "train_rows.parquet", "fold genre-rock: no row to test on"


def window_shorter_than_the_tr(study):
    return (study.window_responses("--window", "1", "--stride", "1"), "Training_run-01_events.tsv",
            "windows of 1 s hold no scan .*TR is 1.5 s")


def another_subjects_scans(study):
    return study.window_responses(subject="sub-002"), "scans.parquet", "cleaned scans of sub-001, not of sub-002"


def empty_caption(study):
    path = study.copy("captions")
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    lines[1] = lines[1].split(",", 1)[0] + ","
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    return study.features("clap-text", "--captions", str(path)), "captions.csv", "empty caption on line 2"


def captions_not_comma_separated(study):
    path = study.copy("captions")
    pd.read_csv(path, encoding="utf-8-sig").to_csv(path, sep=";", index=False, encoding="utf-8-sig")
    return study.features("clap-text", "--captions", str(path)), "captions.csv", "not comma-separated"


FAULTS = {
    "a missing BOLD run": missing_run,
    "a truncated NIfTI": truncated_nifti,
    "a corrupt NIfTI header": corrupt_nifti_header,
    "a BOLD run shorter than its events (409 of 410 scans)": short_run,
    "a mask of another shape": mask_of_another_shape,
    "a mask with another affine": mask_with_another_affine,
    "a sidecar TR that disagrees with the config": sidecar_repetition_time,
    "an events row naming a stimulus the folder lacks (genre polka)": unknown_genre,
    "a track with no audio file": track_without_audio,
    "a clip with no caption": missing_caption,
    "an unreadable audio file": unreadable_audio,
    "a truncated audio file": truncated_audio,
    "an excerpt past the end of its audio": excerpt_past_the_end,
    "an ROI with no voxels in the mask": roi_without_voxels,
    "feature rows missing for some responses": feature_rows_missing,
    "a feature row given twice": feature_rows_twice,
    "a response array and its row table of different lengths": response_rows_mismatch,
    "a factorisation of other responses": factors_of_other_responses,
    "events that overlap": overlapping_events,
    "a stimulus replayed with another excerpt": clip_twice_in_a_training_run,
    "a run on another grid than the first run (same shape, shifted origin)": run_on_another_grid,
    "runs of a task named otherwise (task-training)": task_named_otherwise,
    "a subject who hears a stimulus as another excerpt": events_differ_between_subjects,
    "a NIfTI header TR that disagrees with the sidecar": header_tr_disagrees,
    "a run whose voxels are all NaN or constant": run_without_a_usable_voxel,
    "an atlas with non-integer labels": atlas_with_fractional_labels,
    "a label fold whose value has no training stimulus": genre_fold_without_training_clips,
    "a window shorter than the TR": window_shorter_than_the_tr,
    "another subject's cleaned scans": another_subjects_scans,
    "an empty caption": empty_caption,
    "a captions file that is not comma-separated": captions_not_comma_separated,
}


def windowed_responses(tiny_study: dict, out: Path) -> None:
    """sub-001's cleaned scans (``out``/clean) and windowed responses (``out``/responses), by the command line."""
    bids = str(tiny_study["bids_root"])
    assert main(["clean-bold", "--bids", bids, *DESIGN_OPTIONS, "--subject", "sub-001", "--out", str(out / "clean"),
                 "--mask", str(tiny_study["mask"]), "--atlas", str(tiny_study["atlas"])]) == 0
    assert main(["window-responses", "--bids", bids, *DESIGN_OPTIONS, "--subject", "sub-001",
                 "--clean", str(out / "clean"), "--out", str(out / "responses")]) == 0


@pytest.fixture(scope="module")
def prepared(tiny_study, tmp_path_factory) -> dict:
    """The tiny study with sub-001's windowed responses and the acoustic features, made by the command line."""
    out = tmp_path_factory.mktemp("prepared")
    bids = str(tiny_study["bids_root"])
    windowed_responses(tiny_study, out)
    assert main(["features", "--bids", bids, *DESIGN_OPTIONS, "--stimuli", str(tiny_study["stimuli"]),
                 "--feature", "acoustic", "--out", str(out / "acoustic.parquet")]) == 0
    assert main(["factorise", "--responses", str(out / "responses"), "--positions", str(out / "clean"),
                 "--out", str(out / "factors"), "--subject", "sub-001", "--n-iter", "1"]) == 0
    return {**{k: v for k, v in tiny_study.items()}, "responses": out / "responses", "clean": out / "clean",
            "features": out / "acoustic.parquet", "factors": out / "factors/factors.npz"}


def written(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.parametrize("fault", FAULTS, ids=[f.__name__ for f in FAULTS.values()])
def test_bad_input_names_the_file_and_the_fix_and_writes_nothing(fault, prepared, tmp_path, caplog):
    study = Study(prepared, tmp_path)
    argv, named, problem = FAULTS[fault](study)
    assert main(argv) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, errors
    message = errors[0]
    assert re.search(rf"{re.escape(named)}: .*({problem})", message), message
    assert "\n  fix: " in message, message
    assert written(study.out) == []


@pytest.mark.parametrize("defect", ["constant", "nan"])
def test_constant_and_nan_voxels_are_dropped_and_counted(defect, prepared, tmp_path, caplog):
    study = Study(prepared, tmp_path)
    mask, _, _ = mask_and_atlas(study)
    i, j, k = np.argwhere(mask)[[4, 9]].T

    def spoil(data):
        data[i, j, k, :] = np.nan if defect == "nan" else 1000
        return data

    rewrite_bold(bold(study, "Training_run-03"), spoil, dtype=np.float32 if defect == "nan" else None)
    caplog.set_level("INFO")
    assert main(study.clean_bold()) == 0
    assert any("dropping 2 of" in r.getMessage() for r in caplog.records)
    scans = load_npy(study.out / "scans.npy")
    assert scans.shape[1] == mask.sum() - 2 and np.isfinite(scans).all()
    assert (nib.load(study.out / "mask.nii.gz").get_fdata()[i, j, k] == 0).all()


CONFIG_FAULTS = {
    "a config key misspelt": (lambda c: c["ridge"].update(cv_fold=5), "cv_fold"),
    "a config value of the wrong type": (lambda c: c["responses"].update(lag_s="four"), r"\['responses'\]\['lag_s'\]"),
    "an unknown feature name": (lambda c: c["features"].update(Clap_Audio={"window_s": 10, "stride_s": 1.5}),
                                "Clap_Audio"),
}


@pytest.mark.parametrize("fault", CONFIG_FAULTS, ids=["typo", "type", "feature"])
def test_config_errors_name_the_key(fault):
    """What Snakemake checks before it plans the DAG (so nothing runs): the schema error names the key."""
    config = copy.deepcopy(yaml.safe_load((REPO / "config/config.yaml").read_text()))
    mutate, named = CONFIG_FAULTS[fault]
    mutate(config)
    with pytest.raises(WorkflowError, match=named):
        validate(config, SCHEMA)


STUDY_FAULTS = {
    "config keys that contradict each other": (lambda c: c.update(folds=["test", "cv-7"]),
                                               r"folds \['cv-7'\] are not among cv-1 .. cv-4 \(outer_folds = 4\)"),
    "a subject listed twice": (lambda c: c.update(subjects=["sub-001", "sub-002", "sub-001"]),
                               r"subjects \['sub-001'\] are listed twice"),
    "a window_s shorter than dataset.repetition_time": (
        lambda c: c["features"]["acoustic"].update(window_s=1.0),
        r"features \['acoustic'\] have a window_s shorter than dataset.repetition_time \(1.5 s\)"),
    "a listening-test foil scheme on a label the design lacks (`foils: [mood-matched]`)": (
        lambda c: c["reconstruction"].setdefault("listening_test", {}).update(foils=["mood-matched"]),
        r"reconstruction.listening_test.foils \['mood-matched'\] match on no label of design.labels \['genre'\]"),
}


@pytest.mark.parametrize("fault", STUDY_FAULTS, ids=["folds", "subjects", "window", "foils"])
def test_contradicting_config_keys_stop_before_planning(fault):
    """Keys valid alone but not together: the study model refuses them, naming the keys and the fix."""
    from b2m.study import ConfigError, Study

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    mutate, named = STUDY_FAULTS[fault]
    mutate(config)
    with pytest.raises(ConfigError, match=named):
        Study(config)


def test_readme_lists_every_fault():
    """README's troubleshooting table has one row per fault here, in this order."""
    readme = (REPO / "README.md").read_text()
    section = re.split(r"\n##+ ", readme.split("## Troubleshooting", 1)[1], maxsplit=1)[0]  # to the next heading
    rows = re.findall(r"^\| ([^|]+?) \|", section, re.MULTILINE)
    expected = [*FAULTS, "constant or NaN voxels", *CONFIG_FAULTS, *STUDY_FAULTS]
    assert [row for row in rows if row not in ("bad input", "---")] == expected
