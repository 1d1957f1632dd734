"""Stimulus audio and the offline acoustic embedding, on the 20 real GTZAN test clips (16 kHz)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from b2m.data.design import window_starts
from b2m.features import extract_features, make_extractor
from b2m.features.audio import excerpt, load_excerpt, resample
from b2m.errors import InputError


@pytest.fixture(scope="module")
def manifest(real):
    table = pd.read_csv(real / "gtzan-sample/MANIFEST.tsv", sep="\t")
    return table.assign(clip_id=[f"{g}.{t:05d}" for g, t in zip(table.genre, table.track)], path=table.file,
                        label=table.genre, start=table.excerpt_start_s, end=table.excerpt_end_s, split="test")


@pytest.fixture(scope="module")
def embeddings(real, manifest):
    return extract_features(manifest, real / "gtzan-sample", make_extractor("acoustic", 1.5, 1.5))


def test_excerpt_is_faded_and_rms_normalised():
    sr = 1000
    audio = np.ones(30 * sr, dtype=np.float32)
    piece = excerpt(audio, sr, 5.0, 20.0)
    assert len(piece) == 15 * sr
    assert np.sqrt(np.mean(piece.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-5)
    assert piece[0] == 0 and piece[sr] == pytest.approx(piece[7 * sr] / 2, rel=1e-3)


def test_excerpt_past_the_end_names_the_file(tmp_path):
    path = tmp_path / "pop.00001.wav"
    with pytest.raises(InputError, match="pop.00001.wav: excerpt 10-25 s runs past the end of the 20.00 s"):
        excerpt(np.ones(20 * 100, np.float32), 100, 10.0, 25.0, path)


def test_unreadable_audio_names_the_clip(tmp_path):
    (tmp_path / "jazz").mkdir()
    (tmp_path / "jazz/jazz.00003.wav").write_bytes(b"RIFF\x00\x00not audio")
    with pytest.raises(InputError, match="jazz.00003.wav: unreadable audio"):
        load_excerpt(tmp_path, "jazz/jazz.00003", 0.0, 15.0, 16000)
    with pytest.raises(InputError, match="no audio file for stimulus jazz/jazz.00004"):
        load_excerpt(tmp_path, "jazz/jazz.00004", 0.0, 15.0, 16000)


def test_resampling_keeps_a_tone(tmp_path):
    sr_in, sr_out = 22050, 16000
    t = np.arange(sr_in) / sr_in
    out = resample(np.sin(2 * np.pi * 440 * t).astype(np.float32), sr_in, sr_out)
    assert len(out) == sr_out
    spectrum = np.abs(np.fft.rfft(out))
    assert np.argmax(spectrum) == 440
    path = tmp_path / "tone.au"
    sf.write(path, np.sin(2 * np.pi * 440 * t), sr_in, format="AU")
    (tmp_path / "pop").mkdir()
    path.rename(tmp_path / "pop/pop.00000.au")
    assert len(load_excerpt(tmp_path, "pop/pop.00000", 0.0, 0.5, sr_out)) == sr_out // 2


def test_acoustic_table_shape_and_window_grid(manifest, embeddings):
    assert len(embeddings) == 20 * 10
    vectors = np.stack(embeddings.embedding)
    assert vectors.shape == (200, make_extractor("acoustic", 1.5, 1.5).dim) and np.isfinite(vectors).all()
    first = embeddings[embeddings.clip_id == embeddings.clip_id.iloc[0]]
    seconds = manifest.end.iloc[0] - manifest.start.iloc[0]  # ds003720's 15 s excerpts
    np.testing.assert_allclose(first.start_s, window_starts(1.5, 1.5, seconds))
    np.testing.assert_allclose(first.end_s - first.start_s, 1.5)


def test_acoustic_embedding_is_deterministic(real, manifest, embeddings):
    again = extract_features(manifest.head(3), real / "gtzan-sample", make_extractor("acoustic", 1.5, 1.5))
    assert np.stack(again.embedding).tobytes() == np.stack(embeddings.embedding[:30]).tobytes()


def test_acoustic_embedding_separates_real_genres(manifest, embeddings):
    """Same-genre clip pairs are more similar than different-genre pairs, beyond a label permutation null."""
    clips = embeddings.groupby("clip_id", sort=False)["embedding"].apply(lambda v: np.stack(v).mean(axis=0))
    vectors = np.stack(clips.to_numpy())
    vectors = (vectors - vectors.mean(axis=0)) / vectors.std(axis=0)
    corr = np.corrcoef(vectors)
    genres = manifest.set_index("clip_id").loc[clips.index, "genre"].to_numpy()
    upper = np.triu_indices(len(genres), 1)

    def pair_auc(labels):
        same = (labels[:, None] == labels[None, :])[upper]
        return (corr[upper][same][:, None] > corr[upper][~same][None, :]).mean()

    rng = np.random.default_rng(0)
    null = [pair_auc(rng.permutation(genres)) for _ in range(500)]
    assert pair_auc(genres) > np.percentile(null, 95)
