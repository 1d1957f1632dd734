"""The extractors: the only list of them and of their facts, importable without numpy (the workflow reads it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExtractorInfo:
    """Where an extractor's class lives, what it embeds (``audio`` windows or whole ``clip``s), whether it reads
    model weights, and whether it reads the captions."""

    module: str
    cls: str
    input: str
    needs_weights: bool
    reads_captions: bool = False


EXTRACTORS = {
    "acoustic": ExtractorInfo("b2m.features.acoustic", "AcousticExtractor", "audio", False),
    "labels": ExtractorInfo("b2m.features.labels", "LabelExtractor", "clip", False),
    "clap-audio": ExtractorInfo("b2m.features.clap", "ClapAudioExtractor", "audio", True),
    "clap-text": ExtractorInfo("b2m.features.clap", "ClapTextExtractor", "clip", True, reads_captions=True),
    "w2v-bert": ExtractorInfo("b2m.features.hidden_layer", "W2vBertExtractor", "audio", True),
    "mert": ExtractorInfo("b2m.features.hidden_layer", "MertExtractor", "audio", True),
}
CLAP_EXTRACTORS = ("clap-audio", "clap-text")
CLAP_BACKENDS = ("laion-clap", "transformers")  # the laion-clap package, or transformers' ClapModel
DEFAULT_CLAP_BACKEND = CLAP_BACKENDS[0]
