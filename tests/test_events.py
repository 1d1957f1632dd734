"""events.tsv parsing and ds003720's design (``b2m.data.simulate.DESIGN``), on all 90 real ds003720 events files."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from b2m.data.bids import BidsDataset
from b2m.data.captions import read_captions
from b2m.data.design import analysed_events, stimulus_windows, window_starts
from b2m.data.events import read_events
from b2m.data.simulate import DESIGN, GTZAN_GENRES
from b2m.errors import InputError


@pytest.fixture(scope="module")
def dataset(real):
    return BidsDataset(real / "ds003720", DESIGN)


def test_all_real_events_files_parse(real, dataset):
    files = sorted((real / "ds003720").glob("sub-*/func/*_events.tsv"))
    assert len(files) == 90
    assert dataset.subjects() == [f"sub-{i:03d}" for i in range(1, 6)]
    for path in files:
        raw = path.read_bytes()
        assert b"\r\n" in raw and not raw.endswith(b"\n"), "the real quirks are present"
        events = read_events(path)
        assert len(events) == 41
        assert set(events["genre"]) <= set(GTZAN_GENRES)
        assert np.array_equal(events["onset"], np.arange(41) * 15.0)
        # one real row (Training run-12, pop.00049) is 9.59..24.58: 14.99 s
        assert np.allclose(events["end"].astype(float) - events["start"].astype(float), 15.0, atol=0.011)


def test_quoted_and_half_quoted_genres_of_training_run_04(real, dataset):
    path = real / "ds003720/sub-001/func/sub-001_task-Training_run-04_events.tsv"
    assert b"\tclassical'\t" in path.read_bytes() and b"\t'jazz'\t" in path.read_bytes()
    events = read_events(path)
    assert events["genre"].tolist()[-3:] == ["classical", "jazz", "metal"]
    run = next(r for r in dataset.runs("sub-001") if r.events == path)
    kept = run.analysed(DESIGN)
    assert kept["clip_id"].iloc[-3] == "classical.00037"
    assert kept["path"].iloc[-3] == "classical/classical.00037"


def test_stimulus_design_480_training_60_test_clips(dataset):
    table = dataset.stimulus_table()
    train, test = table[table.split == "train"], table[table.split == "test"]
    assert len(train) == 480 and len(test) == 60
    assert set(train.clip_id).isdisjoint(test.clip_id)
    assert (test.genre.value_counts() == 6).all() and len(test.genre.unique()) == 10
    assert (train.genre.value_counts() == 48).all()
    assert (table.label == table.genre).all()
    assert ((table.end - table.start).round(2).isin([14.99, 15.0])).all()
    # every subject hears the same 480 + 60 clips (the table is the union over subjects)
    for subject, heard in dataset.presentations.groupby("subject"):
        for split, clips in heard.groupby("split").clip_id:
            assert set(clips) == set(table.clip_id[table.split == split]), (subject, split)


def test_every_clip_has_one_caption(real, dataset):
    path = real / "brain2music-captions/brain2music-captions.csv"
    clip_ids = dataset.stimulus_table().clip_id
    assert "disco.000011" in set(read_captions(path).clip_id)  # the typo, as written, without the study's ids
    captions = read_captions(path, clip_ids)
    assert len(captions) == 540
    assert "disco.00011" in set(captions.clip_id)  # the disco.000011_15s typo, mended
    assert set(captions.clip_id) == set(clip_ids)


def test_analysed_events_drop_the_lead_in(dataset):
    runs = dataset.runs("sub-001")
    assert [r.task for r in runs] == ["Training"] * 12 + ["Test"] * 6
    assert [r.index for r in runs] == list(range(1, 19)) and [r.run for r in runs] == [*range(1, 13), *range(1, 7)]
    training = [r.analysed(DESIGN) for r in runs if r.split == "train"]
    assert all(len(t) == 40 and t["event"].tolist() == list(range(1, 41)) for t in training)
    every_event = replace(DESIGN, lead_in=0)
    clips = [r.analysed(every_event).clip_id for r in runs]
    assert all(len(c) == 41 for c in clips)
    # the lead-in of run N repeats the last clip of run N-1 (run 1: of run 12)
    for previous, run in zip([clips[11]] + clips[:11], clips[:12]):
        assert run.iloc[0] == previous.iloc[-1]
    for run in runs[12:]:
        kept = run.analysed(DESIGN)
        assert len(kept) == 40 and (kept.groupby("clip_id").size() == 4).all()
        assert sorted(kept["repeat"].unique()) == [0, 1, 2, 3]


def test_windows_tile_the_stimulus():
    assert np.allclose(window_starts(1.5, 1.5, 15.0), np.arange(10) * 1.5)
    assert len(window_starts(5.0, 1.5, 15.0)) == 7 and len(window_starts(10.0, 1.5, 15.0)) == 4
    assert window_starts(15.0, 1.5, 15.0).tolist() == [0.0]
    # a window may end WINDOW_SLACK_S (0.02 s) past its stimulus: pop.00049's 14.99 s excerpt keeps ten windows
    assert len(window_starts(1.5, 1.5, 14.99)) == 10 and len(window_starts(1.5, 1.5, 14.97)) == 9
    assert window_starts(15.0, 1.5, 14.99).tolist() == [0.0]
    with pytest.raises(ValueError, match="does not fit"):
        window_starts(15.0, 1.5, 14.97)


def test_training_run_gives_400_windows_of_1_5_s(dataset):
    run = dataset.runs("sub-001")[0]
    rows = stimulus_windows(run.analysed(DESIGN), 1.5, 1.5, DESIGN.labels)
    assert len(rows) == 400 and rows.columns[:3].tolist() == ["clip_id", "label", "genre"]
    assert rows["run_start_s"].iloc[0] == 15.0 and rows["run_end_s"].iloc[-1] == 615.0


def test_a_template_the_events_cannot_fill_names_the_file(tmp_path):
    """Any genre is a label now (no dataset's names in code); a track that is no number cannot fill
    {track:05d}."""
    path = tmp_path / "sub-001_task-Training_run-01_events.tsv"
    path.write_bytes(b"onset\tduration\tgenre\ttrack\tstart\tend\r\n0\t15\t'polka'\t3\t1\t16\r\n15\t15\tpop\tx\t1\t16")
    events = read_events(path)
    kept = analysed_events(events.iloc[:1], replace(DESIGN, lead_in=0), path.name[:-11], path)
    assert kept[["clip_id", "path", "label"]].values.tolist() == [["polka.00003", "polka/polka.00003", "polka"]]
    with pytest.raises(InputError, match=r"events\.tsv: design\.stimulus\.template .* cannot be filled"):
        analysed_events(events, replace(DESIGN, lead_in=0), path.name[:-11], path)


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "bad_events.tsv"
    path.write_text("onset\tduration\tgenre\ttrack\tstart\n0\t15\t'pop'\t3\t1\n")
    with pytest.raises(InputError, match="no column 'end'"):
        analysed_events(read_events(path), DESIGN, "bad", path)
    path.write_text("onset\tgenre\n0\tpop\n")
    with pytest.raises(InputError, match="missing columns \\['duration'\\]"):
        read_events(path)


def test_template_fields_keep_their_text_unless_an_integer_format():
    """``{track:05d}`` takes the number; ``{name}`` keeps the events' text (``00085``, ``1.5``) as the file is named."""
    events = pd.DataFrame({"onset": [0.0, 10.0, 20.0], "duration": [10.0] * 3, "genre": ["rock"] * 3,
                           "track": ["85", "00085", "1.5"]})
    numbered = replace(DESIGN, tasks=(), lead_in=0, test=None, excerpt_start=None, excerpt_end=None)
    assert analysed_events(events, numbered, "run", "events.tsv").path.tolist()[:2] == ["rock/rock.00085"] * 2
    named = replace(numbered, stimulus_template="{genre}/{track}")
    assert analysed_events(events, named, "run", "events.tsv").path.tolist() == ["rock/85", "rock/00085", "rock/1.5"]


def test_a_stimulus_heard_in_two_test_runs_is_one_test_row_of_both_repeats():
    from b2m.data.responses import repeat_groups, test_repeat_rows

    run = pd.DataFrame({"clip_id": ["a", "a", "b"], "window": [0, 1, 0], "label": "", "run": 1})
    rows = test_repeat_rows([run, run.assign(run=2)])
    assert rows.repeat.tolist() == [0, 0, 0, 1, 1, 1]
    table, codes = repeat_groups(rows)
    assert table.n_repeats.tolist() == [2, 2, 2] and codes.tolist() == [0, 1, 2, 0, 1, 2]
