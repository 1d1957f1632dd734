"""The laion-clap backend with a random-weight checkpoint of a real laion-clap architecture (HTSAT-tiny audio,
a narrow RoBERTa as roberta-base), loaded through the same code path as the published checkpoints.

laion-clap needs torchvision, which does not import beside the CPU torch build of the main environment: these
tests run in `.venv-clap` (`make test-clap`, part of CI) and are skipped elsewhere.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.laion_clap
pytest.importorskip("torchvision", reason="laion-clap needs torchvision, absent beside the CPU torch build; "
                    "`make test-clap` runs these tests in .venv-clap")
if importlib.util.find_spec("laion_clap") is None:  # importing the package itself would parse sys.argv
    pytest.skip("laion-clap is not installed; `make test-clap` runs these tests", allow_module_level=True)

import torch  # noqa: E402

from b2m.data.design import window_starts  # noqa: E402
from b2m.errors import InputError  # noqa: E402
from b2m.features import embedding_matrix, extract_features, make_extractor  # noqa: E402
from b2m.features.clap import import_clap_module  # noqa: E402
from b2m.features.weights import hub_defaults  # noqa: E402
from tiny_models import byte_level_tokenizer, hub_snapshot  # noqa: E402

AMODEL = "HTSAT-tiny"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """roberta-base as a narrow random RoBERTa (laion-clap's text projection needs width 768) and its tokenizer."""
    from transformers import RobertaConfig, RobertaModel

    folder = tmp_path_factory.mktemp("models")
    snapshot = hub_snapshot(folder, "roberta-base")
    tokenizer = byte_level_tokenizer(snapshot)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=768, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=80, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    RobertaModel(config).save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    return folder


@pytest.fixture(scope="module")
def checkpoint(cache, tmp_path_factory):
    """A training-style checkpoint: DDP ``module.`` prefixes, an epoch, the old ``position_ids`` buffer."""
    torch.manual_seed(1)
    with hub_defaults(cache):
        model, _ = import_clap_module().create_model(AMODEL, "roberta", precision="fp32", enable_fusion=False)
    state = {f"module.{key}": value for key, value in model.state_dict().items()}
    state["module.text_branch.embeddings.position_ids"] = torch.arange(80)[None]
    path = tmp_path_factory.mktemp("ckpt") / "clap-random.pt"
    torch.save({"epoch": 3, "state_dict": state}, path)
    return path


@pytest.fixture(scope="module")
def options(cache, checkpoint):
    return {"backend": "laion-clap", "cache": cache, "checkpoint": str(checkpoint), "amodel": AMODEL}


@pytest.fixture(scope="module")
def clips(real):
    table = pd.read_csv(real / "gtzan-sample/MANIFEST.tsv", sep="\t").head(3)
    ids = [f"{g}.{t:05d}" for g, t in zip(table.genre, table.track)]
    return table.assign(clip_id=ids, path=[f"{g}/{c}" for g, c in zip(table.genre, ids)], label=table.genre,
                        start=table.excerpt_start_s, end=table.excerpt_end_s, split="test")


def test_checkpoint_weights_are_the_ones_used(options, checkpoint):
    extractor = make_extractor("clap-audio", 10.0, 1.5, **options)
    saved = torch.load(checkpoint, weights_only=True)["state_dict"]
    for key, value in extractor.backend.model.state_dict().items():
        torch.testing.assert_close(value, saved[f"module.{key}"], rtol=0, atol=0)


def test_audio_windows_norms_and_determinism(real, clips, options):
    extractor = make_extractor("clap-audio", 10.0, 1.5, **options)
    table = extract_features(clips, real / "gtzan-sample", extractor)
    vectors = embedding_matrix(table)
    assert vectors.shape == (3 * len(window_starts(10.0, 1.5, 15.0)), 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    np.random.seed(123), torch.manual_seed(123)  # laion-clap crops at random only inputs over 480,000 samples
    again = extract_features(clips, real / "gtzan-sample", make_extractor("clap-audio", 10.0, 1.5, **options))
    assert embedding_matrix(again).tobytes() == vectors.tobytes()


def test_text_tower_on_the_real_captions(real, options):
    captions = real / "brain2music-captions/brain2music-captions.csv"
    extractor = make_extractor("clap-text", 1.5, 1.5, captions=captions, **options)
    assert len(extractor.backend.tokenizer) > 256
    clips = pd.DataFrame({"clip_id": ["blues.00000", "disco.00011", "rock.00099"], "genre": ["blues", "disco", "rock"]})
    vectors = extractor.embed_clips(clips)
    assert vectors.shape == (3, 512) and len(np.unique(vectors, axis=0)) == 3
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert extractor.embed_clips(clips).tobytes() == vectors.tobytes()


def test_checkpoint_of_another_architecture_is_named(options):
    with pytest.raises(InputError, match="clap-random.pt: checkpoint does not fit amodel='HTSAT-base'"):
        make_extractor("clap-audio", 10.0, 1.5, **{**options, "amodel": "HTSAT-base"})


def test_untrusted_pickle_is_refused(options, tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"state_dict": {}, "args": pd.Timestamp("2023-01-01")}, path)
    with pytest.raises(InputError, match="pickled.pt: the checkpoint holds more than tensors"):
        make_extractor("clap-audio", 10.0, 1.5, **{**options, "checkpoint": str(path)})
