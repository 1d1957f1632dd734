"""Reconstruction: corpus layouts and the index in chunks with its vector cache, retrieval with leave-self-out, the
audio written for listening, and the scores of reconstructions (identification, top-n class agreement, oracle and
chance)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from b2m.errors import InputError
from b2m.evaluate import class_agreement, top_n_classes
from b2m.features import make_extractor
from b2m.cli import main
from b2m.layout import CorpusFiles
from b2m.reconstruct.corpus import (VectorCache, chunk_listing, chunk_of, corpus_tracks, embed_track,
                                    extractor_fingerprint, gather_index, index_chunk, list_tracks, read_index)
from b2m.reconstruct.evaluation import Reconstructions, evaluate_reconstructions, random_items
from b2m.reconstruct.labels import CorpusClassifier, make_labelers
from b2m.reconstruct.listening import write_retrieval_audio
from b2m.reconstruct.retrieval import clip_queries, retrieve, to_space

RATE = 16000


def tone(seconds, freq, rate=RATE):
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def write(path, seconds=16.0, freq=440.0, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, freq), RATE, **options)
    return path


@pytest.fixture()
def gtzan(tmp_path):
    root = tmp_path / "gtzan"
    for number, genre in enumerate(["blues", "jazz", "rock"]):
        for track in range(2):
            write(root / genre / f"{genre}.{track:05d}.wav", freq=200 + 150 * number + 20 * track)
    (root / "jazz" / "notes.txt").write_text("not audio")
    return root


def test_gtzan_layout_ids_and_genres(gtzan, caplog):
    write(gtzan / "jazz" / "outtake.wav")
    tracks = list_tracks(gtzan, "gtzan")
    assert "1 audio files do not follow the gtzan layout and are left out (e.g." in caplog.text
    assert tracks.track_id.tolist() == ["blues.00000", "blues.00001", "jazz.00000", "jazz.00001", "rock.00000",
                                        "rock.00001"]
    assert tracks.genre.tolist() == ["blues"] * 2 + ["jazz"] * 2 + ["rock"] * 2


def test_fma_layout_reads_genres_from_tracks_csv(tmp_path):
    root = tmp_path / "fma_large"
    write(root / "000" / "000002.mp3", format="MP3")
    write(root / "000" / "000005.mp3", format="MP3")
    write(root / "001" / "001040.mp3", format="MP3")
    csv = tmp_path / "tracks.csv"  # FMA's two header rows, then the index name row
    csv.write_text(",album,track,track\n,id,genre_top,title\ntrack_id,,,\n2,1,Hip-Hop,Food\n5,1,,Electric Ave\n"
                   "1040,7,Rock,x\n")
    tracks = list_tracks(root, "fma", csv)
    assert tracks.track_id.tolist() == ["fma-2", "fma-5", "fma-1040"]
    assert tracks.genre.tolist() == ["Hip-Hop", "", "Rock"]
    with pytest.raises(InputError, match="tracks.csv"):
        list_tracks(root, "fma")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not FMA's tracks.csv"):
        list_tracks(root, "fma", bad)


def test_folder_layout_and_errors(tmp_path, gtzan):
    tracks = list_tracks(gtzan, "folder")
    assert "jazz/jazz.00001" in tracks.track_id.tolist() and (tracks.genre == "").all()
    with pytest.raises(InputError, match="does not exist"):
        list_tracks(tmp_path / "nowhere", "gtzan")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no audio files"):
        list_tracks(tmp_path / "empty", "folder")
    with pytest.raises(InputError, match="appear twice"):
        corpus_tracks([{"path": gtzan, "layout": "gtzan"}, {"path": gtzan, "layout": "gtzan"}])


class CountingExtractor:
    """The acoustic extractor, counting the tracks it embeds."""

    def __init__(self):
        self.inner = make_extractor("acoustic", 1.5, 1.5)
        self.name, self.input, self.dim = "acoustic", "audio", self.inner.dim
        self.window, self.stride, self.sample_rate = 1.5, 1.5, self.inner.sample_rate
        self.calls = 0

    def embed(self, audio, starts):
        self.calls += 1
        return self.inner.embed(audio, starts)


def index_in_chunks(tracks, extractor, out, cache, n_chunks=3, **excerpt):
    """The chunk jobs of ``tracks`` then their gather, as the workflow runs them."""
    fingerprint = extractor_fingerprint(extractor, excerpt.get("seconds", 15.0), 0.0, None)
    folders = [CorpusFiles(out).chunk(n) for n in range(n_chunks)]
    for n, folder in enumerate(folders):
        index_chunk(chunk_listing(tracks, n, n_chunks), extractor, folder, VectorCache(cache, fingerprint), **excerpt)
    return gather_index(tracks, folders, out)


def test_index_skips_bad_tracks_with_reasons_and_reuses_cached_vectors(gtzan, tmp_path, caplog):
    (gtzan / "rock" / "rock.00002.wav").write_bytes(b"RIFF garbage")
    write(gtzan / "rock" / "rock.00003.wav", seconds=1.0)
    tracks, out, cache = list_tracks(gtzan, "gtzan"), tmp_path / "index", tmp_path / "cache"
    extractor = CountingExtractor()
    assert index_in_chunks(tracks, extractor, out, cache) == {"n_tracks": 6, "n_skipped": 2, "dim": extractor.dim}
    skipped = pd.read_csv(out / "skipped.tsv", sep="\t")
    assert skipped.track_id.tolist() == ["rock.00002", "rock.00003"]
    assert skipped.reason.str.contains("unreadable").iloc[0] and skipped.reason.str.contains("shorter").iloc[1]
    assert "skipped rock.00002" in caplog.text
    vectors, table = read_index(out)
    assert vectors.shape == (6, extractor.dim) and table.track_id.tolist() == tracks.track_id[:6].tolist()
    np.testing.assert_array_equal(vectors[2], embed_track(tracks.path[2], make_extractor("acoustic", 1.5, 1.5), 15.0))

    again = CountingExtractor()  # another results folder (another config or study) over the same audio
    index_in_chunks(tracks, again, tmp_path / "second", cache)
    assert again.calls == 0 and read_index(tmp_path / "second")[0].tobytes() == vectors.tobytes()
    write(gtzan / "jazz" / "jazz.00001.wav", freq=900.0)  # rewritten in place: same name, other audio
    changed = CountingExtractor()
    index_in_chunks(tracks, changed, out, cache)
    assert changed.calls == 1
    remade = read_index(out)[0]
    assert not np.array_equal(remade[3], vectors[3]) and np.array_equal(np.delete(remade, 3, 0), np.delete(vectors, 3, 0))
    other_settings = CountingExtractor()
    index_in_chunks(tracks, other_settings, tmp_path / "third", cache, seconds=10.0)
    assert other_settings.calls == 6  # another excerpt length: no cached vector applies


def test_a_track_keeps_its_chunk_when_others_are_added_or_removed(tmp_path):
    ids = [f"fma-{n}" for n in range(2000)]
    before = chunk_of(ids, 16)
    assert np.array_equal(chunk_of(ids[:700] + ids[701:], 16), np.delete(before, 700))
    assert np.array_equal(chunk_of(["fma-99999"] + ids, 16)[1:], before)
    assert sorted(np.bincount(before, minlength=16))[0] > 2000 / 16 * 0.7  # every chunk about its share


def test_gathered_chunks_equal_every_track_embedded_in_listing_order(gtzan, tmp_path, caplog):
    """The workflow's chunk jobs (list-chunk, index-chunk) gathered, and ``b2m index --embed`` by hand, both write
    the index one loop over the listing would: each readable track's vector, in listing order."""
    (gtzan / "rock" / "rock.00002.wav").write_bytes(b"RIFF garbage")
    source = json.dumps({"path": str(gtzan), "layout": "gtzan"})
    for n in range(3):
        listing = tmp_path / f"listing/chunk-{n}.parquet"
        assert main(["list-chunk", "--sources", source, "--chunks", "3", "--chunk", str(n), "--out", str(listing)]) == 0
        assert main(["index-chunk", "--feature", "acoustic", "--tracks", str(listing), "--vector-cache",
                     str(tmp_path / "cache"), "--out", str(CorpusFiles(tmp_path / "chunked").chunk(n).path)]) == 0
    common = ["--feature", "acoustic", "--sources", source, "--chunks", "3", "--vector-cache"]
    assert main(["index", *common, str(tmp_path / "cache"), "--out", str(tmp_path / "chunked")]) == 0
    assert main(["index", *common, str(tmp_path / "fresh"), "--embed", "--out", str(tmp_path / "single")]) == 0
    tracks = list_tracks(gtzan, "gtzan").query("track_id != 'rock.00002'")
    extractor = make_extractor("acoustic", 1.5, 1.5)
    expected = np.stack([embed_track(path, extractor, 15.0) for path in tracks.path]).astype(np.float32)
    for index in ("chunked", "single"):
        vectors, table = read_index(tmp_path / index)
        assert vectors.tobytes() == expected.tobytes() and table.track_id.tolist() == tracks.track_id.tolist()
        assert pd.read_csv(tmp_path / index / "skipped.tsv", sep="\t").track_id.tolist() == ["rock.00002"]
    assert main(["index", *common, str(tmp_path / "cache"), "--out", str(tmp_path / "none")]) == 2
    assert "3 of the index's 3 chunks are not made" in caplog.text and not (tmp_path / "none").exists()


