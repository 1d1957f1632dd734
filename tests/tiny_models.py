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


def tiny_musicldm(cache, repo_id: str = "test/tiny-musicldm") -> str:
    """A random-weight MusicLDM pipeline (diffusers layout: CLAP text_encoder and tokenizer, UNet conditioned on
    the 512-d CLAP embedding by a class-embedding projection, KL autoencoder, HiFi-GAN vocoder at 16 kHz with
    64 samples per mel frame, DDIM scheduler) in ``cache`` as ``repo_id``."""
    from diffusers import AutoencoderKL, DDIMScheduler, MusicLDMPipeline, UNet2DConditionModel
    from transformers import ClapFeatureExtractor, ClapModel, SpeechT5HifiGan, SpeechT5HifiGanConfig

    folder = hub_snapshot(cache, repo_id)
    tokenizer = byte_level_tokenizer(Path(cache) / "tokenizer-source")
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, norm_num_groups=4, attention_head_dim=4, class_embed_type="simple_projection",
        projection_class_embeddings_input_dim=512, class_embeddings_concat=True)
    vae = AutoencoderKL(in_channels=1, out_channels=1, latent_channels=4, block_out_channels=(8, 16), norm_num_groups=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=8, sampling_rate=16000, upsample_initial_channel=16, upsample_rates=[8, 8],
        upsample_kernel_sizes=[16, 16], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
        normalize_before=False))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False)
    MusicLDMPipeline(vae=vae, text_encoder=ClapModel(clap_config(len(tokenizer))).eval(), tokenizer=tokenizer,
                     feature_extractor=ClapFeatureExtractor(), unet=unet, scheduler=scheduler,
                     vocoder=vocoder).save_pretrained(folder)
    return repo_id


def tiny_musicgen(cache, repo_id: str = "test/tiny-musicgen") -> str:
    """A random-weight MusicGen (T5 text encoder, EnCodec at 16 kHz and 50 frames/s with 6 codebooks of 32 codes,
    one decoder layer) and a tokenizer, in ``cache`` as ``repo_id``."""
    import torch
    from transformers import (EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, MusicgenForConditionalGeneration,
                              T5Config)

    folder = hub_snapshot(cache, repo_id)
    tokenizer = byte_level_tokenizer(Path(cache) / "tokenizer-source")
    text = T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    audio = EncodecConfig(sampling_rate=16000, hidden_size=16, num_filters=4, upsampling_ratios=[8, 5, 4, 2],
                          codebook_size=32, codebook_dim=16, num_residual_layers=1, target_bandwidths=[1.5])
    codes = audio.codebook_size  # the decoder's pad and start token sit just past the codebook, as in MusicGen
    decoder = MusicgenDecoderConfig(vocab_size=codes, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                    ffn_dim=32, num_codebooks=audio.num_quantizers, max_position_embeddings=512,
                                    pad_token_id=codes, bos_token_id=codes)
    model = MusicgenForConditionalGeneration(MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=audio.to_dict(),
                                                            decoder=decoder.to_dict())).eval()
    model.generation_config.decoder_start_token_id = codes
    model.generation_config.pad_token_id = codes
    generator = torch.Generator().manual_seed(0)
    # EnCodec's codebooks start as zeros (every code would decode alike); real checkpoints fill them.
    for layer in model.audio_encoder.quantizer.layers:
        layer.codebook.embed.copy_(torch.randn(layer.codebook.embed.shape, generator=generator))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return repo_id
