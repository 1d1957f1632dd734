"""Option objects: the settings of each stage as frozen dataclasses, each field naming the config key it comes
from, with its default in one place (the field). ``workflow/schemas/config.schema.yaml`` describes the same keys
for validation (a test holds the two equal). A job's options travel as one JSON document, ``{section: fields}``,
which ``b2m.study`` builds for every rule and the command line reads back (``read_document``).

Keys are dotted paths of the config; ``{feature}`` and ``{generator}`` stand for the name of the feature space or
generator whose section is read. A field without a key is set by the study from the keys it is ``derived`` from.
This module imports nothing heavy: Snakemake reads it when it parses the workflow.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field

from b2m.inputs import INPUT_KINDS

OPENNEURO_S3 = "https://s3.amazonaws.com/openneuro.org"
# The decoders fit by default (`decoding.models`): their registry is ``b2m.models.decoders.DECODERS``.
DEFAULT_DECODING_MODELS = ("whole-mask", "roi-ensemble", "roi-banded")
RIDGE_BACKENDS = ("auto", "cpu", "numpy", "torch", "torch_cuda")  # himalaya's, b2m.models.backend
RIDGE_SEED = 0


def option(key: str | None, default=None, help: str = "", derived: tuple[str, ...] = (), flag: str | None = None,
           choices: tuple | None = None):
    """A dataclass field read from config ``key`` (or, without a key, set from the keys it is ``derived``
    from); ``help`` is its command-line help, ``flag`` its option name there (default: the field's name) and
    ``choices`` the values it takes, where they are few (the schema's enum; a test holds the two equal)."""
    return field(default=default, metadata={"key": key, "help": help, "derived": derived, "flag": flag,
                                            "choices": choices})


def keys_of(cls, **names) -> list[str]:
    """The config keys every field of ``cls`` is read or derived from, with ``{feature}`` etc. filled in."""
    found = []
    for item in dataclasses.fields(cls):
        keys = [item.metadata["key"]] if item.metadata["key"] else list(item.metadata["derived"])
        found += [key.format(**names) for key in keys]
    return found


def lookup(config: dict, key: str):
    """The value at dotted ``key`` of ``config``, or None where any part is missing."""
    value = config
    for part in key.split("."):
        if not isinstance(value, dict) or value.get(part) is None:
            return None
        value = value[part]
    return value


def from_config(cls, config: dict, **names):
    """An option object of ``cls`` with each keyed field read from ``config`` (missing keys keep the default)."""
    values = {}
    for item in dataclasses.fields(cls):
        if item.metadata["key"]:
            value = lookup(config, item.metadata["key"].format(**names))
            if value is not None:
                values[item.name] = tuple(value) if isinstance(item.default, tuple) else value
    return cls(**values)


def field_types(cls) -> dict[str, type]:
    return typing.get_type_hints(cls)


def document(*objects) -> str:
    """The JSON options document of a job: ``{section: fields}`` for each option object."""
    return json.dumps({obj.section: dataclasses.asdict(obj) for obj in objects}, sort_keys=True)


def read_document(text: str, classes) -> dict:
    """Option objects of ``classes`` (class → object) from a JSON options document; sections it lacks take the
    defaults, and an unknown section or field is an error naming it."""
    given = json.loads(text) if text else {}
    sections = {cls.section: cls for cls in classes}
    unknown = sorted(set(given) - set(sections))
    if unknown:
        raise ValueError(f"options document: unknown sections {unknown}; this stage reads {sorted(sections)}")
    objects = {}
    for cls in classes:
        values = given.get(cls.section, {})
        names = {item.name: item for item in dataclasses.fields(cls)}
        bad = sorted(set(values) - set(names))
        if bad:
            raise ValueError(f"options document: {cls.section} has no fields {bad}")
        objects[cls] = cls(**{k: tuple(v) if isinstance(names[k].default, tuple) and v is not None else v
                              for k, v in values.items()})
    return objects


# ---------------------------------------------------------------- data




@dataclass(frozen=True)
class DatasetOptions:
    """The BIDS dataset whose events and sidecars every stage reads."""

    section: typing.ClassVar[str] = "dataset"
    bids_root: str | None = option("dataset.bids_root", None, "BIDS folder of the study", flag="bids")
    repetition_time: float | None = option("dataset.repetition_time", None,
                                           "the study's TR (s); every run's sidecar must agree (ds003720: 1.5)",
                                           flag="tr")


CV_SCHEMES = ("run", "stimulus")  # what a cv-<k> fold holds out: groups of runs, or of stimuli


@dataclass(frozen=True)
class DesignOptions:
    """How a study's events become stimuli and rows (``b2m.data.design``): which runs and events are analysed,
    which column names the stimulus (a column or a template of columns, with an excerpt's start and end), which
    columns label it, and which stimuli the folds hold out."""

    section: typing.ClassVar[str] = "design"
    tasks: tuple[str, ...] = option("design.tasks", (), "tasks analysed (default: every task of the folder)")
    stimulus_column: str | None = option("design.stimulus.column", None, "events column naming each stimulus's "
                                         "file under the stimulus folder (BIDS: stim_file)", flag="stimulus-column")
    stimulus_template: str | None = option("design.stimulus.template", None, "the stimulus file under the stimulus "
                                           "folder as a template of event columns, e.g. {genre}/{genre}.{track:05d}")
    excerpt_start: str | None = option("design.stimulus.start", None, "events column of the excerpt's start in its "
                                       "file (s; default 0)")
    excerpt_end: str | None = option("design.stimulus.end", None, "events column of the excerpt's end in its file "
                                     "(s; default start + the event's duration)")
    labels: tuple[str, ...] = option("design.labels", (), "events columns that label a stimulus (the first is the "
                                     "class of class agreement and of stratified folds)")
    keep: dict | None = option("design.keep", None, "column → values: only these events are analysed")
    drop: dict | None = option("design.drop", None, "column → values: these events are left out")
    lead_in: int = option("design.lead_in", 0, "events at the start of each run that are not analysed")
    test: dict | None = option("design.test", None, "entities of the runs that hold the declared test set, e.g. "
                               "{task: Test} (none: no test fold)", flag="test-set")
    cv: str = option("design.cv", "run", "what a cv-<k> fold holds out: groups of runs (only where runs share no "
                     "stimulus) or of stimuli, stratified by the first label", choices=CV_SCHEMES)
    outer_folds: int = option("outer_folds", 4, "k of the cv-<k> folds (groups of runs or of stimuli, `design.cv`)")

    @property
    def has_stimuli(self) -> bool:
        """Whether events name their stimulus (else each event is a stimulus of its own, known by its labels)."""
        return bool(self.stimulus_column or self.stimulus_template)

    @property
    def label(self) -> str | None:
        """The first label column: the class of class agreement and of stratified folds (None without labels)."""
        return self.labels[0] if self.labels else None


@dataclass(frozen=True)
class FmriprepOptions:
    """fMRIPrep's preprocessed BOLD as input (``dataset.input: fmriprep``)."""

    section: typing.ClassVar[str] = "fmriprep"
    root: str | None = option("dataset.fmriprep.root", None, "fMRIPrep derivatives folder: read its preprocessed BOLD")
    space: str = option("dataset.fmriprep.space", "T1w", "fMRIPrep output space, e.g. T1w or MNI152NLin2009cAsym_res-2")


@dataclass(frozen=True)
class DownloadOptions:
    """The OpenNeuro download of the config's subjects (``dataset.download``)."""

    section: typing.ClassVar[str] = "download"
    accession: str | None = option("dataset.download.accession", None, "OpenNeuro accession, e.g. ds003720")
    url: str = option("dataset.download.url", OPENNEURO_S3, "the bucket's address")
    subjects: tuple[str, ...] = option(None, (), "subjects to fetch", derived=("subjects",))
    metadata_only: bool = option(None, False, "no images: events and sidecars only", derived=("dataset.input",))


@dataclass(frozen=True)
class CleaningOptions:
    """Mask and drift removal of each run: ``drift`` is ``median`` (running median over ``drift_window_s``),
    ``polynomial`` (Legendre of ``polynomial_order``) or ``none``. ``{subject}`` in mask and atlas is filled in."""

    section: typing.ClassVar[str] = "cleaning"
    mask: str = option("responses.mask", "compute",
                       "mask NIfTI on the BOLD grid, or 'compute' (with fMRIPrep: its run masks' intersection)")
    atlas: str | None = option("responses.atlas", None, "ROI label NIfTI on the BOLD grid")
    drift: str = option("responses.drift", "median", "median, polynomial or none",
                        choices=("median", "polynomial", "none"))
    drift_window_s: float = option("responses.drift_window_s", 240.0, "running-median window (s)", flag="drift-window")
    polynomial_order: int = option("responses.polynomial_order", 3, "Legendre order of the polynomial drift")


@dataclass(frozen=True)
class WindowOptions:
    """Responses averaged over lagged embedding windows."""

    section: typing.ClassVar[str] = "windows"
    lag_s: float = option("responses.lag_s", 4.5, "hemodynamic lag (s)", flag="lag")


@dataclass(frozen=True)
class SimulationConfig:
    """Size and signal of a synthetic study. The default is the demo; ``full()`` is ds003720's size. The fields
    with a key are the config's ``simulate`` section (``b2m.options``)."""

    section: typing.ClassVar[str] = "simulation"
    n_subjects: int = option("simulate.n_subjects", 3, "subjects", flag="subjects")
    n_training_runs: int = option("simulate.n_training_runs", 4, "training runs per subject", flag="training-runs")
    n_test_runs: int = option("simulate.n_test_runs", 2, "test runs per subject", flag="test-runs")
    shape: tuple[int, int, int] = option("simulate.shape", (18, 22, 14), "voxel grid of the BOLD runs")
    voxel_mm: float = option(None, 2.0, "voxel size (mm)")
    audio_rate: int = option(None, 16000, "stimulus sample rate (Hz)")
    clip_seconds: float = option(None, 18.0, "length of each stimulus file (s)")
    snr: float = option("simulate.snr", 0.5, "planted signal / noise variance ratio")
    snr_spread: float = option("simulate.snr_spread", 1.0, "subjects' SNRs from snr / spread to snr × spread, "
                               "log-evenly in subject order (1: all at snr)")
    voxel_dropout: float = option("simulate.voxel_dropout", 0.0, "share of the cortex each subject's own mask "
                                  "(atlas/<subject>_cortex_mask.nii.gz) leaves out (0: the shared mask only)")
    planted_fraction: float = option(None, 0.6, "share of the planted ROIs' voxels that carry the signal")
    noise_percent: float = option(None, 1.0, "noise sd as a percentage of the baseline")
    noise_ar: float = option(None, 0.3, "AR(1) coefficient of the noise")
    corpus_tracks_per_genre: int = option(None, 10, "extra corpus tracks per genre")
    seed: int = option("simulate.seed", 0, "seed of everything simulated")
    gzip_bold: bool = option(None, False, "write the BOLD runs as .nii.gz, as OpenNeuro serves ds003720", flag="gzip")

    @classmethod
    def full(cls, **overrides) -> "SimulationConfig":
        """Real ds003720 dimensions: 5 subjects, 12 + 6 runs of 96×96×68×410, 30 s clips at 22,050 Hz."""
        return dataclasses.replace(cls(n_subjects=5, n_training_runs=12, n_test_runs=6, shape=(96, 96, 68),
                                       audio_rate=22050, clip_seconds=30.0), **overrides)


@dataclass(frozen=True)
class ValidationOptions:
    """What ``b2m validate`` checks the dataset for: the study's subjects, folds, window grids and inputs."""

    section: typing.ClassVar[str] = "validation"
    subjects: tuple[str, ...] = option(None, (), "subjects to check", derived=("subjects",))
    folds: tuple[str, ...] = option(None, (), "the outer folds", derived=("folds",))
    windows: tuple[tuple, ...] = option(None, (), "window grids [window_s, stride_s]",
                                        derived=("features.{feature}.window_s", "features.{feature}.stride_s"))
    input: str = option("dataset.input", "bids", "bids, fmriprep or authors-arrays", choices=tuple(INPUT_KINDS))
    stimuli: str | None = option("dataset.stimuli", None, "the folder the design's stimulus names are relative to",
                                 derived=("dataset.bids_root",))
    captions: str | None = option("dataset.captions", None, "the captions CSV (checked where a space reads it)",
                                  derived=("features.{feature}.extractor",))
    authors_arrays: str | None = option("dataset.authors_arrays", None, "folder of the authors' arrays")
    mask: str = option("responses.mask", "compute", "mask NIfTI ({subject} is filled in) or compute")
    atlas: str | None = option("responses.atlas", None, "ROI label NIfTI ({subject} is filled in)")


# ---------------------------------------------------------------- features


@dataclass(frozen=True)
class ExtractorOptions:
    """One feature space: its extractor, window grid and the extractor's own options (None: the extractor's
    default)."""

    section: typing.ClassVar[str] = "extractor"
    extractor: str | None = option("features.{feature}.extractor", None, "extractor (default: the feature's name)")
    window_s: float = option("features.{feature}.window_s", 1.5, "embedding window (s)", flag="window")
    stride_s: float = option("features.{feature}.stride_s", 1.5, "window stride (s)", flag="stride")
    backend: str | None = option("features.{feature}.backend", None, "CLAP backend: laion-clap or transformers")
    model: str | None = option("features.{feature}.model", None, "hub model id (transformers CLAP, w2v-bert, mert)")
    checkpoint: str | None = option("features.{feature}.checkpoint", None, "laion-clap checkpoint: a .pt file or "
                                    "org/repo/file.pt on the hub")
    amodel: str | None = option("features.{feature}.amodel", None, "laion-clap audio model of the checkpoint")
    layer: int | None = option("features.{feature}.layer", None, "hidden layer of w2v-bert / mert")
    batch_size: int | None = option("features.{feature}.batch_size", None, "windows (or captions) per model call")
    device: str | None = option("features.{feature}.device", None, "torch device (cpu, cuda)")
    column: str | None = option("features.{feature}.column", None, "labels: the label column one-hot coded "
                                "(default: the design's first label)")

    def model_options(self) -> dict:
        """The extractor's keyword options that are set (the rest keep the extractor's defaults)."""
        names = ("backend", "model", "checkpoint", "amodel", "layer", "batch_size", "device", "column")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


@dataclass(frozen=True)
class ModelCacheOptions:
    section: typing.ClassVar[str] = "models"
    cache: str = option("models.cache", "models", "model weights folder (hub cache layout)")


# ---------------------------------------------------------------- models


def backend_option():
    """``ridge.backend``, read by the ridge fits and the factorisations alike."""
    return option("ridge.backend", "auto", "ridge backend: auto (torch_cuda with a GPU, else cpu), cpu (numpy), "
                  "numpy, torch, torch_cuda", choices=RIDGE_BACKENDS)


def inner_folds_option():
    """``ridge.cv_folds``, read by the ridge fits and the factorisations alike."""
    return option("ridge.cv_folds", 5, "inner CV folds, grouped by run")


def seed_option():
    """``ridge.seed``, read by the ridge fits and the factorisations (the random search's draws) alike."""
    return option("ridge.seed", RIDGE_SEED, "seed of permutations, bootstraps and random search")


@dataclass(frozen=True)
class RidgeOptions:
    """Ridge settings shared by decoding and encoding."""

    section: typing.ClassVar[str] = "ridge"
    backend: str = backend_option()
    alpha_min_exp: float = option("ridge.alpha_min_exp", -1.0, "log10 of the smallest alpha")
    alpha_max_exp: float = option("ridge.alpha_max_exp", 7.0, "log10 of the largest alpha")
    n_alphas: int = option("ridge.n_alphas", 17, "alphas on the log grid")
    cv_folds: int = inner_folds_option()
    seed: int = seed_option()
    n_targets_batch: int | None = option("ridge.n_targets_batch", None, "himalaya: targets solved at once (memory)")
    n_alphas_batch: int | None = option("ridge.n_alphas_batch", None, "himalaya: alphas solved at once (memory)")
    y_in_cpu: bool = option("ridge.y_in_cpu", False, "himalaya: keep targets in host memory on a GPU")

    def alphas(self):
        """The ridge penalties searched: ``n_alphas`` on a log grid from 10^alpha_min_exp to 10^alpha_max_exp."""
        import numpy as np

        return np.logspace(self.alpha_min_exp, self.alpha_max_exp, self.n_alphas)

    def solver_params(self) -> dict:
        """The solvers' memory knobs that are set (``n_targets_batch``, ``n_alphas_batch``), as they take them."""
        return {key: getattr(self, key) for key in ("n_targets_batch", "n_alphas_batch")
                if getattr(self, key) is not None}


def permutations_option():
    """``decoding.n_permutations``, read by the per-subject and pooled decoders alike."""
    return option("decoding.n_permutations", 200, "permutations for chance identification")


def bootstrap_option():
    """``decoding.n_bootstrap``, read by the per-subject and pooled decoders alike."""
    return option("decoding.n_bootstrap", 1000, "bootstrap resamples of clips for the CIs")


@dataclass(frozen=True)
class DecodingOptions:
    """The per-subject decoders of `b2m decode`: ``models`` are those of ``decoding.models`` fit on one subject
    (the study leaves out the pooled ones, whose jobs are their own)."""

    section: typing.ClassVar[str] = "decoding"
    models: tuple[str, ...] = option(None, DEFAULT_DECODING_MODELS, "decoders fit on one subject",
                                     derived=("decoding.models",))
    roi_k: int = option("decoding.roi_k", 6, "ROIs averaged in the ROI ensemble (best by CV score)")
    n_permutations: int = permutations_option()
    n_bootstrap: int = bootstrap_option()
    segment_s: float | None = option("decoding.segment_s", None, "also identify every whole segment of this many "
                                     "seconds of each stimulus by its time course (long pieces; none: not)",
                                     flag="segment")


@dataclass(frozen=True)
class ContrastiveOptions:
    """The contrastive linear decoder (``b2m.models.contrastive``): a linear map trained with an InfoNCE loss;
    its temperature, weight decay and epochs are chosen by inner CV grouped by run among the values given."""

    section: typing.ClassVar[str] = "contrastive"
    temperatures: tuple[float, ...] = option("decoding.contrastive.temperatures", (0.05, 0.2),
                                             "InfoNCE temperatures searched")
    weight_decays: tuple[float, ...] = option("decoding.contrastive.weight_decays", (0.01, 1.0),
                                              "AdamW weight decays searched")
    epochs: tuple[int, ...] = option("decoding.contrastive.epochs", (10, 30, 60),
                                     "training lengths searched (passes over the training rows)")
    learning_rate: float = option("decoding.contrastive.learning_rate", 3e-3, "AdamW learning rate")
    batch_size: int = option("decoding.contrastive.batch_size", 512, "rows per step (the negatives of each row)")
    components: int = option("decoding.contrastive.components", 256,
                             "principal components of the training responses the map starts from (0: all)")
    device: str = option("decoding.contrastive.device", "cpu", "torch device (cpu, cuda)")
    seed: int = seed_option()


VOXEL_SELECTION = ("top", "r")  # what `decoding.voxel_selection.candidates` are: voxel counts, or encoding-r thresholds
ALL_VOXELS = "all"  # the candidate that keeps every voxel of the mask


@dataclass(frozen=True)
class SelectionOptions:
    """The voxel selection of the ``whole-mask-selected`` decoder (``b2m.models.selection``): the voxels whose
    encoding r in the inner CV is among the ``top`` count, or above the ``r`` threshold, of one of ``candidates``
    (``all``: the whole mask), the candidate chosen by the inner CV."""

    section: typing.ClassVar[str] = "selection"
    by: str = option("decoding.voxel_selection.by", "top", "top: the candidates are voxel counts (the best by "
                     "encoding r); r: encoding-r thresholds", flag="selection-by", choices=VOXEL_SELECTION)
    candidates: tuple[str, ...] = option("decoding.voxel_selection.candidates", (1000, 3000, 10000, ALL_VOXELS),
                                         "voxel counts (by: top) or r thresholds (by: r), or all, among which the "
                                         "inner CV chooses", flag="selection-candidates")

    def values(self) -> tuple:
        """The candidates as numbers (``all`` as it is), from the config's numbers or the flags' strings alike;
        a ``ConfigError`` names a candidate that ``by`` does not take."""
        from b2m.errors import ConfigError

        def value(candidate):
            if candidate == ALL_VOXELS:
                return candidate
            number = float(candidate)
            if (self.by == "top" and (number < 1 or not number.is_integer())) or (self.by == "r" and abs(number) >= 1):
                raise ValueError
            return int(number) if self.by == "top" else number

        try:
            if not self.candidates:
                raise ValueError
            return tuple(value(candidate) for candidate in self.candidates)
        except ValueError:
            takes = "whole numbers ≥ 1" if self.by == "top" else "numbers between -1 and 1"
            raise ConfigError(f"decoding.voxel_selection.candidates {list(self.candidates)} with by: {self.by} "
                              f"take {takes} or {ALL_VOXELS}; fix: give such candidates, or the other `by`") from None


@dataclass(frozen=True)
class PooledOptions:
    """The pooled decoder over subjects (``b2m.models.pooled``): each subject's responses mapped by ridge to the
    ``reference`` (a subject, or ``shared``: the aligned subjects' average, ``n_iter`` times), reduced to its
    first ``components`` principal components, then one ridge decoder on every subject's aligned rows."""

    section: typing.ClassVar[str] = "pooled"
    subjects: tuple[str, ...] = option(None, (), "subjects pooled", derived=("subjects",))
    reference: str = option("decoding.pooled.reference", "shared",
                            "a subject whose responses are the reference space, or shared (the average of the "
                            "aligned subjects, iterated)")
    n_iter: int = option("decoding.pooled.n_iter", 2, "shared: alignments to the average, each on the last")
    components: int = option("decoding.pooled.components", 256,
                             "principal components of the reference space (0: all its voxels)")
    n_permutations: int = permutations_option()
    n_bootstrap: int = bootstrap_option()


@dataclass(frozen=True)
class KshotOptions:
    """A new subject from minutes of its data (``b2m.models.pooled``, ``decode-kshot``): the pooled decoder and its
    shared space built from every other subject, the left-out subject aligned to it with the first ``minutes`` of
    its own training runs (0: anatomically, by voxel position, without its data)."""

    section: typing.ClassVar[str] = "kshot"
    minutes: tuple[float, ...] = option("decoding.pooled.kshot_minutes", (),
                                        "minutes of the left-out subject's training data its alignment learns from "
                                        "(0: anatomical, where the subjects share a voxel grid; empty: no k-shot jobs)")


@dataclass(frozen=True)
class FactorOptions:
    """What the factorisation of a subject × fold × window depends on (``b2m.models.factors``): the inner CV, the
    backend, and the ROI-banded decoder's random search."""

    section: typing.ClassVar[str] = "factors"
    backend: str = backend_option()
    cv_folds: int = inner_folds_option()
    seed: int = seed_option()
    n_iter: int = option("decoding.n_iter", 10, "random-search draws of the ROI weights of the roi-banded decoder")


def permutation_blocks():
    """``encoding.permutation_block_s``, read by plain and banded encoding alike."""
    return option("encoding.permutation_block_s", None, "the permutation null exchanges blocks of this many seconds of "
                  "each stimulus (pieces of minutes) instead of whole stimuli (null)", flag="permutation-block")


def encoding_permutations():
    """``encoding.n_permutations``, read by plain and banded encoding alike."""
    return option("encoding.n_permutations", 0, "clip-block permutations for voxel p-values (0: the Gaussian null)")


@dataclass(frozen=True)
class EncodingOptions:
    section: typing.ClassVar[str] = "encoding"
    delays: tuple[int, ...] = option("encoding.delays", (0,), "FIR delays in windows (0 = none)")
    n_permutations: int = encoding_permutations()
    permutation_block_s: float | None = permutation_blocks()


@dataclass(frozen=True)
class FoldPoolingOptions:
    """The cv folds an encoding job of fold ``cv-all`` fits one by one and scores together (every out-of-fold
    prediction at once); in the documents of those jobs only (``b2m.jobs.options_of``)."""

    section: typing.ClassVar[str] = "pooling"
    folds: tuple[str, ...] = option(None, (), "the cv-<k> folds pooled into fold cv-all", derived=("folds",))


@dataclass(frozen=True)
class BandedOptions:
    section: typing.ClassVar[str] = "banded"
    n_iter: int = option("encoding.n_iter", 20, "random-search draws of the band weights")
    n_permutations: int = encoding_permutations()
    permutation_block_s: float | None = permutation_blocks()


# ---------------------------------------------------------------- reconstruction


@dataclass(frozen=True)
class ExcerptOptions:
    """The part of each corpus track that is embedded and written as audio."""

    section: typing.ClassVar[str] = "excerpt"
    seconds: float = option("reconstruction.corpus.seconds", 15.0, "seconds of each track")
    offset_s: float = option("reconstruction.corpus.offset_s", 0.0, "start of the part of each track (s)",
                             flag="offset")


@dataclass(frozen=True)
class CorpusOptions:
    section: typing.ClassVar[str] = "corpus"
    sources: tuple[dict, ...] = option("reconstruction.corpus.sources", (),
                                       "corpus folders: {path, layout (gtzan, fma, folder)[, tracks_csv]}")
    chunks: int = option("reconstruction.corpus.chunks", 16, "chunk jobs the corpus is indexed in (a track's chunk "
                         "is a hash of its id)")


@dataclass(frozen=True)
class CorpusCacheOptions:
    section: typing.ClassVar[str] = "corpus_cache"
    vector_cache: str = option("reconstruction.corpus.cache", "corpus-cache", "folder of corpus vectors kept by "
                               "audio content and extractor settings, shared by runs, configs and studies")


@dataclass(frozen=True)
class SpaceOptions:
    section: typing.ClassVar[str] = "space"
    space: str = option("reconstruction.features.{feature}.space", "standardised",
                        "retrieval space: the extractor's own (raw), or standardised by the decoder's training targets",
                        choices=("raw", "standardised"))


def audio_model():
    """``reconstruction.audio.model``: the decoder whose reconstructions are written as audio and listened to."""
    return option("reconstruction.audio.model", "whole-mask", "decoder whose reconstructions are heard (a "
                  "one-subject decoder of b2m.models.decoders, or oracle)")


@dataclass(frozen=True)
class RetrievalOptions:
    section: typing.ClassVar[str] = "retrieval"
    top_k: int = option("reconstruction.top_k", 10, "corpus tracks retrieved per clip")
    audio_model: str = audio_model()
    audio_top: int = option("reconstruction.audio.top", 3, "retrieved tracks written per clip")


BRAIN_SELECTIONS = ("all", "brain")  # reconstruction.generation.select


@dataclass(frozen=True)
class BrainScoreOptions:
    """Brain-scored reconstruction (b2m.models.brain_score): the candidates scored and the voxels they are scored on."""

    section: typing.ClassVar[str] = "brain_score"
    rerank: int = option("reconstruction.rerank", 0, "retrieval: re-rank each clip's top k corpus tracks by the brain "
                         "score, as method retrieval-brain (0: off)")
    select: str = option("reconstruction.generation.select", "all", "generation: all (every sample scored) or brain "
                         "(also the sample of best brain score, as method <generator>-brain)", choices=BRAIN_SELECTIONS)
    voxels: int = option("reconstruction.brain_score.voxels", 500, "voxels scored: the best by the encoding model's "
                         "inner-CV r, at most this many (0: no cap)")
    min_r: float = option("reconstruction.brain_score.min_r", 0.0, "voxels scored: only those whose inner-CV r is "
                          "above this")


@dataclass(frozen=True)
class EvaluationOptions:
    section: typing.ClassVar[str] = "evaluation"
    n_chance: int = option("reconstruction.n_chance", 100, "draws of random corpus items for chance")
    seed: int = option("ridge.seed", RIDGE_SEED, "seed of the chance draws")
    label_sets: dict | None = option(None, None, "CLAP zero-shot classes, {name: [word, ...]}",
                                     derived=("reconstruction.label_sets", "features.{feature}.extractor"))
    label: str | None = option(None, None, "the design's first label column: the class the stimuli are compared "
                               "with the corpus's classes by, and the name of those metrics (none: no class "
                               "agreement)", derived=("design.labels",))


@dataclass(frozen=True)
class GenerationOptions:
    section: typing.ClassVar[str] = "generation"
    models: tuple[str, ...] = option("reconstruction.generation.models", ("whole-mask", "oracle"),
                                     "decoders to generate from (oracle: the true embedding)")
    n_samples: int = option("reconstruction.generation.n_samples", 2, "pieces per clip and model")
    seed: int = option("reconstruction.generation.seed", 0, "seed of the first piece")


@dataclass(frozen=True)
class GeneratorOptions:
    """One generator's settings (None: the generator's own default)."""

    section: typing.ClassVar[str] = "generator"
    model: str | None = option("reconstruction.generation.{generator}.model", None, "hub id of the generator")
    steps: int | None = option("reconstruction.generation.{generator}.steps", None, "musicldm: denoising steps")
    guidance_scale: float | None = option("reconstruction.generation.{generator}.guidance_scale", None,
                                          "classifier-free guidance scale")
    seconds: float | None = option("reconstruction.generation.{generator}.seconds", None, "length of each piece (s)")
    batch_size: int | None = option("reconstruction.generation.{generator}.batch_size", None,
                                    "musicldm: clips per call")
    device: str | None = option("reconstruction.generation.{generator}.device", None, "torch device (cpu, cuda)")
    captions_feature: str = option("reconstruction.generation.{generator}.captions_feature", "clap-text",
                                   "caption: the clap-text feature whose caption vectors are searched")


@dataclass(frozen=True)
class GeneratorInfo:
    """A generator: its class in ``b2m.reconstruct.generation`` (which takes the ``GeneratorOptions`` fields its
    constructor names), the hub repository of its default model, and whether it renders the nearest caption (it
    reads the captions and their clap-text table)."""

    cls: str
    model: str
    reads_captions: bool = False


# Generators: name → its facts (the only list of generators; importable without numpy, the workflow reads it).
GENERATORS = {"musicldm": GeneratorInfo("MusicLdmGenerator", "ucsd-reach/musicldm"),
              "caption": GeneratorInfo("CaptionGenerator", "facebook/musicgen-small", reads_captions=True)}


# ---------------------------------------------------------------- report


@dataclass(frozen=True)
class FigureOptions:
    """What the report's figures show; the study resolves each from the config."""

    section: typing.ClassVar[str] = "figures"
    fold: str = option(None, "test", "fold of the figures", derived=("report.fold", "folds"))
    subjects: tuple[str, ...] = option(None, (), "subjects", derived=("subjects",))
    extractors: dict | None = option(None, None, "each feature's extractor", derived=("features.{feature}.extractor",))
    maps: tuple[str, ...] = option(None, (), "features whose encoding maps are drawn",
                                   derived=("report.maps", "dataset.input"))
    scatter: tuple[str, ...] = option(None, (), "two features whose voxel r is plotted", derived=("report.scatter",))
    roi_table: tuple[str, ...] = option(None, (), "features of the ROI table",
                                        derived=("responses.atlas", "dataset.input"))
    banded: bool = option(None, False, "variance partitioning of the banded model", derived=("encoding.banded",))
    glass_brain: bool = option(None, False, "the maps are in MNI space",
                               derived=("dataset.input", "dataset.fmriprep.space"))


@dataclass(frozen=True)
class ListeningOptions:
    section: typing.ClassVar[str] = "listening"
    subjects: tuple[str, ...] = option(None, (), "subjects shown",
                                       derived=("reconstruction.listening.subjects", "subjects"))
    features: tuple[str, ...] = option(None, (), "reconstructed spaces shown",
                                       derived=("reconstruction.listening.features", "reconstruction.features"))
    fold: str = option(None, "test", "fold shown", derived=("reconstruction.folds", "folds"))
    model: str = audio_model()
    generated: dict | None = option(None, None, "feature → generators whose samples are shown",
                                    derived=("reconstruction.features",))


RANDOM_FOILS = "random"  # the listening test's foil scheme of the published protocol: any other test clip's
MATCHED_FOILS = "-matched"  # the suffix of a scheme whose foils share the clip's value of a label: <label>-matched


def foil_label(scheme: str) -> str | None:
    """The design label column a ``<label>-matched`` foil scheme matches on; None for ``random``."""
    return scheme[:-len(MATCHED_FOILS)] if scheme.endswith(MATCHED_FOILS) else None


def check_foils(schemes, labels, where: str) -> None:
    """Stop, naming ``where`` (the key or flag), where a foil scheme of ``schemes`` is neither ``random`` nor
    ``<label>-matched`` on one of ``labels`` (the design's label columns)."""
    from b2m.errors import ConfigError

    unknown = [s for s in schemes if s != RANDOM_FOILS and foil_label(s) not in labels]
    if unknown:
        raise ConfigError(f"{where} {unknown} match on no label of design.labels {list(labels)}; use "
                          f"{RANDOM_FOILS} or <label>-matched with one of those labels")


@dataclass(frozen=True)
class ListeningTestOptions:
    """The listening test's draw: its trials are the listening page's subjects and spaces (``ListeningOptions``)."""

    section: typing.ClassVar[str] = "listening_test"
    seed: int = option("reconstruction.listening_test.seed", 0, "seed of the clips, foils, sides and trial order")
    clips: int | None = option("reconstruction.listening_test.clips", None,
                               "test clips drawn per subject × space (default: every test clip)")
    foils: tuple[str, ...] = option("reconstruction.listening_test.foils", (RANDOM_FOILS,),
                                    "foil schemes, a trial per clip in each: random (another test clip's "
                                    "reconstruction) or <label>-matched (one of the same value of a design.labels "
                                    "column)")
