"""Duplicate audio in the corpus, on the real GTZAN test clips: copies planted in a folder source (exact,
resampled, re-encoded, trimmed, quieter, inside other audio) are found at the right offset, no other clip is,
and retrieval and chance leave them out like the clip itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from b2m.errors import InputError
from b2m.features import make_extractor
from b2m.features.audio import load_audio, resample
from b2m.reconstruct import duplicates as dup
from b2m.reconstruct.corpus import corpus_tracks, embed_track
from b2m.reconstruct.evaluation import random_items
from b2m.reconstruct.retrieval import retrieve

PLANTED = ("blues.00017", "metal.00063", "pop.00096")  # MP3 and Vorbis copies of the last two scored highest
EMBEDDED_AT = 7.3  # s of other audio before the excerpt in the "embedded" copy


def real_clips(real) -> pd.DataFrame:
    """clip_id, path, start, end (s) of each real clip's ds003720 excerpt."""
    manifest = pd.read_csv(real / "gtzan-sample/MANIFEST.tsv", sep="\t")
    return pd.DataFrame({"clip_id": [f.split("/")[-1].rsplit(".", 1)[0] for f in manifest.file],
                         "path": [str(real / "gtzan-sample" / f) for f in manifest.file],
                         "start": manifest.excerpt_start_s, "end": manifest.excerpt_end_s})


def copies_of(audio: np.ndarray, rate: int, start: float, end: float, other: np.ndarray) -> dict:
    """File name → (samples, rate, soundfile keywords, where the excerpt begins in it, s)."""
    a, b = int(start * rate), int(end * rate)
    around = other[::-1]  # other music, played backwards: never one of the clips
    variants = {
        "exact.wav": (audio, rate, {}, start),
        "resampled.flac": (resample(audio, rate, 44100), 44100, {}, start),
        "vorbis.ogg": (resample(audio, rate, 22050), 22050, {"format": "OGG", "subtype": "VORBIS"}, start),
        "trimmed-start.wav": (audio[rate:], rate, {}, start - 1),
        "trimmed-end.wav": (audio[:-rate], rate, {}, start),
        "excerpt-trimmed.wav": (audio[a + rate:b - rate], rate, {}, -1.0),
        "quiet.wav": (0.25 * audio, rate, {}, start),
        "excerpt.wav": (audio[a:b], rate, {}, 0.0),
        "embedded.wav": (np.concatenate([around[:int(EMBEDDED_AT * rate)], audio[a:b], around[-5 * rate:]]), rate, {},
                         EMBEDDED_AT),
    }
    if "MP3" in sf.available_formats():
        variants["mp3.mp3"] = (audio, rate, {"format": "MP3"}, start)
    return variants


@pytest.fixture(scope="module")
def planted(real, tmp_path_factory):
    """The 20 real clips (a gtzan source) and copies of three of them (a folder source, ``<clip>/<variant>``),
    fingerprinted; with the expected duplicates (clip_id, track_id, offset_s)."""
    clips, folder = real_clips(real), tmp_path_factory.mktemp("dupes")
    expected = [(clip, clip, start) for clip, start in zip(clips.clip_id, clips.start)]
    for number, clip in enumerate(clips[clips.clip_id.isin(PLANTED)].itertuples()):
        audio, rate = load_audio(clip.path)
        other, _ = load_audio(clips.path.iloc[-1 - number])
        for name, (samples, sr, keywords, offset) in copies_of(audio, rate, clip.start, clip.end, other).items():
            (folder / clip.clip_id).mkdir(exist_ok=True)
            sf.write(folder / clip.clip_id / name, samples, sr, **keywords)
            expected.append((clip.clip_id, f"{clip.clip_id}/{name.rsplit('.', 1)[0]}", offset))
    tracks = corpus_tracks([{"path": real / "gtzan-sample", "layout": "gtzan"},
                            {"path": folder, "layout": "folder", "name": "copies"}])
    fingerprints = folder / "fingerprints.parquet"
    dup.fingerprint_tracks(tracks, fingerprints, {})
    queries = dup.query_fingerprints(clips)
    return {"clips": clips, "tracks": tracks, "queries": queries, "fingerprints": fingerprints,
            "expected": pd.DataFrame(expected, columns=["clip_id", "track_id", "offset_s"])}


def test_planted_copies_and_only_they_are_found_where_the_excerpt_lies(planted):
    found = dup.find_duplicates(planted["queries"], [planted["fingerprints"]])
    expected = planted["expected"]
    assert sorted(zip(found.clip_id, found.track_id)) == sorted(zip(expected.clip_id, expected.track_id))
    merged = found.merge(expected, on=["clip_id", "track_id"], suffixes=("", "_true"))
    np.testing.assert_allclose(merged.offset_s, merged.offset_s_true, atol=dup.HOP_S)
    assert (found.same_id == (found.clip_id == found.track_id)).all()
    assert (found.overlap_s > 12).all() and found.source.isin(["gtzan-sample", "copies"]).all()


def test_true_copies_and_different_clips_lie_far_on_either_side_of_the_threshold(planted):
    """The measurement behind THRESHOLD: every pair with an exact sub-fingerprint match, scored."""
    scores = dup.match_scores(planted["queries"], dup.read_fingerprints([planted["fingerprints"]]))
    expected = set(zip(planted["expected"].clip_id, planted["expected"].track_id))
    true = np.array([pair in expected for pair in zip(scores.clip_id, scores.track_id)])
    assert true.sum() == len(planted["expected"])
    assert scores.ber[true].max() < 0.1 < dup.THRESHOLD < 0.45 < scores.ber[~true].min()