def test_gather_refuses_a_track_in_no_chunk(gtzan, tmp_path):
    tracks = list_tracks(gtzan, "gtzan")
    index_in_chunks(tracks, CountingExtractor(), tmp_path / "index", tmp_path / "cache")
    write(gtzan / "blues" / "blues.00007.wav")
    with pytest.raises(InputError, match="corpus changed after its chunks were made"):
        gather_index(list_tracks(gtzan, "gtzan"), [CorpusFiles(tmp_path / "index").chunk(n) for n in range(3)],
                     tmp_path / "index")


def test_index_refuses_clip_level_extractors(tmp_path, gtzan):
    with pytest.raises(InputError, match="audio extractor"):
        index_chunk(chunk_listing(list_tracks(gtzan, "gtzan"), 0, 1), make_extractor("labels", 1.5, 1.5),
                    CorpusFiles(tmp_path).chunk(0), VectorCache(tmp_path, {}))


def predictions_table(clips, predicted, true):
    return pd.DataFrame({"clip_id": clips, "label": [c.split(".")[0] for c in clips], "model": "whole-mask",
                         "level": "clip", "predicted": list(predicted), "true": list(true)})


@pytest.mark.parametrize("space", ["raw", "standardised"])
def test_retrieval_is_brute_force_cosine_without_the_clip_itself(space):
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((300, 16)) * rng.uniform(0.1, 10, 16) + rng.standard_normal(16)
    tracks = pd.DataFrame({"track_id": [f"t{i}" for i in range(300)], "path": "", "genre": "", "source": ""})
    scale = np.stack([corpus.mean(axis=0), corpus.std(axis=0)])
    clips = ["t3", "t10", "other"]
    true = (corpus[[3, 10, 0]] - scale[0]) / scale[1]
    predicted = true + 0.01 * rng.standard_normal(true.shape)
    neighbours = retrieve(predictions_table(clips, predicted, true), corpus, tracks, scale, space, k=5)
    assert set(neighbours.model) == {"whole-mask", "oracle"}
    space_corpus = to_space(corpus, scale, space)
    unit = space_corpus / np.linalg.norm(space_corpus, axis=1, keepdims=True)
    for model, values in (("whole-mask", predicted), ("oracle", true)):
        queries = to_space(values * scale[1] + scale[0], scale, space)
        similarity = queries / np.linalg.norm(queries, axis=1, keepdims=True) @ unit.T
        similarity[0, 3] = similarity[1, 10] = -np.inf  # leave-self-out
        expected = np.argsort(-similarity, axis=1, kind="stable")[:, :5]
        got = neighbours[neighbours.model == model]  # clips in query order, ranks ascending
        assert got.clip_id.tolist() == list(np.repeat(clips, 5)) and got["rank"].tolist() == [1, 2, 3, 4, 5] * 3
        np.testing.assert_array_equal(got.track_id.to_numpy().reshape(3, 5), np.asarray(tracks.track_id)[expected])
    assert not ((neighbours.clip_id == neighbours.track_id).any())
    assert (neighbours[(neighbours.clip_id == "other") & (neighbours["rank"] == 1)].track_id == "t0").all()


