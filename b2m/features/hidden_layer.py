"""Self-supervised audio transformers, one hidden layer averaged over each window: w2v-BERT 2.0 (the paper's
own model family, layer 7 over 5 s windows: the w2v-BERT-avg analogue) and MERT (music-trained, same kind).

Each window is embedded on its own, so row i covers exactly the window's seconds. The encoder layers above
the one read are dropped before running (``hidden_states[layer]`` depends only on the layers below it; a test
checks the result is unchanged), which makes layer 7 of 24 about three times cheaper.
"""

from __future__ import annotations

import logging

import numpy as np

from b2m.errors import InputError
from b2m.features.audio import MODEL_INPUT_RMS, window_crops
from b2m.features.weights import DEFAULT_CACHE, MissingWeightsError, Weights, torch_device

log = logging.getLogger(__name__)


class HiddenLayerExtractor:
    """Mean over time of hidden layer ``layer`` (0 = the input to the first transformer layer) of a hub
    audio model, for each window: windows × hidden size (float32)."""

    input = "audio"
    name: str
    default_model: str
    sample_rate: int
    trust_remote_code = False

    def __init__(self, window: float = 5.0, stride: float = 1.5, layer: int = 7, cache=DEFAULT_CACHE,
                 model: str | None = None, batch_size: int = 4, device: str = "auto"):
        from transformers import AutoFeatureExtractor, AutoModel

        self.window, self.stride, self.layer, self.batch_size = window, stride, layer, batch_size
        self.device = torch_device(device)
        weights = self.weights(model)
        folder = weights.local_path(cache)
        try:
            self.feature_extractor = AutoFeatureExtractor.from_pretrained(folder)
            self.model = AutoModel.from_pretrained(folder, trust_remote_code=self.trust_remote_code)
        except OSError as err:
            raise MissingWeightsError(weights, cache) from err
        extractor_rate = getattr(self.feature_extractor, "sampling_rate", self.sample_rate)
        if extractor_rate != self.sample_rate:
            raise InputError(folder, f"the model's feature extractor expects {extractor_rate} Hz, "
                             f"{self.name} feeds {self.sample_rate} Hz", f"use a {self.name} checkpoint")
        layers = self.model.encoder.layers
        if not 0 <= layer <= len(layers):
            raise InputError(folder, f"layer {layer} asked of a model with {len(layers)} layers",
                             f"set `layer` between 0 and {len(layers)}")
        if not getattr(self.model.config, "do_stable_layer_norm", False):  # no norm after the last layer
            self.model.encoder.layers = layers[:layer]
        self.model.to(self.device).eval()
        log.info("%s: %s, layer %d of %d, on %s", self.name, weights, layer, len(layers), self.device)
        self.dim = self.model.config.hidden_size

    @classmethod
    def weights(cls, model: str | None = None) -> Weights:
        return Weights(model or cls.default_model)

    def embed(self, audio: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Windows × dim for the windows starting at ``starts`` (s) of one excerpt (at ``sample_rate``)."""
        crops = window_crops(audio * MODEL_INPUT_RMS, self.sample_rate, starts, self.window)
        return np.concatenate([self._embed_batch(crops[i:i + self.batch_size])
                               for i in range(0, len(crops), self.batch_size)])

    def _embed_batch(self, crops: np.ndarray) -> np.ndarray:
        import torch

        inputs = self.feature_extractor(list(crops), sampling_rate=self.sample_rate, return_tensors="pt")
        with torch.inference_mode():
            output = self.model(**{k: v.to(self.device) for k, v in inputs.items()}, output_hidden_states=True)
        return output.hidden_states[self.layer].mean(dim=1).float().cpu().numpy()


class W2vBertExtractor(HiddenLayerExtractor):
    """w2v-BERT 2.0 (``facebook/w2v-bert-2.0``, 16 kHz, 1024-d)."""

    name = "w2v-bert"
    default_model = "facebook/w2v-bert-2.0"
    sample_rate = 16000


class MertExtractor(HiddenLayerExtractor):
    """MERT (``m-a-p/MERT-v1-95M``, 24 kHz, 768-d); its model code comes with its weights (trust_remote_code)."""

    name = "mert"
    default_model = "m-a-p/MERT-v1-95M"
    sample_rate = 24000
    trust_remote_code = True
