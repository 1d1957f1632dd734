"""Retrieval from the study's own stimuli: the corpus source ``{path: <stimuli folder>, layout: folder}`` that
``b2m init-config`` writes, with stimuli named as ds004007 names them (``Finlandia.wav`` directly in the folder,
whole pieces as events of ``stim_file``) and in subfolders. Each stimulus is found as a duplicate of itself, a
query's own stimulus and its copies are left out of its candidates and chance draws, the other stimuli stay
candidates, and the original written for listening is capped to the corpus's seconds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from b2m.data.design import analysed_events, stimulus_table
from b2m.data.events import read_events
from b2m.features import make_extractor
from b2m.features.audio import stimulus_path
from b2m.options import DesignOptions
from b2m.reconstruct.corpus import corpus_tracks, embed_track
from b2m.reconstruct.duplicates import excluded_ids, fingerprint_tracks, find_duplicates, query_fingerprints
from b2m.reconstruct.evaluation import evaluate_reconstructions, random_items, retrieved_reconstructions
from b2m.reconstruct.listening import write_retrieval_audio
from b2m.reconstruct.retrieval import retrieve, to_space

RATE = 16000
# stim_file → seconds: two pieces directly in stimuli/ (as ds004007's), two in subfolders.
PIECES = {"Finlandia.wav": 21.0, "Blue_Monk.wav": 17.0, "jazz/Take_Five.wav": 19.0,
          "classical/Waltz_of_Flowers.wav": 23.0}
COPY = "extra/Finlandia_live.flac"  # not a stimulus: a copy of Finlandia at another rate and format


def piece(seconds: float, seed: int) -> np.ndarray:
    """Noise through a random, slowly changing spectral envelope: music-like energy differences over time."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    envelope = np.repeat(rng.uniform(0.2, 1.0, (n // 800 + 1, 1)), 800, axis=0)[:n, 0]
    tone = np.sin(2 * np.pi * rng.uniform(200, 900) * np.arange(n) / RATE)
    return (0.2 * envelope * (rng.standard_normal(n) + tone)).astype(np.float32)


@pytest.fixture()
def study(tmp_path):
    """A stimuli folder, a ds004007-format events file playing every piece once, and the stimulus table."""
    stimuli = tmp_path / "stimuli"
    audio = {}
    for seed, (name, seconds) in enumerate(PIECES.items()):
        (stimuli / name).parent.mkdir(parents=True, exist_ok=True)
        audio[name] = piece(seconds, seed)
        sf.write(stimuli / name, audio[name], RATE)
    (stimuli / COPY).parent.mkdir(parents=True)
    sf.write(stimuli / COPY, np.interp(np.arange(0, len(audio["Finlandia.wav"]), RATE / 22050),
                                       np.arange(len(audio["Finlandia.wav"])), audio["Finlandia.wav"]), 22050)
    events = tmp_path / "sub-01_task-listen_run-01_events.tsv"
    onsets = np.cumsum([0, *PIECES.values()])[:-1]
    events.write_text("onset\tduration\tstim_file\n" + "".join(
        f"{onset:g}\t{seconds:g}\t{name}\n" for onset, (name, seconds) in zip(onsets, PIECES.items())))
    design = DesignOptions(stimulus_column="stim_file")
    kept = analysed_events(read_events(events), design, "sub-01_task-listen_run-01", events)
    table = stimulus_table(kept.assign(split="training", events_file=str(events)), design)
    return {"stimuli": stimuli, "table": table, "tracks": corpus_tracks([{"path": str(stimuli), "layout": "folder"}])}


@pytest.fixture()
def found(study, tmp_path):
    """The duplicates of every stimulus in the stimuli-folder corpus, as find-duplicates finds them."""
    fingerprint_tracks(study["tracks"], tmp_path / "fingerprints.parquet", {})
    clips = study["table"].assign(path=[str(stimulus_path(study["stimuli"], p)) for p in study["table"].path])
    return find_duplicates(query_fingerprints(clips), [tmp_path / "fingerprints.parquet"])


def test_the_stimuli_folder_is_a_corpus_of_unique_ids_matching_the_clips(study):
    table, tracks = study["table"], study["tracks"]
    assert table.clip_id.tolist() == ["Blue_Monk", "Finlandia", "Take_Five", "Waltz_of_Flowers"]
    assert (table.label == "").all() and table.end.tolist() == [17.0, 21.0, 19.0, 23.0]
    assert tracks.track_id.tolist() == ["Blue_Monk", "Finlandia", "classical/Waltz_of_Flowers",
                                        "extra/Finlandia_live", "jazz/Take_Five"]
    assert tracks.track_id.is_unique and (tracks.genre == "").all()