def test_class_agreement_formula():
    scores = np.array([[0.9, 0.05, 0.05, 0.0], [0.1, 0.2, 0.3, 0.4]])
    np.testing.assert_array_equal(top_n_classes(scores, 2), [[0, 1], [3, 2]])
    np.testing.assert_array_equal(class_agreement(scores, scores, 2), [1.0, 1.0])
    other = np.array([[0.0, 0.1, 0.5, 0.4], [0.1, 0.2, 0.3, 0.4]])  # top-2 {2, 3} vs {0, 1}; {3, 2} vs {3, 2}
    np.testing.assert_array_equal(class_agreement(scores, other, 2), [0.0, 1.0])
    np.testing.assert_array_equal(class_agreement(scores, other, 3), [2 / 3, 1.0])  # {0,1,2} ∩ {2,3,1} = {1,2}
    rng = np.random.default_rng(0)
    unrelated = class_agreement(rng.random((20000, 10)), rng.random((20000, 10)), 3)
    assert abs(unrelated.mean() - 3 / 10) < 0.01  # chance: n / classes


def labelled_corpus(n_per_genre=30, dim=12, seed=0):
    rng = np.random.default_rng(seed)
    genres = ["blues", "jazz", "rock", "pop"]
    centres = rng.standard_normal((len(genres), dim)) * 3
    labels = np.repeat(genres, n_per_genre)
    vectors = centres[np.repeat(np.arange(len(genres)), n_per_genre)] + rng.standard_normal((len(labels), dim))
    ids = [f"{g}.{i:05d}" for g in genres for i in range(n_per_genre)]
    return vectors.astype(np.float32), pd.DataFrame({"track_id": ids, "path": "", "genre": labels, "source": ""})


