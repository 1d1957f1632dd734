"""Small models with random weights, written into a model cache in the hub's layout, so that the extractors
load them through the same code path (``Weights.local_path`` → ``from_pretrained``) as real weights.

Configs keep each architecture's real structure and shrink its widths and depths; ``real_size=True`` gives
the published sizes, for throughput benchmarks.
"""

from __future__ import annotations

import json
from pathlib import Path

SNAPSHOT = "0" * 40


def hub_snapshot(cache, repo_id: str) -> Path:
    """An empty snapshot folder of ``repo_id`` in ``cache`` (hub layout: refs/main → snapshots/<rev>/)."""
    root = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs/main").write_text(SNAPSHOT)
    folder = root / "snapshots" / SNAPSHOT
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def byte_level_tokenizer(folder):
    """A RoBERTa byte-level BPE tokenizer with the 256 byte symbols, a few merges and the special tokens."""
    from transformers import RobertaTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    symbols = ["<s>", "<pad>", "</s>", "<unk>"] + sorted(bytes_to_unicode().values())
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("a", "n")]
    symbols += ["".join(pair) for pair in merges] + ["<mask>"]
    (folder / "vocab.json").write_text(json.dumps({s: i for i, s in enumerate(symbols)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return RobertaTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def clap_config(vocab_size: int, real_size: bool = False):
    """transformers' ClapConfig: HTSAT audio tower and RoBERTa text tower (real size: larger_clap_music)."""
    from transformers import ClapConfig

    if real_size:
        audio = dict(patch_embeds_hidden_size=128, depths=[2, 2, 12, 2], num_attention_heads=[4, 8, 16, 32],
                     hidden_size=1024, enable_fusion=True)
        text = dict(vocab_size=50265)
    else:
        audio = dict(patch_embeds_hidden_size=8, depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 2, 2],
                     hidden_size=64, enable_fusion=False)
        text = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=37, max_position_embeddings=80)
    return ClapConfig(text_config=text, audio_config=audio, projection_dim=512)


def tiny_clap(cache, repo_id: str = "test/tiny-clap", real_size: bool = False) -> str:
    """A random-weight HF CLAP model and processor in ``cache`` as ``repo_id``."""
    from transformers import ClapFeatureExtractor, ClapModel, ClapProcessor

    folder = hub_snapshot(cache, repo_id)
    tokenizer = byte_level_tokenizer(Path(cache) / "tokenizer-source")
    model = ClapModel(clap_config(len(tokenizer), real_size)).eval()
    model.save_pretrained(folder)
    ClapProcessor(ClapFeatureExtractor(), tokenizer).save_pretrained(folder)
    return repo_id


def tiny_w2v_bert(cache, repo_id: str = "test/tiny-w2v-bert", real_size: bool = False) -> str:
    """A random-weight Wav2Vec2BertModel (8 conformer layers; real size: w2v-BERT 2.0's 24 × 1024)."""
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel

    folder = hub_snapshot(cache, repo_id)
    config = Wav2Vec2BertConfig() if real_size else Wav2Vec2BertConfig(
        hidden_size=32, num_hidden_layers=8, num_attention_heads=2, intermediate_size=37, output_hidden_size=32,
        conv_depthwise_kernel_size=3)
    Wav2Vec2BertModel(config).eval().save_pretrained(folder)
    SeamlessM4TFeatureExtractor().save_pretrained(folder)
    return repo_id


def tiny_mert(cache, repo_id: str = "test/tiny-mert", real_size: bool = False) -> str:
    """A random-weight HuBERT-architecture model at 24 kHz, MERT's family (real size: 12 × 768, MERT-95M)."""
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    folder = hub_snapshot(cache, repo_id)
    config = HubertConfig() if real_size else HubertConfig(
        hidden_size=32, num_hidden_layers=8, num_attention_heads=2, intermediate_size=37, conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    HubertModel(config).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=24000, do_normalize=True, return_attention_mask=True).save_pretrained(folder)
    return repo_id
