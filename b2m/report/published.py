"""Published results beside b2m's: the one registry of them, which the report's Table 2 and its identification
figure read. Each result says what was measured, on what, and which b2m row it compares to (the extractor whose
space stands in for the published one, and the decoder, where b2m has such a row); a result b2m has no row of in
Table 2 is shown alone."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Study:
    """A published study: ``name`` as the report shows it, its ``citation`` and the ``column`` prefix of its
    values in Table 2 (``<column>_space``, ``_mean``, ``_sd``)."""

    name: str
    citation: str
    column: str


DENK = Study("Denk et al. 2023, Table 2", "Denk, Takagi, Yamamoto, Gardner, Nishimoto & Tanaka 2023, Brain2Music: "
             "reconstructing music from human brain activity, arXiv 2307.11078", "paper")
CIFERRI = Study("Ciferri et al. 2025", "Ciferri, Ferrante & Toschi 2025, Scientific Reports, "
                "doi:10.1038/s41598-025-26095-w", "ciferri")
STUDIES = (DENK, CIFERRI)

IDENTIFICATION = "test identification accuracy"  # of the decoded embeddings, b2m's identification table


@dataclass(frozen=True)
class Published:
    """One published number: ``mean`` ± ``sd`` (None: not given) of ``measure`` in ``space``, obtained by
    ``method``. It compares to b2m's identification rows of the spaces of ``extractor`` (and of decoder ``model``;
    None: every decoder); with no ``extractor`` b2m has no such row in Table 2, and ``compares_to`` says where
    b2m's counterpart is, if anywhere."""

    study: Study
    measure: str
    space: str
    method: str
    mean: float
    sd: float | None
    extractor: str | None
    model: str | None
    compares_to: str

    def matches(self, extractor: str, model: str) -> bool:
        """Whether b2m's identification row of a space of ``extractor`` decoded by ``model`` compares to it."""
        return self.measure == IDENTIFICATION and self.extractor == extractor and self.model in (None, model)


def _denk(space: str, mean: float, sd: float, extractor: str) -> Published:
    return Published(DENK, IDENTIFICATION, space, "ridge per ROI, the 6 best ROIs averaged", mean, sd, extractor,
                     None, f"every decoder on a space of the {extractor} extractor (its open stand-in)")


PUBLISHED = (
    _denk("MuLan-music", 0.876, 0.015, "clap-audio"),
    _denk("w2v-BERT-avg", 0.837, 0.005, "w2v-bert"),
    _denk("MuLan-text", 0.817, 0.014, "clap-text"),
    _denk("SoundStream-avg", 0.674, 0.016, "acoustic"),
    Published(CIFERRI, IDENTIFICATION, "CLAP", "ridge, every subject aligned to sub-001 and pooled", 0.914, 0.019,
              "clap-audio", "pooled-aligned", "the pooled-aligned decoder on a clap-audio space"),
    Published(CIFERRI, IDENTIFICATION, "CLAP", "ridge, subjects pooled with anatomical alignment only", 0.796, None,
              None, None, "no b2m row (the pooled-aligned decoder aligns functionally)"),
    Published(CIFERRI, "identification of the generated audio", "CLAP",
              "the best of 100 MusicLDM candidates per clip by the predicted brain response", 0.823, 0.029, None,
              None, "the brain-selected generation (reconstruction.generation.select: brain), in the reconstruction "
              "table"),
    Published(CIFERRI, "two-alternative listening test", "MusicLDM", "10 listeners, the foil a random other test "
              "reconstruction", 0.857, None, None, None, "the listening test's random-foil rows "
              "(listening_test_scores.tsv, foil scheme random)"),
)



def compared(study: Study, extractor: str, model: str) -> Published | None:
    """``study``'s identification result that b2m's row of a space of ``extractor`` decoded by ``model`` compares
    to, if any."""
    return next((p for p in PUBLISHED if p.study == study and p.matches(extractor, model)), None)


def citations() -> str:
    """Every study's column prefix, name and citation, for a table's note."""
    return "; ".join(f"{study.column}_: {study.name} ({study.citation})" for study in STUDIES)