def test_identical_reconstructions_score_one_and_chance_sits_at_its_level():
    corpus, tracks = labelled_corpus()
    test = np.arange(0, 120, 6)
    originals = pd.DataFrame({"clip_id": tracks.track_id[test].to_numpy(), "label": tracks.genre[test].to_numpy(),
                              "vector": list(corpus[test])})
    scale = np.stack([corpus.mean(axis=0), corpus.std(axis=0)])
    training = ~tracks.track_id.isin(originals.clip_id)
    labelers = {"genre": CorpusClassifier().fit(corpus[training.to_numpy()], tracks.genre[training])}
    recon = {("retrieval", "perfect"): Reconstructions(corpus[test][None], tracks.genre[test].to_numpy())}
    table = evaluate_reconstructions(originals, recon, corpus, tracks, scale, "standardised", labelers, n_chance=200,
                                     label="genre")
    perfect = table[table.model == "perfect"].set_index("metric").value
    assert perfect.identification_accuracy == 1.0
    assert perfect.genre_agreement_top1 == perfect.genre_agreement_top2 == perfect.genre_agreement_top3 == 1.0
    assert perfect.genre_match == 1.0
    chance = table[table.model == "chance"].set_index("metric")
    assert abs(chance.value.identification_accuracy - 0.5) < 0.05
    assert abs(chance.value.genre_match - 0.25) < 0.05  # 4 balanced genres
    assert abs(chance.value.genre_agreement_top1 - 0.25) < 0.06
    assert (chance.chance_sd > 0).all() and (chance.n_samples == 200).all()


def test_random_items_never_pick_the_clip_itself_or_its_duplicates():
    ids = np.array(["a", "b", "c", "d"])
    picks = np.concatenate([random_items([{"a"}, {"b", "c"}], ids, np.random.default_rng(s)) for s in range(200)])
    assert not (ids[picks[0::2]] == "a").any() and not np.isin(ids[picks[1::2]], ["b", "c"]).any()
    assert set(ids[picks[1::2]]) == {"a", "d"}


