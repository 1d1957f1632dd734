"""The design data layer (``BidsDataset`` with a ``DesignOptions``) on two more real designs and a synthetic folder
with sessions: ds004007 (whole pieces named by ``stim_file``, both runs playing every piece, a top-level sidecar
and per-run ones) and ds000171 (a block design with labels only, unpadded run numbers, top-level sidecars only, the
same run number holding different tasks in different subjects)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from b2m.data.bids import BidsDataset
from b2m.data.design import check_cv_scheme, stimulus_folds, stimulus_windows
from b2m.errors import InputError
from b2m.options import DesignOptions

PIECES = DesignOptions(tasks=("listen",), stimulus_column="stim_file", cv="stimulus")
BLOCKS = DesignOptions(tasks=("music", "nonmusic"), labels=("trial_type",), drop={"trial_type": ["response"]})


def raw_events(path: Path) -> list[dict]:
    """An events file read by the csv module: the reference the data layer is compared with."""
    with path.open(newline="") as file:
        return list(csv.DictReader(file, delimiter="\t"))


@pytest.fixture(scope="module")
def pieces(real):
    return BidsDataset(real / "ds004007", PIECES)


@pytest.fixture(scope="module")
def blocks(real):
    return BidsDataset(real / "ds000171", BLOCKS)


# ---------------------------------------------------------------- ds004007: whole pieces, stim_file


def test_ds004007_runs_without_sessions_inherit_the_top_level_sidecar(real, pieces):
    root = real / "ds004007"
    assert pieces.subjects() == [f"sub-{i:02d}" for i in range(1, 26)]
    runs = pieces.runs("sub-01")
    assert [(r.stem, r.task, r.run, r.index, r.split) for r in runs] == [
        (f"sub-01_task-listen_run-0{n}", "listen", n, n, "train") for n in (1, 2)]
    top = json.loads((root / "task-listen_bold.json").read_text())
    for run in runs:
        own = run.events.with_name(f"{run.stem}_bold.json")
        assert run.sidecars == [root / "task-listen_bold.json", own] and run.sidecar == own
        metadata = run.metadata()
        assert metadata == {**top, **json.loads(own.read_text())}  # the run's own wins
        assert metadata["TaskName"] == "Listen" and "TaskName" not in json.loads(own.read_text())  # inherited
    assert {run.repetition_time() for s in pieces.subjects() for run in pieces.runs(s)} == {1.0}


def test_ds004007_stimulus_table_is_the_16_pieces_both_runs_play(real, pieces):
    table = pieces.stimulus_table()
    reference = {(row["stim_file"], float(row["duration"]))
                 for path in sorted((real / "ds004007").glob("sub-*/func/*_events.tsv")) for row in raw_events(path)}
    assert len(table) == 16 and set(zip(table.path, table.end - table.start)) == reference
    assert (table.start == 0).all() and (table.end - table.start).min() == 89 and (table.end - table.start).max() == 225
    assert (table.clip_id == table.path.str.removesuffix(".wav")).all() and (table.split == "train").all()
    heard = pieces.presentations
    assert len(heard) == 25 * 2 * 16 and (heard.groupby(["subject", "run"]).clip_id.nunique() == 16).all()
    assert (heard.repeat == 0).all() and pieces.runs_share_stimuli()
    with pytest.raises(InputError, match="runs share stimuli"):
        check_cv_scheme(DesignOptions(stimulus_column="stim_file", cv="run"), pieces.runs_share_stimuli(),
                        real / "ds004007")
    check_cv_scheme(PIECES, pieces.runs_share_stimuli(), real / "ds004007")  # held-out pieces: no leak
    folds = stimulus_folds(table, 4)
    assert sorted(folds.index) == sorted(table.clip_id) and folds.value_counts().tolist() == [4, 4, 4, 4]


def test_ds004007_pieces_are_windowed_over_their_own_length(pieces):
    kept = pieces.runs("sub-01")[0].analysed(PIECES)
    rows = stimulus_windows(kept, 10.0, 1.5)
    seconds = dict(zip(kept.clip_id, kept.end - kept.start))
    counts = rows.groupby("clip_id").size()
    assert {clip: int(counts[clip]) for clip in seconds} == {
        clip: int(np.floor((length - 10.0) / 1.5)) + 1 for clip, length in seconds.items()}
    assert counts["Finlandia"] == 144 and counts["Blue_Monk"] == 53  # 225 s and 89 s
    assert (rows.end_s <= rows.clip_id.map(seconds) + 1e-9).all()


# ---------------------------------------------------------------- ds000171: labels only, unpadded runs


def test_ds000171_unpadded_runs_and_top_level_sidecars_only(real, blocks):
    root = real / "ds000171"
    assert len(blocks.subjects()) == 39 and blocks.subjects()[:2] == ["sub-control01", "sub-control02"]
    runs = blocks.runs("sub-control01")
    assert [r.stem for r in runs] == [f"sub-control01_task-{t}_run-{n}" for t, n in
                                      [("music", 1), ("music", 2), ("music", 3), ("nonmusic", 4), ("nonmusic", 5)]]
    assert [r.run for r in runs] == [1, 2, 3, 4, 5] and all(r.events.name == f"{r.stem}_events.tsv" for r in runs)
    for run in runs:
        top = root / f"task-{run.task}_bold.json"
        assert run.sidecars == [top] and run.metadata() == json.loads(top.read_text())
        assert run.repetition_time() == 3.0 and len(run.metadata()["SliceTiming"]) == 50


def test_ds000171_rows_come_from_each_subjects_own_files(real, blocks):
    """Run 1 is a music run of sub-control01 and a non-music run of sub-control03: each subject's presentations are
    its own files' events (responses left out), each event a stimulus of its own known by its trial_type."""
    heard = blocks.presentations
    for subject, task in (("sub-control01", "music"), ("sub-control03", "nonmusic")):
        run = next(r for r in blocks.runs(subject) if r.run == 1)
        assert run.task == task
        path = real / "ds000171" / subject / "func" / f"{subject}_task-{task}_run-1_events.tsv"
        expected = [(float(row["onset"]), row["trial_type"]) for row in raw_events(path)
                    if row["trial_type"] != "response"]
        mine = heard[(heard.subject == subject) & (heard.run == run.index)]
        assert list(zip(mine.onset, mine.label)) == expected
        assert set(mine.events_file) == {str(path)}
        assert mine.clip_id.tolist() == [f"{run.stem}_event-{e:03d}" for e in mine.event] and (mine.path == "").all()
    for (subject, index), rows in heard.groupby(["subject", "run"]):
        run = blocks.runs(subject)[index - 1]
        assert set(rows.events_file) == {str(run.events)} and run.events.parent.parent.name == subject
        assert set(rows.label) <= {"tones", f"positive_{run.task}", f"negative_{run.task}"}
    table = blocks.stimulus_table()
    assert len(table) == len(heard) and not blocks.runs_share_stimuli()
    assert table.label.value_counts().to_dict() == {"tones": 972, "negative_music": 234, "positive_music": 234,
                                                    "negative_nonmusic": 155, "positive_nonmusic": 155}


