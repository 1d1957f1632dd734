"""The decoders: the only list of them, name → estimator class (the names ``decoding.models`` takes; the schema's
enums of them are held equal to it by a test). Every class takes its option objects in its constructor, in the
order of its ``options``; ``pooled`` ones fit every subject of a fold at once (``decode-pooled``), the others one
subject (``decode``), and ``needs_rois`` ones fit only where the responses have ROI labels. ``whole-mask`` and
``roi-banded`` are also the names of those decoders' entries in the factorisation (``b2m.models.factors``)."""

from __future__ import annotations

from b2m.errors import ConfigError
from b2m.models.contrastive import ContrastiveDecoder
from b2m.models.decoding import RidgeDecoder, RoiBandedDecoder, RoiEnsembleDecoder
from b2m.models.factors import ROI_BANDED, WHOLE_MASK
from b2m.models.pooled import PooledDecoder
from b2m.models.selection import SelectedRidgeDecoder

DECODERS = {
    WHOLE_MASK: RidgeDecoder,
    "roi-ensemble": RoiEnsembleDecoder,
    ROI_BANDED: RoiBandedDecoder,
    "contrastive": ContrastiveDecoder,
    "pooled-aligned": PooledDecoder,
    "whole-mask-selected": SelectedRidgeDecoder,
}
POOLED = tuple(name for name, cls in DECODERS.items() if cls.pooled)  # the decoders of `decode-pooled`
ONE_SUBJECT = tuple(name for name, cls in DECODERS.items() if not cls.pooled)  # the decoders of `decode`
ORACLE = "oracle"  # the true embedding, reconstructed from as a decoder's prediction is (b2m.reconstruct.retrieval)
RECONSTRUCTED = (*ONE_SUBJECT, ORACLE)  # what reconstructions are made from


def check_decoders(names, option: str, known: tuple = tuple(DECODERS)) -> None:
    """Stop, naming ``option`` and the ``known`` decoders, where one of ``names`` (the decoders ``option`` names) is
    not among them: a stage's flags are typed by hand (the config's names are held to the schema's enums)."""
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"options: {option} names {', '.join(unknown)}, not among the decoders it takes "
                          f"(b2m.models.decoders); fix: name one of {', '.join(known)}")


def make_decoder(name: str, options: dict):
    """The unfitted decoder ``name`` with its settings: ``options`` (option class → object) holds the option
    objects its constructor takes (``options`` of its class)."""
    check_decoders([name], "the decoder")
    cls = DECODERS[name]
    return cls(*(options[option] for option in cls.options))
