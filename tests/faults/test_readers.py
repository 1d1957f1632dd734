"""Every reader of a study's files refuses a bad file by name: parametrised over each reader of a kind of file (the
steps that read it, and `b2m validate`) × each way the file can be bad.

Files that are not what their name says (empty, corrupt, a FIFO, a link to a device, another format) and files
whose values are out of range (events with a negative duration or an excerpt that ends before it starts, silent
audio, an all-zero mask or atlas, authors' arrays that are all NaN, Inf or constant) must stop the reader with exit
status 2 and one message naming the file, the problem and the fix, and leave no output (nor a temporary) behind.
A FIFO or a device is never opened (opening a FIFO blocks; a device never ends): an alarm fails a test that hangs.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest
import soundfile as sf
import yaml

from b2m.cli import main
from b2m.data.authors import ARRAY_NAMES
from b2m.data.bids import BidsDataset
from b2m.data.simulate import DESIGN
from conftest import REPO
from test_bad_input import DESIGN_OPTIONS, Study, bold, first_clip, rewrite_event_fields, written

SUBJECT = "sub-001"
EVENTS = f"{SUBJECT}/func/{SUBJECT}_task-Training_run-02_events.tsv"


@pytest.fixture(autouse=True)
def never_hangs():
    """A reader that opened a FIFO would wait for a writer for ever: the alarm fails the test instead."""
    def blocked(*_):
        raise TimeoutError("a reader blocked: it opened a FIFO or read a device")

    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def study_files(tiny_study, tmp_path_factory) -> dict:
    """The tiny study, sub-001's cleaned scans (for window-responses) and its arrays in the authors' format (voxels ×
    analysed scans: 400 a training run, 100 a test run), random, so that the authors-arrays step runs."""
    folder, clean = tmp_path_factory.mktemp("authors"), tmp_path_factory.mktemp("clean")
    assert main(["clean-bold", "--bids", str(tiny_study["bids_root"]), "--subject", SUBJECT, "--out",
                 str(clean), "--mask", str(tiny_study["mask"]), "--atlas", str(tiny_study["atlas"]),
                 *DESIGN_OPTIONS]) == 0
    runs = BidsDataset(tiny_study["bids_root"], DESIGN).runs(SUBJECT)
    rng = np.random.default_rng(0)
    for split, width in (("train", 400), ("test", 100)):
        columns = width * sum(run.split == split for run in runs)
        np.save(folder / ARRAY_NAMES[split].format(subject=SUBJECT), rng.standard_normal((40, columns), np.float32))
    return {**tiny_study, "clean": clean, "arrays": folder}


# ---------------------------------------------------------------- the files, and the readers of each kind

def array_path(study: Study, split: str = "train") -> Path:
    return study.path("arrays") / ARRAY_NAMES[split].format(subject=SUBJECT)


FILES: dict[str, Callable[[Study], Path]] = {  # the file of each kind that a case spoils (in the study's copy)
    "events": lambda study: study.copy("bids_root") / EVENTS,
    "sidecar": lambda study: study.copy("bids_root") / EVENTS.replace("_events.tsv", "_bold.json"),
    "bold": lambda study: bold(study, "Training_run-02"),
    "mask": lambda study: study.copy("mask"),
    "atlas": lambda study: study.copy("atlas"),
    "audio": lambda study: first_clip(study)[1],
    "array": lambda study: study.copy("arrays") / ARRAY_NAMES["train"].format(subject=SUBJECT),
    "captions": lambda study: study.copy("captions"),
}


def authors_arrays(study: Study) -> list[str]:
    return ["authors-arrays", "--bids", str(study.path("bids_root")), "--subject", SUBJECT, "--out", str(study.out),
            "--training", str(array_path(study)), "--test", str(array_path(study, "test")), *DESIGN_OPTIONS]


def validate(study: Study, input: str = "bids") -> list[str]:
    """`b2m validate` of the study (its config written beside the output folder), the report under the output."""
    config = {"results": "results", "subjects": [SUBJECT], "folds": ["test"],
              "dataset": {"input": input, "bids_root": str(study.path("bids_root")),
                          "stimuli": str(study.path("stimuli")), "captions": str(study.path("captions")),
                          "authors_arrays": str(study.path("arrays")), "repetition_time": 1.5},
              "design": yaml.safe_load((REPO / "config/config.yaml").read_text())["design"],
              "responses": {"mask": str(study.path("mask")), "atlas": str(study.path("atlas")), "drift": "median",
                            "lag_s": 4.5},
              "features": {"acoustic": {"window_s": 1.5, "stride_s": 1.5},
                           "clap-text": {"window_s": 1.5, "stride_s": 1.5}}}  # clap-text: captions are read
    path = study.tmp / "study.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return ["validate", "--config", str(path), "--report", str(study.out / "validation.txt")]


def find_duplicates(study: Study) -> list[str]:
    """b2m find-duplicates against a corpus of no track: it reads the events and every clip's audio all the same."""
    import pandas as pd

    from b2m.reconstruct.duplicates import FINGERPRINT_COLUMNS, write_fingerprints

    fingerprints = study.tmp / "fingerprints.parquet"
    write_fingerprints(fingerprints, pd.DataFrame(columns=FINGERPRINT_COLUMNS), {})
    return ["find-duplicates", "--bids", str(study.path("bids_root")), "--stimuli", str(study.path("stimuli")),
            "--fingerprints", str(fingerprints), "--out", str(study.out / "duplicates.tsv"), *DESIGN_OPTIONS]