def test_ds000171_tasks_select_runs_per_subject(real):
    music = BidsDataset(real / "ds000171", DesignOptions(tasks=("music",), labels=("trial_type",)))
    assert [(r.run, r.index) for r in music.runs("sub-control01")] == [(1, 1), (2, 2), (3, 3)]
    assert [(r.run, r.index) for r in music.runs("sub-control03")] == [(3, 1), (4, 2), (5, 3)]
    with pytest.raises(InputError, match="task-music, the config names task-Music"):
        BidsDataset(real / "ds000171", DesignOptions(tasks=("Music",))).runs("sub-control01")


# ---------------------------------------------------------------- a synthetic folder with sessions


def write_sidecar(path: Path, **metadata) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metadata))


def write_events(path: Path, pieces: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["onset\tduration\tstim_file", *(f"{10 * n}\t10\t{piece}" for n, piece in enumerate(pieces))]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def sessions(tmp_path) -> Path:
    """sub-01 in two sessions (run-1 in each), sub-02 without sessions, sub-03 with anatomy only; sidecars at the
    root, the subject's and a session's level and one of its own, and two that the runs must not inherit (another
    task's, another acquisition's)."""
    root = tmp_path / "study"
    write_sidecar(root / "task-listen_bold.json", RepetitionTime=2.0, EchoTime=0.03, TaskName="listen")
    write_sidecar(root / "task-rest_bold.json", RepetitionTime=9.0)
    write_sidecar(root / "sub-01/sub-01_task-listen_bold.json", RepetitionTime=1.5)
    write_sidecar(root / "sub-01/sub-01_task-listen_acq-fast_bold.json", RepetitionTime=0.5)
    write_sidecar(root / "sub-01/ses-2/sub-01_ses-2_task-listen_bold.json", EchoTime=0.02)
    write_sidecar(root / "sub-01/ses-2/func/sub-01_ses-2_task-listen_run-1_bold.json", RepetitionTime=1.0)
    write_events(root / "sub-01/ses-2/func/sub-01_ses-2_task-listen_run-1_events.tsv", ["b.wav", "c.wav"])
    write_events(root / "sub-01/ses-1/func/sub-01_ses-1_task-listen_run-1_events.tsv", ["a.wav", "b.wav"])
    write_events(root / "sub-02/func/sub-02_task-listen_run-1_events.tsv", ["a.wav", "c.wav"])
    (root / "sub-03/anat").mkdir(parents=True)
    return root


def test_sessions_and_the_inheritance_order(sessions):
    dataset = BidsDataset(sessions, DesignOptions(stimulus_column="stim_file", cv="stimulus"))
    assert dataset.subjects() == ["sub-01", "sub-02"]
    first, second = dataset.runs("sub-01")
    assert (first.stem, first.run, first.index) == ("sub-01_ses-1_task-listen_run-1", 1, 1)
    assert (second.stem, second.run, second.index) == ("sub-01_ses-2_task-listen_run-1", 1, 2)
    assert first.sidecars == [sessions / "task-listen_bold.json", sessions / "sub-01/sub-01_task-listen_bold.json"]
    assert second.sidecars == [sessions / "task-listen_bold.json", sessions / "sub-01/sub-01_task-listen_bold.json",
                               sessions / "sub-01/ses-2/sub-01_ses-2_task-listen_bold.json",
                               sessions / "sub-01/ses-2/func/sub-01_ses-2_task-listen_run-1_bold.json"]
    assert first.repetition_time() == 1.5  # the subject's sidecar over the root's
    assert second.metadata() == {"RepetitionTime": 1.0, "EchoTime": 0.02, "TaskName": "listen"}  # nearest wins
    (only,) = dataset.runs("sub-02")
    assert only.sidecars == [sessions / "task-listen_bold.json"] and only.repetition_time() == 2.0
    assert dataset.stimulus_table().clip_id.tolist() == ["a", "b", "c"]
    assert dataset.runs_share_stimuli()  # sub-01 hears b in both sessions
    assert dataset.presentations.groupby("subject").run.max().to_dict() == {"sub-01": 2, "sub-02": 1}


def test_a_run_with_no_sidecar_to_inherit_is_named(sessions):
    (sessions / "task-listen_bold.json").unlink()
    (run,) = BidsDataset(sessions, PIECES).runs("sub-02")
    with pytest.raises(InputError, match="sub-02_task-listen_run-1_bold.json: no BOLD sidecar.*task-listen_bold.json"):
        run.repetition_time()


def test_a_stimulus_with_two_excerpts_across_subjects_is_refused(sessions):
    """The stimulus table is the union over every subject's events: a stimulus keeps its excerpt everywhere."""
    path = sessions / "sub-02/func/sub-02_task-listen_run-1_events.tsv"
    path.write_text(path.read_text().replace("0\t10\ta.wav", "0\t8\ta.wav"))
    dataset = BidsDataset(sessions, DesignOptions(stimulus_column="stim_file"))
    with pytest.raises(InputError, match="stimulus a has more than one 'end' across runs"):
        dataset.stimulus_table()