def test_retrieval_audio_writes_original_and_top_tracks(gtzan, tmp_path):
    tracks = list_tracks(gtzan, "gtzan")
    clips = pd.DataFrame({"clip_id": ["blues.00000"], "path": ["blues/blues.00000"], "label": ["blues"],
                          "start": [0.5], "end": [15.5]})
    neighbours = pd.DataFrame({"clip_id": "blues.00000", "label": "blues", "model": "whole-mask", "rank": [1, 2, 3, 4],
                               "track_id": tracks.track_id[1:5].to_numpy(), "track_genre": tracks.genre[1:5].to_numpy(),
                               "path": tracks.path[1:5].to_numpy(), "similarity": [0.9, 0.8, 0.7, 0.6]})
    listing = write_retrieval_audio(neighbours, clips, gtzan, tmp_path / "audio", "whole-mask", top=3, seconds=15)
    assert listing.role.tolist() == ["original", "retrieved", "retrieved", "retrieved"]
    for file in listing.file:
        audio, rate = sf.read(tmp_path / "audio" / file)
        assert rate == RATE and len(audio) == 15 * RATE and 0.85 < np.abs(audio).max() <= 0.9
    assert not (tmp_path / "audio" / "blues.00000" / "top4.flac").exists()


def test_clip_queries_add_the_oracle():
    table = predictions_table(["a.00000", "b.00000"], np.zeros((2, 3)), np.ones((2, 3)))
    queries = clip_queries(pd.concat([table, table.assign(level="window")]))
    assert list(queries) == ["whole-mask", "oracle"]
    np.testing.assert_array_equal(np.stack(queries["oracle"].vector), np.ones((2, 3)))


def test_classifier_never_trains_on_the_test_clips():
    corpus, tracks = labelled_corpus()
    tracks.loc[tracks.genre == "pop", "genre"] = "only-in-test"  # a label held by test clips alone
    test_clips = tracks.track_id[tracks.genre == "only-in-test"]
    labelers = make_labelers(corpus, tracks, test_clips, "genre")
    assert list(labelers) == ["genre"] and "only-in-test" not in labelers["genre"].classes_
    with pytest.raises(ValueError, match="need a CLAP extractor"):
        make_labelers(corpus, tracks, test_clips, "genre", label_sets={"mood": ["happy", "sad"]},
                      extractor=make_extractor("acoustic", 1.5, 1.5))
    unlabelled = tracks.assign(genre="")
    assert make_labelers(corpus, unlabelled, test_clips, "genre") == {}


def test_class_agreement_is_named_after_the_design_label_and_absent_without_one(caplog):
    """The same reconstructions score the same values under any label column's name; a design without labels
    (its stimuli's label "") scores no class agreement at all, however the corpus is labelled, and says so."""
    corpus, tracks = labelled_corpus()
    test = np.arange(0, 120, 6)
    originals = pd.DataFrame({"clip_id": tracks.track_id[test].to_numpy(), "label": tracks.genre[test].to_numpy(),
                              "vector": list(corpus[test])})
    scale = np.stack([corpus.mean(axis=0), corpus.std(axis=0)])
    recon = {("retrieval", "whole-mask"): Reconstructions(corpus[test + 1][None], tracks.genre[test + 1].to_numpy())}

    def evaluate(label, originals=originals, tracks=tracks):
        labelers = make_labelers(corpus, tracks, originals.clip_id, label)
        return evaluate_reconstructions(originals, recon, corpus, tracks, scale, "standardised", labelers,
                                        n_chance=20, label=label)

    styled, genre = evaluate("style"), evaluate("genre")
    assert set(styled.metric) == {"identification_accuracy", "style_agreement_top1", "style_agreement_top2",
                                  "style_agreement_top3", "style_match"}
    assert genre.metric.tolist() == styled.metric.str.replace("style", "genre").tolist()
    pd.testing.assert_frame_equal(genre.drop(columns="metric"), styled.drop(columns="metric"))
    identification = styled[styled.metric == "identification_accuracy"].reset_index(drop=True)
    with caplog.at_level("INFO"):
        for unlabelled in (evaluate(None), evaluate(None, originals.assign(label=""), tracks.assign(genre=""))):
            pd.testing.assert_frame_equal(unlabelled, identification)
    assert "the design has no labels: no classifier class agreement" in caplog.text
    assert "the design has no labels: no class agreement with the corpus's classes" in caplog.text
    other = evaluate("genre", originals.assign(label="x" + originals.label))  # labels the corpus does not have
    assert "genre_match" not in set(other.metric) and "genre_agreement_top1" in set(other.metric)
