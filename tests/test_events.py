"""events.tsv parsing and the stimulus design, on all 90 real ds003720 events files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from b2m import GTZAN_GENRES
from b2m.data.bids import BidsDataset
from b2m.data.simulate import DESIGN
from b2m.data.captions import read_captions
from b2m.data.events import analysed_events, read_events, stimulus_windows, window_starts
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
        assert np.allclose(events["end"] - events["start"], 15.0, atol=0.011)


def test_half_quoted_genres_of_training_run_04(real):
    path = real / "ds003720/sub-001/func/sub-001_task-Training_run-04_events.tsv"
    assert b"\tclassical'\t" in path.read_bytes()
    events = read_events(path)
    assert events["genre"].tolist()[-3:] == ["classical", "jazz", "metal"]
    assert events["clip_id"].iloc[-3] == "classical.00037"


def test_stimulus_design_480_training_60_test_clips(dataset):
    table = dataset.stimulus_table()
    train, test = table[table.split == "train"], table[table.split == "test"]
    assert len(train) == 480 and len(test) == 60
    assert set(train.clip_id).isdisjoint(test.clip_id)
    assert (test.genre.value_counts() == 6).all() and len(test.genre.unique()) == 10
    assert (train.genre.value_counts() == 48).all()
    for subject in dataset.subjects()[1:]:
        pd.testing.assert_frame_equal(dataset.stimulus_table(subject), table)


def test_every_clip_has_one_caption(real, dataset):
    captions = read_captions(real / "brain2music-captions/brain2music-captions.csv")
    assert len(captions) == 540
    assert "disco.00011" in set(captions.clip_id)  # the disco.000011_15s typo, mended
    assert set(captions.clip_id) == set(dataset.stimulus_table().clip_id)


def test_analysed_events_drop_the_lead_in(dataset):
    runs = dataset.runs("sub-001")
    training = [analysed_events(read_events(r.events)) for r in runs if r.split == "train"]
    assert all(len(t) == 40 for t in training)
    # the lead-in of run N repeats the last clip of run N-1 (run 1: of run 12)
    for previous, run in zip([runs[11]] + runs[:11], runs[:12]):
        assert read_events(run.events).clip_id.iloc[0] == read_events(previous.events).clip_id.iloc[-1]
    for run in runs[12:]:
        kept = analysed_events(read_events(run.events))
        assert len(kept) == 40 and (kept.groupby("clip_id").size() == 4).all()
        assert sorted(kept["repeat"].unique()) == [0, 1, 2, 3]


def test_windows_tile_the_clip():
    assert np.allclose(window_starts(1.5, 1.5), np.arange(10) * 1.5)
    assert len(window_starts(5.0, 1.5)) == 7 and len(window_starts(10.0, 1.5)) == 4
    assert window_starts(15.0, 1.5).tolist() == [0.0]


def test_training_run_gives_400_windows_of_1_5_s(dataset):
    rows = stimulus_windows(read_events(dataset.runs("sub-001")[0].events), 1.5, 1.5)
    assert len(rows) == 400
    assert rows["run_start_s"].iloc[0] == 15.0 and rows["run_end_s"].iloc[-1] == 615.0


def test_unknown_genre_names_file_and_line(tmp_path):
    path = tmp_path / "sub-001_task-Training_run-01_events.tsv"
    path.write_bytes(b"onset\tduration\tgenre\ttrack\tstart\tend\r\n0\t15\t'polka'\t3\t1\t16")
    with pytest.raises(InputError, match=r"events\.tsv.*polka.*line\(s\) \[2\]"):
        read_events(path)


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "bad_events.tsv"
    path.write_text("onset\tduration\tgenre\ttrack\tstart\n0\t15\t'pop'\t3\t1\n")
    with pytest.raises(InputError, match="missing columns \\['end'\\]"):
        read_events(path)