def test_a_fingerprint_file_of_any_subset_is_read_beside_the_others(planted, tmp_path):
    """Scattered fingerprinting: two halves of the corpus in two files find what the whole did."""
    table, halves = dup.read_fingerprints([planted["fingerprints"]]), [tmp_path / "0.parquet", tmp_path / "1.parquet"]
    dup.write_fingerprints(halves[0], table.iloc[1::2], {})
    dup.write_fingerprints(halves[1], table.iloc[::2], {})
    assert len(planted["tracks"]) == sum(len(pd.read_parquet(h)) for h in halves)
    whole = dup.find_duplicates(planted["queries"], [planted["fingerprints"]])
    pd.testing.assert_frame_equal(dup.find_duplicates(planted["queries"], halves), whole)


def test_fingerprints_made_otherwise_are_refused(planted, tmp_path):
    other = tmp_path / "other.parquet"
    pd.read_parquet(planted["fingerprints"]).to_parquet(other)  # no record of how it was made
    with pytest.raises(InputError, match="other settings"):
        dup.find_duplicates(planted["queries"], [other])


def test_an_unreadable_track_is_skipped_with_its_reason(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not audio")
    tracks = pd.DataFrame({"track_id": ["broken"], "source": ["x"], "path": [str(bad)]})
    assert dup.fingerprint_tracks(tracks, tmp_path / "fp.parquet", {}) == {"n_tracks": 1, "n_skipped": 1}
    assert "unreadable audio" in pd.read_parquet(tmp_path / "fp.parquet").reason.iloc[0]
    assert dup.read_fingerprints([tmp_path / "fp.parquet"]).empty


def test_a_table_that_is_not_a_duplicates_table_is_refused(tmp_path):
    wrong = tmp_path / "duplicates.tsv"
    wrong.write_text("clip_id\ttrack\nblues.00017\tx\n")
    with pytest.raises(InputError, match="columns"):
        dup.read_duplicates(wrong)


def predictions_of(vectors: np.ndarray, scale: np.ndarray, clips: pd.DataFrame) -> pd.DataFrame:
    """A decoding predictions table (standardised targets) whose model predicts each clip's true embedding."""
    standardised = list((vectors - scale[0]) / scale[1])
    return pd.DataFrame({"level": "clip", "model": "perfect", "clip_id": clips.clip_id,
                         "label": [c.split(".")[0] for c in clips.clip_id],
                         "predicted": standardised, "true": standardised})


def test_the_oracle_no_longer_retrieves_a_planted_copy(planted, tmp_path):
    """Each clip's best match is its own excerpt copy until the duplicates are left out; then no copy of it is
    retrieved at all, and chance never draws one."""
    clips, tracks = planted["clips"], planted["tracks"]
    clips = clips[clips.clip_id.isin(PLANTED)].reset_index(drop=True)
    extractor = make_extractor("acoustic", 1.5, 1.5)
    corpus = np.stack([embed_track(path, extractor, 15) for path in tracks.path])
    queries = np.stack([embed_track(c.path, extractor, c.end - c.start, c.start) for c in clips.itertuples()])
    scale = np.stack([corpus.mean(axis=0), corpus.std(axis=0) + 1e-6])
    found = dup.find_duplicates(planted["queries"], [planted["fingerprints"]])
    dup.write_duplicates(tmp_path / "duplicates.tsv", found)
    found = dup.read_duplicates(tmp_path / "duplicates.tsv")  # as the stages read it
    before = retrieve(predictions_of(queries, scale, clips), corpus, tracks, scale, "standardised", 5)
    after = retrieve(predictions_of(queries, scale, clips), corpus, tracks, scale, "standardised", 5, found)
    top = before[(before["rank"] == 1) & (before.model == "oracle")]
    assert (top.track_id == top.clip_id + "/excerpt").all()
    copies = set(zip(found.clip_id, found.track_id))
    assert not any((c, t) in copies for c, t in zip(after.clip_id, after.track_id))
    assert not (after.track_id.str.split("/").str[0] == after.clip_id).any()
    exclude = dup.excluded_ids(clips.clip_id, found)
    picks = np.concatenate([random_items(exclude, tracks.track_id.to_numpy(), np.random.default_rng(s))
                            for s in range(50)])
    drawn = tracks.track_id.to_numpy()[picks]
    assert not any(t in exclude[i % len(clips)] for i, t in enumerate(drawn))


def test_each_query_logs_what_it_leaves_out(planted, caplog):
    found = dup.find_duplicates(planted["queries"], [planted["fingerprints"]])
    with caplog.at_level("INFO", logger="b2m.reconstruct.duplicates"):
        dup.log_exclusions(["blues.00017", "rock.00032", "absent.00001"], found, planted["tracks"].track_id)
    lines = caplog.messages
    n_copies = len(copies_of(np.zeros(30 * 16000), 16000, 1, 16, np.zeros(30 * 16000)))
    assert lines[0].startswith(f"blues.00017: {n_copies + 1} corpus tracks excluded (own clip in the corpus, "
                               f"{n_copies} duplicates: blues.00017/")
    assert lines[1] == "rock.00032: 1 corpus tracks excluded (own clip in the corpus, 0 duplicates)"
    assert lines[2] == "absent.00001: 0 corpus tracks excluded (own clip not in the corpus, 0 duplicates)"
