"""Music generated from a predicted embedding, with fixed seeds, ``n_samples`` per clip.

- ``musicldm``: diffusers' ``MusicLDMPipeline`` conditioned directly on the embedding as ``prompt_embeds``
  (clips × 512, L2-normalised, as its CLAP text tower outputs them). Classifier-free guidance contrasts it with
  ``negative_prompt_embeds``: the CLAP text embedding of the empty string, what MusicLDM uses when no negative
  prompt is given. MusicLDM was trained on its own CLAP (``text_encoder``, HTSAT-base + RoBERTa), so the decoder's
  target space must be that model's: the feature ``clap-audio`` with ``backend: transformers`` and
  ``model: ucsd-reach/musicldm``. The pipeline is deprecated in diffusers; b2m pins diffusers 0.42.1, with
  which it runs.
- ``caption``: the embedding picks the nearest caption by cosine among the captions' CLAP text embeddings (the
  clip's own caption left out), and MusicGen (transformers) renders it.

Each (clip, sample) draws its noise from its own seed, ``sample_seed(seed, clip_number, sample)``, so a clip's
audio does not depend on which other clips share its batch. On CPU generation runs, slowly, and says so.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from b2m.errors import InputError
from b2m.features.clap import clap_text_features, l2_normalise
from b2m.features.weights import MissingWeightsError, Weights, torch_device
from b2m.options import GENERATORS

log = logging.getLogger(__name__)

MUSICLDM = GENERATORS["musicldm"].model
MUSICGEN = GENERATORS["caption"].model


def sample_seed(seed: int, clip_number: int, sample: int) -> int:
    """The seed of one (clip, sample): distinct for every clip number and sample index < 1000."""
    return seed * 1_000_003 + clip_number * 1_000 + sample


def _warn_cpu(device: str, name: str) -> None:
    if device == "cpu":
        log.warning("%s runs on the CPU: expect minutes per clip (a GPU takes seconds)", name)


class MusicLdmGenerator:
    """MusicLDM conditioned on CLAP embeddings; ``generate`` → clips × samples of waveforms at ``sample_rate``."""

    name = "musicldm"

    def __init__(self, cache, model: str = MUSICLDM, steps: int = 200, guidance_scale: float = 2.0,
                 seconds: float = 10.0, batch_size: int = 4, device: str = "auto"):
        from diffusers import MusicLDMPipeline

        weights = Weights(model)
        folder = weights.local_path(cache)
        self.device = torch_device(device)
        try:
            self.pipe = MusicLDMPipeline.from_pretrained(folder).to(self.device)
        except OSError as err:
            raise MissingWeightsError(weights, cache) from err
        self.pipe.set_progress_bar_config(disable=True)
        self.steps, self.guidance_scale, self.seconds, self.batch_size = steps, guidance_scale, seconds, batch_size
        self.sample_rate = int(self.pipe.vocoder.config.sampling_rate)
        self.dim = int(self.pipe.text_encoder.config.projection_dim)
        self.unconditional = l2_normalise(clap_text_features(self.pipe.text_encoder, self.pipe.tokenizer, [""],
                                                             self.device))
        _warn_cpu(self.device, self.name)

    def generate(self, embeddings: np.ndarray, clip_ids, n_samples: int, seed: int) -> list[list[np.ndarray]]:
        import torch

        if embeddings.shape[1] != self.dim:
            raise InputError(self.name, f"MusicLDM is conditioned on {self.dim}-d CLAP embeddings, the decoder "
                             f"predicts {embeddings.shape[1]}-d", "generate from the predictions of MusicLDM's own "
                             f"CLAP space (extractor clap-audio, backend transformers, model {MUSICLDM})")
        conditions = torch.from_numpy(l2_normalise(embeddings)).to(self.device)
        negative = torch.from_numpy(self.unconditional).to(self.device)
        audio = [[None] * n_samples for _ in clip_ids]
        began = time.perf_counter()
        for sample in range(n_samples):
            for start in range(0, len(clip_ids), self.batch_size):
                batch = range(start, min(start + self.batch_size, len(clip_ids)))
                generators = [torch.Generator(self.device).manual_seed(sample_seed(seed, i, sample)) for i in batch]
                out = self.pipe(prompt_embeds=conditions[batch.start:batch.stop],
                                negative_prompt_embeds=negative.repeat(len(batch), 1),
                                num_inference_steps=self.steps, guidance_scale=self.guidance_scale,
                                audio_length_in_s=self.seconds, generator=generators)
                for i, waveform in zip(batch, out.audios):
                    audio[i][sample] = np.asarray(waveform, dtype=np.float32)
            log.info("musicldm: sample %d/%d of %d clips (%.1f s)", sample + 1, n_samples, len(clip_ids),
                     time.perf_counter() - began)
        return audio


def caption_vectors(features_path, captions_path) -> pd.DataFrame:
    """clip_id, caption and ``vector`` (its CLAP text embedding) from a clap-text feature table and the captions."""
    from b2m.data.captions import read_captions

    features = pd.read_parquet(features_path)
    vectors = features[features.window == 0][["clip_id", "embedding"]].rename(columns={"embedding": "vector"})
    return vectors.merge(read_captions(captions_path, vectors.clip_id)[["clip_id", "caption"]], on="clip_id")


class CaptionGenerator:
    """Nearest caption by CLAP text similarity, rendered by MusicGen. ``caption_vectors``: clip_id, caption,
    ``vector`` (the captions' CLAP text embeddings, in the decoder's target space)."""

    name = "caption"

    def __init__(self, cache, caption_vectors: pd.DataFrame, model: str = MUSICGEN, seconds: float = 10.0,
                 guidance_scale: float = 3.0, device: str = "auto"):
        from transformers import AutoTokenizer, MusicgenForConditionalGeneration

        weights = Weights(model)
        folder = weights.local_path(cache)
        self.device = torch_device(device)
        try:
            self.model = MusicgenForConditionalGeneration.from_pretrained(folder).to(self.device).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
        except OSError as err:
            raise MissingWeightsError(weights, cache) from err
        self.captions = caption_vectors.reset_index(drop=True)
        self.caption_matrix = l2_normalise(np.stack(self.captions.vector.to_numpy()))
        self.seconds, self.guidance_scale = seconds, guidance_scale
        self.sample_rate = int(self.model.config.audio_encoder.sampling_rate)
        # MusicGen's codebook delay pattern loses (codebooks - 1) frames; ask for them too, then trim.
        self.n_tokens = int(np.ceil(seconds * self.model.config.audio_encoder.frame_rate)) + \
            self.model.config.decoder.num_codebooks - 1
        self.n_samples = int(round(seconds * self.sample_rate))
        _warn_cpu(self.device, self.name)

    def nearest_captions(self, embeddings: np.ndarray, clip_ids) -> pd.DataFrame:
        """clip_id, caption_clip, caption, similarity: each embedding's most similar caption, never its own clip's."""
        from b2m.reconstruct.retrieval import top_k_cosine

        index, similarity = top_k_cosine(embeddings, self.caption_matrix, 1, self.captions.clip_id.to_numpy(),
                                         [{clip_id} for clip_id in clip_ids])
        chosen = self.captions.iloc[index[:, 0]]
        return pd.DataFrame({"clip_id": list(clip_ids), "caption_clip": chosen.clip_id.to_numpy(),
                             "caption": chosen.caption.to_numpy(), "similarity": similarity[:, 0]})

    def generate(self, embeddings: np.ndarray, clip_ids, n_samples: int, seed: int) -> list[list[np.ndarray]]:
        import torch

        if embeddings.shape[1] != self.caption_matrix.shape[1]:
            raise InputError(self.name, f"the captions' embeddings are {self.caption_matrix.shape[1]}-d, the decoder "
                             f"predicts {embeddings.shape[1]}-d", "generate from the predictions of the CLAP space "
                             "the captions were embedded in (clap-audio or clap-text of one CLAP model)")
        self.chosen_ = self.nearest_captions(embeddings, clip_ids)
        audio, began = [], time.perf_counter()
        for i, caption in enumerate(self.chosen_.caption):
            tokens = self.tokenizer([caption], padding=True, return_tensors="pt").to(self.device)
            samples = []
            for sample in range(n_samples):
                torch.manual_seed(sample_seed(seed, i, sample))
                with torch.inference_mode():
                    values = self.model.generate(**tokens, do_sample=True, guidance_scale=self.guidance_scale,
                                                 max_new_tokens=self.n_tokens)
                samples.append(values[0, 0, :self.n_samples].float().cpu().numpy())
            audio.append(samples)
            log.info("caption: %d/%d clips rendered (%.1f s)", i + 1, len(clip_ids), time.perf_counter() - began)
        return audio
