"""Model-based extractors (CLAP through transformers, w2v-BERT, MERT), label one-hot and model fetching, offline:
small random-weight models in a hub-layout cache, loaded through the same code path as real weights."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from b2m.data.bids import BidsDataset
from b2m.data.simulate import DESIGN
from b2m.data.captions import read_captions
from b2m.data.design import window_starts
from b2m.options import CleaningOptions
from b2m.data.responses import clean_subject, window_responses
from b2m.features import embedding_matrix, extract_features, make_extractor, required_weights
from b2m.features.audio import window_crops
from b2m.features.clap import quantise_int16
from b2m.features.weights import MissingWeightsError, Weights
from conftest import SUBPROCESS_ENV
from tiny_models import tiny_clap, tiny_mert, tiny_w2v_bert

CLAP = {"backend": "transformers", "model": "test/tiny-clap"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    tiny_clap(folder), tiny_w2v_bert(folder), tiny_mert(folder)
    return folder


@pytest.fixture(scope="module")
def clips(real):
    table = pd.read_csv(real / "gtzan-sample/MANIFEST.tsv", sep="\t").head(4)
    return table.assign(clip_id=[f"{g}.{t:05d}" for g, t in zip(table.genre, table.track)], path=table.file,
                        label=table.genre, start=table.excerpt_start_s, end=table.excerpt_end_s, split="test")


@pytest.fixture(scope="module")
def captions(real):
    return real / "brain2music-captions/brain2music-captions.csv"


def test_window_crops_cut_exact_seconds():
    rate = 100
    ramp = np.arange(15 * rate, dtype=np.float32)
    crops = window_crops(ramp, rate, window_starts(10.0, 1.5, 15.0), 10.0)
    assert crops.shape == (4, 1000)
    np.testing.assert_array_equal(crops[:, 0], [0, 150, 300, 450])
    np.testing.assert_array_equal(crops[3, -1], 1449)


def test_quantisation_is_laion_clap_int16_round_trip():
    audio = np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0], np.float32)
    expected = (np.clip(audio, -1, 1) * 32767).astype(np.int16).astype(np.float32) / 32767
    np.testing.assert_array_equal(quantise_int16(audio), expected)


@pytest.mark.parametrize("name, options, window, dim, unit_norm", [
    ("clap-audio", CLAP, 10.0, 512, True),
    ("w2v-bert", {"model": "test/tiny-w2v-bert"}, 5.0, 32, False),
    ("mert", {"model": "test/tiny-mert"}, 5.0, 32, False),
])
def test_audio_extractor_shapes_grid_norms_and_determinism(real, cache, clips, name, options, window, dim,
                                                           unit_norm):
    extractor = make_extractor(name, window, 1.5, cache=cache, **options)
    table = extract_features(clips, real / "gtzan-sample", extractor)
    starts = window_starts(window, 1.5, clips.end.iloc[0] - clips.start.iloc[0])
    assert len(table) == len(clips) * len(starts) and extractor.dim == dim
    np.testing.assert_allclose(table.start_s[:len(starts)], starts)
    np.testing.assert_allclose(table.end_s - table.start_s, window)
    vectors = embedding_matrix(table)
    assert vectors.shape == (len(table), dim) and np.isfinite(vectors).all()
    if unit_norm:
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    again = extract_features(clips, real / "gtzan-sample", make_extractor(name, window, 1.5, cache=cache, **options))
    assert embedding_matrix(again).tobytes() == vectors.tobytes()
    assert np.ptp(vectors, axis=0).max() > 0  # windows differ


@pytest.mark.parametrize("name, model, layer", [("w2v-bert", "test/tiny-w2v-bert", 7), ("mert", "test/tiny-mert", 3)])
def test_dropping_the_layers_above_changes_nothing(cache, name, model, layer):
    """The reference: the full model's hidden state ``layer``, averaged over each window's frames."""
    from transformers import AutoFeatureExtractor, AutoModel

    extractor = make_extractor(name, 5.0, 1.5, cache=cache, model=model, layer=layer)
    assert len(extractor.model.encoder.layers) == layer
    folder = Weights(model).local_path(cache)
    full, features = AutoModel.from_pretrained(folder).eval(), AutoFeatureExtractor.from_pretrained(folder)
    assert len(full.encoder.layers) == 8
    audio = np.random.default_rng(1).standard_normal(15 * extractor.sample_rate).astype(np.float32)
    starts = window_starts(5.0, 1.5, 15.0)[:3]
    crops = window_crops(audio * 0.1, extractor.sample_rate, starts, 5.0)
    inputs = features(list(crops), sampling_rate=extractor.sample_rate, return_tensors="pt")
    with torch.inference_mode():
        reference = full(**inputs, output_hidden_states=True).hidden_states[layer].mean(dim=1).numpy()
    np.testing.assert_allclose(extractor.embed(audio, starts), reference, rtol=1e-5, atol=1e-6)


def test_clap_text_finds_all_540_clips(real, cache, captions):
    clips = BidsDataset(real / "ds003720", DESIGN).stimulus_table()
    assert len(clips) == 540
    extractor = make_extractor("clap-text", 1.5, 1.5, cache=cache, captions=captions, **CLAP)
    vectors = extractor.embed_clips(clips)
    assert vectors.shape == (540, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    # Every caption its own vector, up to CLAP's 77-token limit: the tiny byte-level tokenizer reads 75 characters
    # between <s> and </s> (two captions share their first 75), real RoBERTa about 300 (captions run to 434).
    prefixes = read_captions(captions, clips.clip_id).set_index("clip_id").loc[clips.clip_id, "caption"].str[:75]
    assert len(np.unique(vectors.round(5), axis=0)) == prefixes.nunique() == 539
    assert extractor.embed_clips(clips.head(40)).tobytes() == extractor.embed_clips(clips.head(40)).tobytes()
    np.testing.assert_allclose(extractor.embed_clips(clips.iloc[[7, 3]]), vectors[[7, 3]], atol=1e-6)


def test_clip_level_vectors_repeat_over_the_windows(real, cache, clips, captions):
    text = extract_features(clips, real / "gtzan-sample",
                            make_extractor("clap-text", 1.5, 1.5, cache=cache, captions=captions, **CLAP))
    assert len(text) == len(clips) * 10
    for _, rows in text.groupby("clip_id"):
        assert len(np.unique(embedding_matrix(rows), axis=0)) == 1
    labels = make_extractor("labels", 1.5, 1.5)
    genre = extract_features(clips, real / "gtzan-sample", labels)
    one_hot = embedding_matrix(genre)
    assert labels.levels == sorted(set(clips.genre))
    assert one_hot.shape == (len(clips) * 10, len(labels.levels)) and (one_hot.sum(axis=1) == 1).all()
    assert [labels.levels[i] for i in one_hot.argmax(axis=1)] == list(genre.label)


def test_missing_caption_is_named(cache, captions):
    extractor = make_extractor("clap-text", 1.5, 1.5, cache=cache, captions=captions, **CLAP)
    with pytest.raises(ValueError, match="brain2music-captions.csv: no caption for 1 stimuli \\(rock.00999\\)"):
        extractor.embed_clips(pd.DataFrame({"clip_id": ["rock.00999"], "label": ["rock"]}))


@pytest.mark.parametrize("name, options, missing", [
    ("clap-audio", {"backend": "transformers"}, "laion/larger_clap_music"),
    ("clap-audio", {"backend": "laion-clap"}, "roberta-base"),
    ("w2v-bert", {}, "facebook/w2v-bert-2.0"),
    ("mert", {}, "m-a-p/MERT-v1-95M"),
])
def test_missing_weights_name_the_file_and_the_fetch_command(tmp_path, name, options, missing):
    with pytest.raises(MissingWeightsError) as raised:
        make_extractor(name, 5.0, 1.5, cache=tmp_path, **options)
    message = str(raised.value)
    assert f"model weights {missing}" in message and "b2m fetch-models" in message
    assert str(tmp_path / ("models--" + missing.replace("/", "--"))) in message


def test_required_weights_per_extractor():
    assert required_weights("acoustic", {}) == required_weights("labels", {}) == []
    assert [str(w) for w in required_weights("clap-audio", {})] == [
        "roberta-base", "lukewys/laion_clap/music_audioset_epoch_15_esc_90.14.pt"]
    assert [str(w) for w in required_weights("clap-text", {"backend": "transformers"})] == ["laion/larger_clap_music"]
    assert [str(w) for w in required_weights("mert", {"model": "m-a-p/MERT-v1-330M"})] == ["m-a-p/MERT-v1-330M"]


def test_clap_window_over_10_s_is_refused(cache):
    with pytest.raises(ValueError, match="CLAP sees at most 10 s"):
        make_extractor("clap-audio", 12.0, 1.5, cache=cache, **CLAP)


def test_options_an_extractor_does_not_take_are_named():
    with pytest.raises(ValueError, match="extractor 'acoustic' does not take these options"):
        make_extractor("acoustic", 1.5, 1.5, layer=7)


def test_feature_rows_and_response_rows_cover_the_same_seconds(tiny_study, cache, tmp_path):
    dataset = BidsDataset(tiny_study["bids_root"], DESIGN)
    clean_subject(dataset, "sub-001", tmp_path / "clean", CleaningOptions(mask=str(tiny_study["mask"])))
    window_responses(dataset, "sub-001", tmp_path / "clean", tmp_path / "w5", 5.0, 1.5, lag_s=4.5)
    clips = dataset.stimulus_table()
    clips = clips[clips.clip_id.isin(clips.clip_id.iloc[[0, 1, -1]])]
    table = extract_features(clips, tiny_study["stimuli"],
                             make_extractor("w2v-bert", 5.0, 1.5, cache=cache, model="test/tiny-w2v-bert"))
    for split in ("train", "test"):
        rows = pd.read_parquet(tmp_path / f"w5/{split}_rows.parquet")
        rows = rows[rows.clip_id.isin(clips.clip_id)]
        merged = rows.merge(table, on=["clip_id", "window"], suffixes=("", "_feature"), validate="many_to_one")
        assert len(merged) == len(rows) > 0
        np.testing.assert_allclose(merged.start_s, merged.start_s_feature)
        np.testing.assert_allclose(merged.end_s, merged.end_s_feature)


def run_b2m(*args):
    env = {**SUBPROCESS_ENV, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "b2m", *map(str, args)], capture_output=True, text=True, env=env)


def test_features_command_runs_a_model_offline(tiny_study, cache, tmp_path):
    out = tmp_path / "mert.parquet"
    done = run_b2m("features", "--bids", tiny_study["bids_root"], "--stimuli", tiny_study["stimuli"],
                   "--feature", "mert", "--model", "test/tiny-mert", "--cache", cache, "--window", 5, "--out", out,
                   "--options", json.dumps({"design": dataclasses.asdict(DESIGN)}))
    assert done.returncode == 0, done.stderr
    table = pd.read_parquet(out)
    assert len(table) == 130 * 7 and len(table.embedding.iloc[0]) == 32


def test_fetch_models_reports_what_the_cache_holds(cache, tmp_path):
    marker = tmp_path / "fetched.json"
    done = run_b2m("fetch-models", "--feature", "w2v-bert", "--model", "test/tiny-w2v-bert", "--cache", cache,
                   "--marker", marker)
    assert done.returncode == 0, done.stderr
    assert json.loads(marker.read_text())["models"] == ["test/tiny-w2v-bert"]
    failed = run_b2m("fetch-models", "--feature", "mert", "--cache", tmp_path / "empty", "--marker", marker)
    assert failed.returncode == 2 and "could not fetch m-a-p/MERT-v1-95M" in failed.stderr