READERS: dict[str, Callable[[Study], list[str]]] = {
    "clean-bold": Study.clean_bold,
    "window-responses": Study.window_responses,
    "features": Study.features,
    "features-clap-text": lambda study: study.features("clap-text", "--captions", str(study.path("captions"))),
    "authors-arrays": authors_arrays,
    "validate": validate,
    "validate-authors-arrays": lambda study: validate(study, "authors-arrays"),
    "find-duplicates": find_duplicates,
}
READERS_OF = {  # every reader of each kind of file
    "events": ["clean-bold", "window-responses", "features", "authors-arrays", "validate", "find-duplicates"],
    "sidecar": ["clean-bold", "window-responses", "authors-arrays", "validate"],
    "bold": ["clean-bold", "validate"],
    "mask": ["clean-bold", "validate"],
    "atlas": ["clean-bold", "validate"],
    "audio": ["features", "validate", "find-duplicates"],
    "array": ["authors-arrays", "validate-authors-arrays"],
    "captions": ["features-clap-text", "validate"],
}


def check_refused(study: Study, reader: str, named: Path, problem: str, caplog) -> None:
    """The reader stops with exit 2 and one message: the file, the problem, a fix; nothing is written."""
    assert main(READERS[reader](study)) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, errors
    assert re.search(rf"{re.escape(str(named))}: .*({problem})", errors[0]), errors[0]
    assert "\n  fix: " in errors[0], errors[0]
    assert written(study.out) == []


def test_the_unspoilt_study_passes_every_reader(study_files, tmp_path):
    """The baseline of the cases below: every reader accepts the study as it is (clap-text's is left out: it would
    load the model after reading the captions; clean-bold ran in ``study_files``)."""
    for reader in ("window-responses", "features", "authors-arrays", "validate", "validate-authors-arrays",
                   "find-duplicates"):
        study = Study(study_files, tmp_path / reader)
        assert main(READERS[reader](study)) == 0, reader


# ---------------------------------------------------------------- files that are not what their name says

def another_format(kind: str, study: Study) -> bytes:
    """The bytes of a real file of another format than ``kind``'s."""
    source = {key: Path(value) for key, value in study.source.items() if isinstance(value, (str, Path))}
    if kind == "array":
        path = study.tmp / "arrays.npz"
        np.savez(path, train=np.ones((4, 4), np.float32))
        return path.read_bytes()
    return {"events": source["captions"], "sidecar": source["bids_root"] / EVENTS,
            "bold": sorted(source["stimuli"].glob("*/*.wav"))[0], "mask": sorted(source["stimuli"].glob("*/*.wav"))[0],
            "atlas": sorted(source["stimuli"].glob("*/*.wav"))[0], "audio": source["mask"],
            "captions": source["bids_root"] / EVENTS}[kind].read_bytes()


def replace(path: Path, make: Callable[[Path], None]) -> None:
    path.unlink()
    make(path)


BAD_FILES = {
    "empty": lambda kind, study, path: path.write_bytes(b""),
    "corrupt": lambda kind, study, path: path.write_bytes(np.random.default_rng(1).bytes(4096)),
    "fifo": lambda kind, study, path: replace(path, os.mkfifo),
    "device": lambda kind, study, path: replace(path, lambda p: p.symlink_to("/dev/zero")),
    "another format": lambda kind, study, path: path.write_bytes(another_format(kind, study)),
}
UNREADABLE = {"events": "cannot read events file", "sidecar": "no valid RepetitionTime",
              "bold": "not a readable NIfTI", "mask": "not a readable NIfTI", "atlas": "not a readable NIfTI",
              "audio": "unreadable audio", "array": "not a .npy array", "captions": "cannot read captions"}
OTHER_FORMAT = {**UNREADABLE, "events": "missing columns", "array": r"an \.npz archive \(np\.savez\), not a \.npy",
                "captions": "not comma-separated"}
PROBLEMS = {
    "empty": lambda kind: r"is empty \(0 bytes\)",
    "corrupt": UNREADABLE.get,
    "fifo": lambda kind: r"is a FIFO \(named pipe\), not a regular file",
    "device": lambda kind: r"is a character device \(.* links to /dev/zero\), not a regular file",
    "another format": OTHER_FORMAT.get,
}
FILE_CASES = [(kind, reader, bad) for kind, readers in READERS_OF.items() for reader in readers for bad in BAD_FILES]


