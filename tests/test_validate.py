"""`b2m validate`: every dataset check on a study's files before anything is computed, all problems at once."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import yaml

from b2m.cli import main
from b2m.data.bids import BidsDataset
from b2m.data.simulate import DESIGN
from b2m.data.validate import ValidationReport, _check_stimuli
from conftest import REPO


def real_config(real, path) -> str:
    config = yaml.safe_load((REPO / "config/ds003720.yaml").read_text())
    config["dataset"].update(bids_root=str(real / "ds003720"), stimuli=str(real / "gtzan-sample"),
                             captions=str(real / "brain2music-captions/brain2music-captions.csv"))
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_the_real_metadata_passes_with_its_quirks_listed(real, tmp_path, capsys):
    report = tmp_path / "validation.txt"
    assert main(["validate", "--config", real_config(real, tmp_path / "real.yaml"), "--metadata-only",
                 "--report", str(report)]) == 0
    text = report.read_text()
    assert text == capsys.readouterr().out
    for subject in ("sub-001", "sub-005"):
        assert f"{subject}: runs {{'Training': 12, 'Test': 6}}, TR [1.5] s" in text
    genres = "['blues', 'classical', 'country', 'disco', 'hiphop', 'jazz', 'metal', 'pop', 'reggae', 'rock']"
    assert f"stimuli: 480 training, 60 test, 14.99-15 s, genre {genres}" in text  # pop.00049 is 14.99 s
    assert "captions: 540 of 540" in text
    assert "values in quotes ('" in text and "CRLF" in text
    assert "values with only the closing quote (classical', in sub-001_task-Training_run-04_events.tsv)" in text
    assert text.count("closing quote") == 1 and text.count("values in quotes") == 1  # each quirk once
    assert "caption ID 'disco.000011_15s' read as disco.00011" in text and text.endswith("passed: nothing refused\n")


def test_the_real_test_clips_pass_the_audio_checks(real):
    """The 20 real GTZAN clips of Test run-01 and run-02 (16 kHz copies): found, readable, long enough."""
    table = BidsDataset(real / "ds003720", DESIGN).stimulus_table()
    manifest = pd.read_csv(real / "gtzan-sample/MANIFEST.tsv", sep="\t")
    sample = table[table.clip_id.isin(manifest.file.str.split("/").str[1].str.removesuffix(".wav"))]
    assert len(sample) == 20
    report = ValidationReport()
    _check_stimuli(sample, real / "gtzan-sample", report)
    assert report.problems == []
    assert report.lines == [f"stimuli: 20 of 20 clips' audio found in {real / 'gtzan-sample'}"]


def test_every_problem_is_reported_and_nothing_written(tiny_study, tmp_path, capsys):
    """Two faults in different files: both in the report, exit 2, no report file."""
    bids, stimuli = tmp_path / "ds003720", tmp_path / "stimuli"
    shutil.copytree(tiny_study["bids_root"], bids)
    shutil.copytree(tiny_study["stimuli"], stimuli)
    sidecar = bids / "sub-001/func/sub-001_task-Training_run-03_bold.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "RepetitionTime": 2.0}))
    missing = sorted(stimuli.glob("*/*.wav"))[0]
    missing.unlink()
    config = {"results": "results", "subjects": ["sub-001"], "folds": ["test", "genre-rock"],
              "dataset": {"input": "bids", "bids_root": str(bids), "stimuli": str(stimuli), "repetition_time": 1.5},
              "design": yaml.safe_load((REPO / "config/config.yaml").read_text())["design"],
              "responses": {"mask": str(tiny_study["mask"]), "drift": "median", "lag_s": 4.5},
              "features": {"acoustic": {"window_s": 1.5, "stride_s": 1.5}}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    report = tmp_path / "validation.txt"
    assert main(["validate", "--config", str(tmp_path / "study.yaml"), "--report", str(report)]) == 2
    text = capsys.readouterr().out
    assert "refused: 2 problem(s)" in text and "RepetitionTime 2 s, but the config says 1.5 s" in text
    assert f"no audio file for stimulus {missing.parent.name}/{missing.stem}" in text and "grid 12×14×10 of 2 mm" in text
    assert not report.exists()


def design_report(folder, **design):
    """`validate_study` (metadata only) of a real folder under a design, with cv folds."""
    from b2m.data.validate import validate_study
    from b2m.options import DesignOptions, ValidationOptions

    dataset = BidsDataset(folder, DesignOptions(**design))
    spec = ValidationOptions(subjects=tuple(dataset.subjects()[:2]), folds=("cv-1", "cv-2"), windows=((1.5, 1.5),))
    return validate_study(dataset, spec, 4.5, images=False)


def test_a_new_designs_problems_are_each_named(real, tmp_path):
    """On real designs: a fold scheme that would leak (leave-run-out where runs share the pieces), too few
    stimuli or runs for the cv folds, a label of one value, runs on different TRs; and a sound design passes."""
    pieces = design_report(real / "ds004007", stimulus_column="stim_file")
    assert any("runs share stimuli" in str(p) and "design.cv: stimulus" in str(p) for p in pieces.problems)
    assert not design_report(real / "ds004007", stimulus_column="stim_file", cv="stimulus").problems
    few = design_report(real / "ds004007", stimulus_column="stim_file", cv="stimulus", outer_folds=17)
    assert any("outer_folds = 17 but the design has 16 training stimuli" in str(p) for p in few.problems)
    runs = design_report(real / "ds000171", labels=("trial_type",), drop={"trial_type": ["tones", "response"]},
                         outer_folds=6)
    assert any("outer_folds = 6 exceeds the training runs of a subject (5)" in str(p) for p in runs.problems)
    one = design_report(real / "ds000171", labels=("trial_type",), keep={"trial_type": ["tones"]})
    assert any("label 'trial_type' has one value ('tones')" in str(p) for p in one.problems)
    copy = tmp_path / "ds000171"
    shutil.copytree(real / "ds000171", copy, ignore=shutil.ignore_patterns("sub-mdd*", "sub-control1*"))
    sidecar = copy / "sub-control02/func/sub-control02_task-nonmusic_run-4_bold.json"
    sidecar.write_text(json.dumps({"RepetitionTime": 2.0}))
    trs = design_report(copy, labels=("trial_type",))
    assert any("sub-control02's runs are on different TRs [2.0, 3.0]" in str(p) for p in trs.problems)


def test_a_window_longer_than_the_shortest_stimulus_is_named(real):
    from b2m.data.validate import validate_study
    from b2m.options import ValidationOptions

    dataset = BidsDataset(real / "ds003720", DESIGN)
    spec = ValidationOptions(subjects=("sub-001",), folds=("test",), windows=((20.0, 1.5), (1.5, 1.5)))
    problems = [str(p) for p in validate_study(dataset, spec, 4.5, images=False).problems]
    assert problems == [f"{real / 'ds003720'}: a window of 20 s is longer than stimulus pop.00049 (14.99 s), which "
                        "would have no window\n  fix: make each feature's window_s at most the shortest stimulus's "
                        "duration"]