def test_every_stimulus_is_found_as_a_duplicate_of_itself_and_only_the_copy_besides(study, found):
    tracks = study["tracks"].set_index("track_id")
    for clip in study["table"].itertuples():
        mine = found[found.clip_id == clip.clip_id]
        own = mine[mine.path == str(stimulus_path(study["stimuli"], clip.path))]
        assert len(own) == 1 and own.ber.iloc[0] == 0 and abs(own.offset_s.iloc[0]) < 0.05
        assert own.same_id.iloc[0] == (clip.clip_id in tracks.index)  # subfolder ids are paths, not clip ids
    copies = found[found.path != found.clip_id.map(
        dict(zip(study["table"].clip_id, [str(stimulus_path(study["stimuli"], p)) for p in study["table"].path])))]
    assert copies[["clip_id", "track_id"]].values.tolist() == [["Finlandia", "extra/Finlandia_live"]]


def test_a_query_never_gets_its_own_stimulus_or_copy_and_keeps_the_other_stimuli(study, found, tmp_path, caplog):
    table, tracks = study["table"], study["tracks"]
    extractor = make_extractor("acoustic", 1.5, 1.5)
    corpus = np.stack([embed_track(path, extractor, 15.0) for path in tracks.path])
    vectors = corpus[[tracks.path.tolist().index(str(stimulus_path(study["stimuli"], p))) for p in table.path]]
    scale = np.stack([corpus.mean(axis=0), corpus.std(axis=0) + 1e-6])
    true = (vectors - scale[0]) / scale[1]
    predictions = pd.DataFrame({"clip_id": table.clip_id, "label": table.label, "model": "whole-mask",
                                "level": "clip", "predicted": list(true), "true": list(true)})
    with caplog.at_level("WARNING"):
        neighbours = retrieve(predictions, corpus, tracks, scale, "standardised", 10, found)
    assert "some clip leaves only 3 corpus tracks" in caplog.text  # 5 tracks less Finlandia and its copy
    exclude = dict(zip(table.clip_id, excluded_ids(table.clip_id, found)))
    space = to_space(corpus, scale, "standardised")
    unit = space / np.linalg.norm(space, axis=1, keepdims=True)
    for (model, clip), rows in neighbours.groupby(["model", "clip_id"]):
        query = to_space(vectors[table.clip_id.tolist().index(clip)], scale, "standardised")
        allowed = ~tracks.track_id.isin(exclude[clip]).to_numpy()
        similarity = np.where(allowed, unit @ query, -np.inf)
        expected = tracks.track_id.to_numpy()[np.argsort(-similarity, kind="stable")[:3]]
        assert rows.sort_values("rank").track_id.tolist() == expected.tolist()  # the other stimuli compete
    own_files = {clip: str(stimulus_path(study["stimuli"], p)) for clip, p in zip(table.clip_id, table.path)}
    assert not (neighbours.path == neighbours.clip_id.map(own_files)).any()
    assert "extra/Finlandia_live" not in set(neighbours[neighbours.clip_id == "Finlandia"].track_id)
    ids = tracks.track_id.to_numpy()
    picks = np.stack([random_items(list(exclude.values()), ids, np.random.default_rng(s)) for s in range(300)])
    for column, clip in enumerate(exclude):
        assert set(ids[picks[:, column]]) == set(ids) - exclude[clip]  # every other track is a chance draw
    originals = table[["clip_id", "label"]].assign(vector=list(vectors))
    reconstructions = retrieved_reconstructions(neighbours, corpus, tracks, table.clip_id.to_numpy())
    scores = evaluate_reconstructions(originals, reconstructions, corpus, tracks, scale, "standardised", {},
                                      n_chance=20, duplicates=found)
    assert set(scores.metric) == {"identification_accuracy"} and scores.value.between(0, 1).all()


def test_the_original_of_a_long_stimulus_is_capped_to_the_corpus_seconds(study, tmp_path):
    neighbours = pd.DataFrame({"clip_id": "Finlandia", "label": "", "model": "whole-mask", "rank": [1],
                               "track_id": "Blue_Monk", "track_genre": "",
                               "path": str(study["stimuli"] / "Blue_Monk.wav"), "similarity": 0.5})
    listing = write_retrieval_audio(neighbours, study["table"], study["stimuli"], tmp_path / "audio", "whole-mask",
                                    top=3, seconds=8.0)
    assert listing.label.tolist() == ["", ""] and listing.role.tolist() == ["original", "retrieved"]
    for file in listing.file:
        assert sf.info(tmp_path / "audio" / file).duration == pytest.approx(8.0)
