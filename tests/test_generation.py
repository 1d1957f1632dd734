"""Generation from predicted embeddings, offline: small random-weight MusicLDM and MusicGen pipelines built from
configs in a hub-layout cache, loaded through the same code path as the real ones."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from b2m.cli import main
from b2m.errors import InputError
from b2m.features.clap import TransformersClapBackend
from b2m.features.weights import MissingWeightsError
from b2m.reconstruct.generation import CaptionGenerator, MusicLdmGenerator, sample_seed
from conftest import SUBPROCESS_ENV
from tiny_models import tiny_musicgen, tiny_musicldm

MUSICLDM = {"model": "test/tiny-musicldm", "steps": 3, "seconds": 1.0, "device": "cpu"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    tiny_musicldm(folder), tiny_musicgen(folder)
    return folder


@pytest.fixture(scope="module")
def musicldm(cache):
    return MusicLdmGenerator(cache, batch_size=2, **MUSICLDM)


def unit_vectors(n, dim=512, seed=0):
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_musicldm_generates_seeded_audio_of_the_asked_rate_and_length(musicldm):
    embeddings, clips = unit_vectors(3), ["blues.00001", "jazz.00002", "rock.00003"]
    audio = musicldm.generate(embeddings, clips, n_samples=2, seed=5)
    assert musicldm.sample_rate == 16000
    assert [len(samples) for samples in audio] == [2, 2, 2]
    assert all(a.shape == (16000,) and np.isfinite(a).all() and a.std() > 0 for s in audio for a in s)
    again = musicldm.generate(embeddings, clips, n_samples=2, seed=5)
    np.testing.assert_array_equal(np.stack([np.stack(s) for s in audio]), np.stack([np.stack(s) for s in again]))
    assert not np.array_equal(audio[0][0], audio[0][1])  # samples differ by seed
    musicldm.batch_size = 1  # each clip alone: its noise comes from its own seed, not from its batch
    try:
        alone = musicldm.generate(embeddings, clips, n_samples=1, seed=5)
    finally:
        musicldm.batch_size = 2
    np.testing.assert_allclose(alone[2][0], audio[2][0], atol=1e-5)
    assert sample_seed(5, 0, 0) != sample_seed(5, 2, 0)


def test_musicldm_output_depends_on_the_embedding(musicldm):
    first = musicldm.generate(unit_vectors(1, seed=1), ["a"], 1, seed=0)[0][0]
    second = musicldm.generate(unit_vectors(1, seed=2), ["a"], 1, seed=0)[0][0]
    assert not np.allclose(first, second)


def test_musicldm_negative_embedding_is_clap_text_of_empty_prompt(musicldm):
    backend_vector = musicldm.unconditional
    assert backend_vector.shape == (1, 512)
    np.testing.assert_allclose(np.linalg.norm(backend_vector), 1.0, rtol=1e-5)


def test_musicldm_refuses_a_space_of_another_size(musicldm):
    with pytest.raises(InputError, match="512-d CLAP.*\n.*fix: generate from the predictions of MusicLDM's own"):
        musicldm.generate(np.ones((1, 123), np.float32), ["a"], 1, seed=0)


def test_musicldm_clap_is_an_embedding_space(cache):
    backend = TransformersClapBackend(cache, "test/tiny-musicldm", device="cpu")
    windows = np.random.default_rng(0).standard_normal((2, 48000)).astype(np.float32) * 0.1
    assert backend.embed_audio(windows).shape == (2, 512)
    assert backend.embed_text(["calm piano", "loud drums"]).shape == (2, 512)


def test_missing_generator_weights_name_file_and_fetch_command(tmp_path):
    with pytest.raises(MissingWeightsError, match="ucsd-reach/musicldm.*\\n.*b2m fetch-models"):
        MusicLdmGenerator(tmp_path)
    with pytest.raises(MissingWeightsError, match="facebook/musicgen-small"):
        CaptionGenerator(tmp_path, pd.DataFrame({"clip_id": ["a"], "caption": ["x"], "vector": [np.ones(4)]}))


def captions_table():
    vectors = unit_vectors(4, dim=16, seed=3)
    return pd.DataFrame({"clip_id": ["blues.00001", "jazz.00002", "rock.00003", "pop.00004"],
                         "caption": ["slow blues", "swinging jazz", "loud rock", "catchy pop"],
                         "vector": list(vectors)})


def test_caption_generator_picks_the_nearest_other_caption_and_renders_it(cache):
    table = captions_table()
    generator = CaptionGenerator(cache, table, model="test/tiny-musicgen", seconds=0.5, device="cpu")
    vectors = np.stack(table.vector.to_numpy())
    query = vectors[[0, 1]] + 0.3 * vectors[[2, 3]]  # nearest: own caption; next: the one mixed in
    chosen = generator.nearest_captions(query, ["blues.00001", "jazz.00002"])
    assert chosen.caption_clip.tolist() == ["rock.00003", "pop.00004"]
    audio = generator.generate(query, ["blues.00001", "jazz.00002"], n_samples=2, seed=1)
    assert generator.sample_rate == 16000
    assert all(a.shape == (8000,) and np.isfinite(a).all() for s in audio for a in s)
    again = generator.generate(query, ["blues.00001", "jazz.00002"], n_samples=2, seed=1)
    np.testing.assert_array_equal(audio[1][1], again[1][1])
    assert not np.array_equal(audio[1][0], audio[1][1])
    with pytest.raises(InputError, match="captions' embeddings are 16-d"):
        generator.generate(np.ones((1, 512), np.float32), ["blues.00001"], 1, seed=1)


def test_generate_command_writes_audio_and_listing(cache, tmp_path):
    clips = ["blues.00001", "jazz.00002"]
    truth = unit_vectors(2, seed=4)
    rows = [{"clip_id": c, "label": c.split(".")[0], "model": "whole-mask", "level": "clip",
             "predicted": p, "true": t} for c, p, t in zip(clips, unit_vectors(2, seed=5), truth)]
    pd.DataFrame(rows).to_parquet(tmp_path / "predictions.parquet")
    np.save(tmp_path / "scale.npy", np.stack([np.zeros(512), np.ones(512)]).astype(np.float32))
    out = tmp_path / "generated"
    assert main(["generate", "--backend", "musicldm", "--predictions", str(tmp_path / "predictions.parquet"),
                 "--target-scale", str(tmp_path / "scale.npy"), "--cache", str(cache), "--model", "test/tiny-musicldm",
                 "--steps", "2", "--seconds", "1", "--device", "cpu", "--n-samples", "2", "--out", str(out)]) == 0
    listing = pd.read_parquet(out / "generated.parquet")
    assert len(listing) == 2 * 2 * 2  # clips × models (whole-mask, oracle) × samples
    assert set(listing.model) == {"whole-mask", "oracle"}
    for file in listing.file:
        audio, rate = sf.read(out / file)
        assert rate == 16000 and len(audio) == 16000


def test_fetch_generator_takes_its_repository(cache, tmp_path):
    """With the model already in the cache, fetching is a no-op even offline, and the marker lists it."""
    marker = tmp_path / "fetched.json"
    result = subprocess.run([sys.executable, "-m", "b2m", "fetch-generator", "--generator", "caption", "--model",
                             "test/tiny-musicgen", "--cache",
                             str(cache), "--marker", str(marker)], env={**SUBPROCESS_ENV, "HF_HUB_OFFLINE": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(marker.read_text())["models"] == ["test/tiny-musicgen"]


def test_index_retrieve_generate_evaluate_in_musicldm_clap_space(cache, tmp_path):
    """The MusicLDM route from the command line: corpus indexed with MusicLDM's own CLAP, retrieval and
    generation from predicted embeddings of that space, generated audio embedded back and scored, with CLAP
    zero-shot class agreement."""
    space = ["--feature", "clap-musicldm", "--extractor", "clap-audio", "--backend", "transformers", "--model",
             "test/tiny-musicldm", "--cache", str(cache), "--device", "cpu", "--window", "1", "--stride", "1"]
    root = tmp_path / "corpus"
    rng = np.random.default_rng(0)
    for genre in ("blues", "jazz", "rock"):
        for track in range(3):
            (root / genre).mkdir(parents=True, exist_ok=True)
            sf.write(root / genre / f"{genre}.{track:05d}.wav", rng.standard_normal(16000 * 4) * 0.1, 16000)
    source = json.dumps({"path": str(root), "layout": "gtzan"})
    assert main(["index", *space, "--sources", source, "--seconds", "3", "--vector-cache", str(tmp_path / "vectors"),
                 "--embed", "--out", str(tmp_path / "index")]) == 0
    vectors = np.load(tmp_path / "index/vectors.npy")
    assert vectors.shape == (9, 512)

    clips = ["blues.00000", "jazz.00001", "rock.00002"]
    true = vectors[[0, 4, 8]]
    rows = [{"clip_id": c, "label": c.split(".")[0], "model": "whole-mask", "level": "clip", "predicted": p,
             "true": t} for c, p, t in zip(clips, true + 0.05 * rng.standard_normal(true.shape), true)]
    pd.DataFrame(rows).to_parquet(tmp_path / "predictions.parquet")
    np.save(tmp_path / "scale.npy", np.stack([np.zeros(512), np.ones(512)]).astype(np.float32))
    decoded = ["--predictions", str(tmp_path / "predictions.parquet"), "--target-scale", str(tmp_path / "scale.npy")]
    assert main(["retrieve", *decoded, "--index", str(tmp_path / "index"), "--space", "raw", "--top-k", "3",
                 "--bids", str(tmp_path), "--out", str(tmp_path / "retrieval")]) == 0
    assert main(["generate", "--backend", "musicldm", *decoded, "--cache", str(cache), "--model", "test/tiny-musicldm",
                 "--steps", "2", "--seconds", "2", "--device", "cpu", "--n-samples", "2",
                 "--out", str(tmp_path / "generated")]) == 0
    assert main(["evaluate-reconstruction", *decoded, *space, "--index", str(tmp_path / "index"), "--space", "raw",
                 "--retrieval", str(tmp_path / "retrieval/neighbours.parquet"), "--generated",
                 str(tmp_path / "generated"), "--label-sets", json.dumps({"mood": ["happy", "sad", "calm"]}),
                 "--label", "genre", "--n-chance", "20",
                 "--subject", "sub-001", "--out", str(tmp_path / "evaluation.parquet")]) == 0
    table = pd.read_parquet(tmp_path / "evaluation.parquet")
    assert set(zip(table.method, table.model)) == {("retrieval", "whole-mask"), ("retrieval", "oracle"),
                                                   ("musicldm", "whole-mask"), ("musicldm", "oracle"),
                                                   ("random-corpus-item", "chance")}
    assert set(table.metric) == {"identification_accuracy", "genre_match", "genre_agreement_top1",
                                 "genre_agreement_top2", "mood-zeroshot_agreement_top1",
                                 "mood-zeroshot_agreement_top2"}
    assert (table[table.method == "musicldm"].n_samples == 2).all()
    assert table.value.between(0, 1).all()
    brain_scored_methods_are_evaluated_beside_the_others(tmp_path, decoded, space)


def brain_scored_methods_are_evaluated_beside_the_others(tmp_path, decoded, space):
    """A b2m brain-score folder (its tracks and samples chosen here by a fixed preference: the last candidate for
    some clips, the first for the others, so that clips keep different samples) given to evaluate-reconstruction:
    retrieval-brain and musicldm-brain rows, one sample each, beside the rows without it, which do not change."""
    from b2m.io import write_parquet
    from b2m.layout import BrainScoreFiles, GenerationFiles
    from b2m.reconstruct.brain import rerank
    from b2m.stages.reconstruct import write_selected_samples

    def last_or_first(clip_id, files):
        return np.arange(len(files), dtype=float) * (1 if sum(map(ord, clip_id)) % 2 else -1)

    neighbours = pd.read_parquet(tmp_path / "retrieval/neighbours.parquet")
    assert {sum(map(ord, clip)) % 2 for clip in neighbours.clip_id} == {0, 1}
    brain = BrainScoreFiles(tmp_path / "brain")
    reranked, _ = rerank(neighbours, 3, last_or_first)
    write_parquet(brain.neighbours, reranked, {})
    write_selected_samples(GenerationFiles(tmp_path / "generated"), brain.generation("musicldm"), last_or_first, {})
    assert main(["evaluate-reconstruction", *decoded, *space, "--index", str(tmp_path / "index"), "--space", "raw",
                 "--retrieval", str(tmp_path / "retrieval/neighbours.parquet"), "--generated",
                 str(tmp_path / "generated"), "--brain", str(brain.path), "--label", "genre", "--n-chance", "20",
                 "--subject", "sub-001", "--out", str(tmp_path / "brain-evaluation.parquet")]) == 0
    table = pd.read_parquet(tmp_path / "brain-evaluation.parquet")
    assert list(dict.fromkeys(table.method)) == ["retrieval", "musicldm", "retrieval-brain", "musicldm-brain",
                                                 "random-corpus-item"]
    assert (table[table.method.str.endswith("-brain")].n_samples == 1).all()
    before = pd.read_parquet(tmp_path / "evaluation.parquet").query("not metric.str.contains('zeroshot')")
    after = table[~table.method.str.endswith("-brain")].reset_index(drop=True)
    pd.testing.assert_frame_equal(before.reset_index(drop=True), after)
