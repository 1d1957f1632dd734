"""`b2m init-config`: a commented config inferred from a BIDS folder, on the real metadata of three designs
(ds004007: whole pieces in stim_file; ds000171: a block design with labels only; ds003720: excerpts named by a
template, with a declared test task), read back by the study model, with every choice under its comment."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf

from b2m.cli import main
from b2m.data.infer import names_no_stimulus
from b2m.options import lookup
from b2m.study import load_study

DS003720 = ["--stimulus-template", "{genre}/{genre}.{track:05d}", "--labels", "genre"]


def key_comments(text: str) -> dict[str, str]:
    """Dotted key → the comment lines directly above it (joined)."""
    found, pending, parents = {}, [], []
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        if body.startswith("#"):
            pending.append(body[1:].strip())
            continue
        if not body:
            pending = []
            continue
        parents = parents[: indent // 2]
        key = body.split(":", 1)[0]
        found[".".join([*parents, key])] = " ".join(pending)
        parents.append(key)
        pending = []
    return found


def loose_comments(text: str) -> str:
    """Every comment line of the file, joined."""
    return " ".join(line.strip()[1:].strip() for line in text.splitlines() if line.strip().startswith("#"))


FOLDERS = {"ds004007": [], "ds000171": [], "ds003720": DS003720}


@pytest.fixture(scope="module")
def written(real, tmp_path_factory):
    """Folder name → (config text, Study) of `b2m init-config` on that real folder, made on first use."""
    out = tmp_path_factory.mktemp("init-config")

    class Written(dict):
        def __missing__(self, name):
            path = out / f"{name}.yaml"
            assert main(["init-config", str(real / name), *FOLDERS[name], "-o", str(path)]) == 0
            self[name] = (path.read_text(), load_study(path))
            return self[name]

    return Written()


# The keys every written config decides, each under a comment of its own.
DECIDED = ["results", "dataset", "dataset.input", "dataset.bids_root", "dataset.stimuli", "subjects", "design",
           "design.tasks", "design.lead_in", "design.cv", "outer_folds", "folds", "responses", "responses.mask",
           "responses.atlas", "responses.drift", "responses.lag_s", "features", "decoding.models",
           "encoding.n_permutations"]
# The keys a written config decides where the design calls for them.
DECIDED_WHERE_SET = ["responses.drift_window_s", "encoding.banded", "encoding.permutation_block_s",
                     "decoding.segment_s"]


@pytest.mark.parametrize("name", ["ds004007", "ds000171", "ds003720"])
def test_every_choice_has_its_comment(written, name):
    text, study = written[name]
    comments = key_comments(text)
    keys = DECIDED + [f"features.{f}" for f in study.features] + [
        f"design.{k}" for k in ("stimulus", "labels", "drop", "test") if k in study.config["design"]]
    keys += [f"reconstruction.{k}" for k in study.config.get("reconstruction", {})]
    keys += ["dataset.repetition_time", *[key for key in DECIDED_WHERE_SET if lookup(study.config, key)]]
    assert {key: comments.get(key, "") for key in keys if not comments.get(key)} == {}
    assert set(comments) >= set(keys)


def test_ds004007_whole_pieces_in_stim_file(written, real):
    text, study = written["ds004007"]
    design, comments = study.design, key_comments(text)
    assert (design.stimulus_column, design.stimulus_template, design.excerpt_start) == ("stim_file", None, None)
    assert study.config["dataset"]["repetition_time"] == 1.0
    assert "task-listen_bold.json" in comments["dataset.repetition_time"]
    assert len(study.subjects) == 25 and study.subjects[0] == "sub-01"
    assert design.labels == () and not design.drop and not design.test
    assert design.cv == "stimulus" and "16 stimuli are heard in more than one run" in comments["design.cv"]
    assert "would be trained on" in comments["design.cv"]
    assert "16 stimuli of 89-225 s" in comments["design"] and "train: 2× (16 stimuli)" in comments["design"]
    assert design.outer_folds == 4 and study.folds == ["cv-1", "cv-2", "cv-3", "cv-4"]
    assert "min(4, 16 training stimuli)" in comments["outer_folds"]
    assert study.features["acoustic"].window_s == 1.5 == study.features["acoustic"].stride_s
    assert list(study.features) == ["acoustic"] and study.banded == []
    assert study.stimuli_folder() == str(real / "ds004007" / "stimuli")
    assert "0 of the 16 files" in comments["dataset.stimuli"]  # the audio is git-annex content, not copied
    recon = study.config["reconstruction"]
    assert recon["corpus"]["sources"] == [{"path": str(real / "ds004007" / "stimuli"), "layout": "folder"}]
    assert recon["corpus"]["cache"] == "results-ds004007/corpus-cache" and recon["corpus"]["chunks"] == 2
    assert study.reconstructed_folds == study.folds and not study.listening_test
    assert study.config["results"] == "results-ds004007"
    assert "no <label>-<value> folds" in comments["folds"]


def test_ds000171_block_design_with_labels_only(written):
    text, study = written["ds000171"]
    design, comments = study.design, key_comments(text)
    assert not design.has_stimuli and "labels-only design" in loose_comments(text)
    assert design.labels == ("trial_type",) and "['trial_type']" in comments["design.labels"]
    assert design.drop == {"trial_type": ["response", "tones"]}
    assert "left out" in comments["design.drop"]
    assert design.cv == "run" and design.outer_folds == 4 and "5 training runs" in comments["outer_folds"]
    assert study.config["dataset"]["repetition_time"] == 3.0
    assert set(design.tasks) == {"music", "nonmusic"} and len(study.subjects) == 39
    assert study.features["trial-type"].extractor == "labels" and study.features["trial-type"].column == "trial_type"
    assert study.window_of("trial-type") == (3.0, 3.0)
    assert "reconstruction" not in study.config and not study.reconstructed
    assert "no identification" in comments["features"] and "no retrieval" in comments["features"]
    # runs of 213-312 s by their events: too short for the 240 s running median, a polynomial per run instead
    assert study.config["responses"]["drift"] == "polynomial" and "213" in comments["responses.drift"]
    assert "drift_window_s" not in study.config["responses"] and "segment_s" not in study.config["decoding"]
    assert "trial_type-negative_music" in comments["folds"]


def test_ds003720_excerpts_and_a_declared_test_task(written):
    text, study = written["ds003720"]
    design, comments = study.design, key_comments(text)
    assert design.stimulus_template == "{genre}/{genre}.{track:05d}"
    assert (design.excerpt_start, design.excerpt_end) == ("start", "end")
    assert "end - start equals the event's duration" in comments["design.stimulus"]
    assert design.labels == ("genre",) and design.test == {"task": "Test"}
    assert "holds 'test'" in comments["design.test"] and study.folds == ["test"]
    assert study.reconstructed_folds == ["test"]
    # with lead_in 0 each training run's first event repeats the previous run's last clip: stimuli are shared
    assert design.lead_in == 0 and design.cv == "stimulus" and "lead_in: 1 and cv: run" in comments["design.cv"]
    assert "test: 4× (54 stimuli), 5× (6 stimuli)" in comments["design"]
    assert study.banded == ["acoustic", "genre"] and study.features["genre"].column == "genre"
    assert study.config["dataset"]["repetition_time"] == 1.5
    assert study.config["responses"]["drift_window_s"] == 240


@pytest.mark.slow  # about 30 s: validate reads every events file of the 69 subjects
@pytest.mark.parametrize("name", ["ds004007", "ds000171", "ds003720"])
def test_validate_passes_on_the_written_config(written, name, tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(written[name][0])
    assert main(["validate", "--config", str(path), "--metadata-only"]) == 0
    assert "passed: nothing refused" in capsys.readouterr().out


def test_non_stimulus_vocabulary():
    assert all(map(names_no_stimulus, ["response", "button_press", "Fixation", "n/a", "rest", "tones", "catch"]))
    assert not any(map(names_no_stimulus, ["positive_music", "negative_nonmusic", "blues", "Finlandia.wav"]))


def write_study(root, rows_of_run):
    """A small BIDS folder: two subjects, two runs each, one top-level sidecar (TR 2 s)."""
    (root / "task-listen_bold.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "task-listen_bold.json").write_text('{"RepetitionTime": 2.0}')
    for subject in ("sub-01", "sub-02"):
        func = root / subject / "func"
        func.mkdir(parents=True)
        for run, rows in enumerate(rows_of_run, start=1):
            lines = ["onset\tduration\tpiece\tmood", *("\t".join(map(str, row)) for row in rows)]
            (func / f"{subject}_task-listen_run-{run}_events.tsv").write_text("\n".join(lines) + "\n")


def test_a_column_naming_audio_files_is_the_stimulus(tmp_path):
    """No stim_file: the first text column whose values name files in the stimuli folder is the stimulus; a
    fixation value of it is left out; the mood column, constant per piece, is the label; runs share no piece."""
    root = tmp_path / "study"
    write_study(root, [[(0, 4, "fixation", "n/a"), (4, 20, "a", "happy"), (24, 20, "b", "sad")],
                       [(0, 4, "fixation", "n/a"), (4, 20, "c", "happy"), (24, 20, "d", "sad")]])
    (root / "stimuli").mkdir()
    for piece in "abcd":
        sf.write(root / "stimuli" / f"{piece}.wav", np.zeros(800, dtype=np.float32), 8000)
    out = tmp_path / "config.yaml"
    assert main(["init-config", str(root), "--results", "out", "-o", str(out)]) == 0
    study = load_study(out)
    assert study.design.stimulus_column == "piece" and study.design.labels == ("mood",)
    assert study.design.drop == {"piece": ["fixation"], "mood": ["n/a"]}
    assert study.design.cv == "run" and study.design.outer_folds == 2 and study.folds == ["cv-1", "cv-2"]
    assert study.window_of("acoustic") == (2.0, 2.0) and study.config["results"] == "out"
    assert "4 of the 4 files" in key_comments(out.read_text())["dataset.stimuli"]


def test_a_folder_with_neither_stimulus_nor_label_is_refused_and_nothing_written(tmp_path, caplog):
    root = tmp_path / "study"
    write_study(root, [[(0, 20, "x", "1"), (20, 20, "x", "2")], [(0, 20, "x", "3"), (20, 20, "x", "4")]])
    out = tmp_path / "config.yaml"
    assert main(["init-config", str(root), "-o", str(out)]) == 2
    assert not out.exists() and re.search(r"no column labels them.*fix: give the stimulus", caplog.text, re.S)