@pytest.mark.parametrize("kind, reader, bad", FILE_CASES, ids=[f"{k}-{r}-{b}" for k, r, b in FILE_CASES])
def test_a_file_that_is_not_what_its_name_says_is_refused_by_every_reader(kind, reader, bad, study_files, tmp_path,
                                                                         caplog):
    study = Study(study_files, tmp_path)
    path = FILES[kind](study)
    BAD_FILES[bad](kind, study, path)
    check_refused(study, reader, path, PROBLEMS[bad](kind), caplog)


# ---------------------------------------------------------------- values out of range

def negative_durations(every: bool):
    def spoil(study: Study) -> None:
        path = study.copy("bids_root") / EVENTS
        lines = path.read_bytes().decode().splitlines()
        for line in range(2, len(lines) + 1) if every else [3]:
            rewrite_event_fields(study, "Training_run-02", line, lambda f: [f[0], "-15", *f[2:]])
    return spoil


def end_before_start(study: Study) -> None:
    rewrite_event_fields(study, "Training_run-02", 4, lambda f: [*f[:4], f[5].strip(), f[4].strip()])


def silent(study: Study) -> None:
    path = FILES["audio"](study)
    audio, rate = sf.read(path)
    sf.write(path, np.zeros_like(audio), rate)


def all_zero(kind: str):
    def spoil(study: Study) -> None:
        path = FILES[kind](study)
        img = nib.load(path)
        nib.save(nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine), path)
    return spoil


def array_of(value: float):
    def spoil(study: Study) -> None:
        path = FILES["array"](study)
        np.save(path, np.full(np.load(path).shape, value, np.float32))
    return spoil


VALUES = {  # kind, how the file is spoilt, what the message says
    "one negative duration": ("events", negative_durations(False), r"column 'duration' is not positive .* on line\(s\) "
                              r"\[3\] \(line 3: -15\)"),
    "every duration negative": ("events", negative_durations(True), r"column 'duration' is not positive .* on "
                                r"line\(s\) \[2, 3, 4, "),
    "an excerpt that ends before it starts": ("events", end_before_start, r"the excerpt of line 4 ends at or before "
                                              r"it starts"),
    "silent stimulus audio": ("audio", silent, r"excerpt .* s is silent"),
    "an all-zero mask": ("mask", all_zero("mask"), "the mask holds no non-zero voxel"),
    "an all-zero atlas": ("atlas", all_zero("atlas"), "the atlas holds no non-zero voxel"),
    "an all-NaN authors' array": ("array", array_of(np.nan), r"every one of its 40 voxels is constant or non-finite "
                                  r"in columns 0\.\.399 \(sub-001_task-Training_run-01\)"),
    "an all-Inf authors' array": ("array", array_of(np.inf), "every one of its 40 voxels is constant or non-finite"),
    "a constant authors' array": ("array", array_of(1.0), "every one of its 40 voxels is constant or non-finite"),
}
VALUE_CASES = [(value, reader) for value, (kind, *_) in VALUES.items() for reader in READERS_OF[kind]]


@pytest.mark.parametrize("value, reader", VALUE_CASES, ids=[f"{v}-{r}".replace(" ", "_") for v, r in VALUE_CASES])
def test_values_out_of_range_are_refused_by_every_reader(value, reader, study_files, tmp_path, caplog):
    kind, spoil, problem = VALUES[value]
    study = Study(study_files, tmp_path)
    spoil(study)
    check_refused(study, reader, FILES[kind](study), problem, caplog)


def test_nan_inf_and_constant_voxels_of_the_authors_arrays_are_dropped_and_counted(study_files, tmp_path, caplog):
    """As clean-bold does with BOLD: a voxel NaN, Inf or constant in one run is left out of both outputs, logged."""
    study = Study(study_files, tmp_path)
    path = FILES["array"](study)
    array = np.load(path)
    array[3, 10], array[5, 500], array[7, 800:1200] = np.nan, np.inf, 2.0
    np.save(path, array)
    caplog.set_level("INFO")
    assert main(authors_arrays(study)) == 0
    assert any("dropping 3 of 40 voxels" in r.getMessage() for r in caplog.records)
    for split in ("train", "test"):
        responses = np.load(study.out / f"{split}.npy")
        assert responses.shape[1] == 37 and np.isfinite(responses).all()
    assert main(validate(study, "authors-arrays")) == 0
    assert "sub-001: 3 of 40 voxels of the authors' arrays are constant or non-finite in a run: dropped" in \
        (study.out / "validation.txt").read_text()


def test_a_refused_validation_leaves_no_report_of_an_earlier_pass(study_files, tmp_path):
    """The report of a pass is removed when the files change and the check refuses them: nothing stale."""
    study = Study(study_files, tmp_path)
    assert main(validate(study)) == 0 and (study.out / "validation.txt").exists()
    silent(study)
    assert main(validate(study)) == 2
    assert written(study.out) == []
