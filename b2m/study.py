"""The study model: a validated config as the facts the workflow needs, each known once.

``Study(config)`` checks the keys that depend on each other (``ConfigError`` names the key and the fix), and
gives the DAG its lists (subjects, folds, feature spaces, reconstructed spaces), the results ``layout``, the
dataset's files and the options derived from several keys. The rules never read the config: they read these
facts, and ``b2m.jobs`` makes every job's options document from them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from b2m.errors import ConfigError, InputError
from b2m.features.registry import CLAP_EXTRACTORS, DEFAULT_CLAP_BACKEND, EXTRACTORS
from b2m.inputs import INPUT_KINDS
from b2m.io import regular_file
from b2m.layout import CV_ALL, Layout
from b2m.models.decoders import DECODERS, ORACLE, POOLED
from b2m.models.factors import WHOLE_MASK
from b2m.models.pooled import SHARED
from b2m.options import (DEFAULT_DECODING_MODELS, GENERATORS, BrainScoreOptions, CleaningOptions,
                         CorpusOptions, DatasetOptions, DecodingOptions, DesignOptions, DownloadOptions,
                         EvaluationOptions, ExtractorOptions, FigureOptions, FmriprepOptions, GenerationOptions,
                         GeneratorOptions, KshotOptions, ListeningOptions, ListeningTestOptions, ModelCacheOptions,
                         PooledOptions, RetrievalOptions, RidgeOptions, SelectionOptions, SimulationConfig,
                         ValidationOptions, check_foils, foil_label, from_config, lookup)

# Keys that shape the DAG itself (which jobs exist, where their files are) rather than a job's options: a change
# plans other jobs or moves their inputs, which Snakemake's input and missing-output triggers see. `*` stands for
# a name (a feature space, a generator).
STRUCTURAL_KEYS = {
    "results": "the folder of every output",
    "subjects": "the subjects' jobs and the summaries over them",
    "folds": "the folds' jobs",
    "simulate.enabled": "whether the study is simulated",
    "simulate.out": "where the simulated study is written",
    "dataset.input": "which response rules run",
    "dataset.download.enabled": "whether the dataset is fetched",
    "dataset.bids_root": "input of every rule that reads events",
    "dataset.stimuli": "input of features, find_duplicates and retrieval",
    "dataset.captions": "input of clap-text features and caption generation",
    "dataset.authors_arrays": "input of authors_responses",
    "dataset.fmriprep.root": "input of clean_bold (fMRIPrep's BOLD)",
    "responses.atlas_labels": "input of report_figures",
    "models.cache": "where the fetch markers are (inputs of the model rules)",
    "features.*.extractor": "which extractor embeds a space, and so where its jobs run (the _gpu twins)",
    "features.*.window_s": "the window responses a space is modelled from (inputs of its model jobs)",
    "features.*.stride_s": "the window responses a space is modelled from (inputs of its model jobs)",
    "encoding.banded": "the banded jobs and their inputs",
    "decoding.models": "whether the pooled decoders' jobs exist (the per-subject models are decode's option)",
    "decoding.keep_factors": "whether the factorisations are kept or deleted once decoded (the same bits either way)",
    "reconstruction.features.*.generators": "the generation jobs",
    "reconstruction.rerank": "whether brain-score jobs re-rank the retrieval (method retrieval-brain)",
    "reconstruction.generation.select": "whether brain-score jobs choose generated samples (<generator>-brain)",
    "reconstruction.folds": "the folds reconstructed",
    "reconstruction.generation.caption.captions_feature": "input of caption generation",
    "reconstruction.listening_test.enabled": "whether the listening test page is written",
    "reconstruction.listening_test.answers": "the folder of answer files scored (inputs of score_listening)",
    "reconstruction.corpus.chunks": "how many jobs list, index and fingerprint the corpus (and which holds a track)",
}

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def load_study(path) -> "Study":
    """The study of a config file read by hand (``b2m validate --config``), checked against the workflow's schema
    as Snakemake checks it."""
    import yaml

    return checked_study(yaml.safe_load(Path(path).read_text()), path)


def checked_study(config: dict, where) -> "Study":
    """The study of a config dict, checked against the workflow's schema first (``where`` names it in errors)."""
    import jsonschema
    import yaml

    try:
        jsonschema.validate(config, yaml.safe_load(SCHEMA.read_text()))
    except jsonschema.ValidationError as err:
        raise ConfigError(f"{where}: {err.message} (at {'.'.join(map(str, err.absolute_path)) or 'the top'})") from err
    return Study(config)


def plain_paths(paths: list[str], what: str, fix: str) -> list[str]:
    """``paths``, refused (``InputError`` naming the first) where one holds ``{`` or ``}``, which Snakemake would
    read as a wildcard in a job's input."""
    braced = [path for path in paths if re.search(r"[{}]", str(path))]
    if braced:
        raise InputError(braced[0], f"{what} whose path holds {{ or }}, which Snakemake reads as a wildcard "
                         f"({len(braced)} such files)", fix)
    return paths


class Study:
    """The facts of one config (validated against the schema first), for the workflow and the tests."""

    def __init__(self, config: dict):
        self.config = config
        self.layout = Layout(config["results"], lookup(config, "models.cache") or ModelCacheOptions().cache)
        self.subjects = list(config["subjects"])
        self.folds = list(config["folds"])
        # The cv-<k> folds pooled into fold cv-all (pool_folds, and encode's cv-all jobs), where `folds` hold two or
        # more; the folds encoded: `folds`, and cv-all where it exists.
        cv_folds = [f for f in self.folds if f.startswith("cv-")]
        self.pooled_folds = cv_folds if len(cv_folds) > 1 else []
        self.encoded_folds = self.folds + ([CV_ALL] if self.pooled_folds else [])
        self.features = {name: from_config(ExtractorOptions, config, feature=name) for name in config["features"]}
        self.input = config["dataset"]["input"]
        self.kind = INPUT_KINDS[self.input]
        self.design = from_config(DesignOptions, config)
        # The dataset's files: the BIDS folder, fMRIPrep's (where it is the input), the captions, the authors'
        # arrays, the atlas's label names, the corpus sources.
        self.bids_root = from_config(DatasetOptions, config).bids_root
        self.fmriprep = from_config(FmriprepOptions, config) if self.kind.fmriprep else FmriprepOptions()
        self.captions = lookup(config, "dataset.captions")
        self.authors_arrays = lookup(config, "dataset.authors_arrays")
        self.atlas_labels = lookup(config, "responses.atlas_labels")
        self.corpus_sources = [dict(source) for source in from_config(CorpusOptions, config).sources]
        self.simulated = bool(lookup(config, "simulate.enabled"))
        self.simulation_out = lookup(config, "simulate.out")
        self.simulation = from_config(SimulationConfig, config)
        self.downloaded = bool(lookup(config, "dataset.download.enabled"))
        self.banded = list(lookup(config, "encoding.banded") or [])
        self.keeps_factors = lookup(config, "decoding.keep_factors") is not False
        self.decoding_models = list(lookup(config, "decoding.models") or DEFAULT_DECODING_MODELS)
        # The pooled decoders, over two subjects or more (a run of one subject has none: its decoders are alone).
        self.pooled = [m for m in self.decoding_models if m in POOLED] if len(self.subjects) > 1 else []
        # The k-shot points (decoding.pooled.kshot_minutes): each subject left out of the pool in turn, where the
        # others make a pool of two or more (a run of fewer subjects has none, as it has no pool).
        self.kshot_minutes = list(from_config(KshotOptions, config).minutes)
        self.kshot = self.kshot_minutes if self.pooled and len(self.subjects) > 2 else []
        recon = config.get("reconstruction", {})
        self.reconstructed = {name: spec or {} for name, spec in recon.get("features", {}).items()}
        self.reconstructed_folds = list(recon.get("folds", self.folds))
        self.listening_test = bool(lookup(recon, "listening_test.enabled"))
        self.listening_answers = lookup(recon, "listening_test.answers")
        self.listening_foils = from_config(ListeningTestOptions, config).foils
        self.check()

    # ------------------------------------------------------------ facts of the feature spaces

    def extractor(self, feature: str) -> str:
        return self.features[feature].extractor or feature

    def needs_weights(self, feature: str) -> bool:
        return EXTRACTORS[self.extractor(feature)].needs_weights

    def reads_audio(self, feature: str) -> bool:
        return EXTRACTORS[self.extractor(feature)].input == "audio"

    def reads_captions(self, feature: str) -> bool:
        return EXTRACTORS[self.extractor(feature)].reads_captions

    def uses_laion_clap(self, feature: str) -> bool:
        return self.extractor(feature) in CLAP_EXTRACTORS and (
            self.features[feature].backend or DEFAULT_CLAP_BACKEND) == "laion-clap"

    def window_of(self, feature: str) -> tuple[float, float]:
        spec = self.features[feature]
        return spec.window_s, spec.stride_s

    def windows(self) -> list[tuple[float, float]]:
        """Every window grid of the feature spaces, once."""
        return list(dict.fromkeys(self.window_of(f) for f in self.features))

    def corpus_chunks(self) -> list[str]:
        """The chunks the corpus index is made in (``reconstruction.corpus.chunks``), as wildcard values."""
        return [str(n) for n in range(from_config(CorpusOptions, self.config).chunks)]

    def stimuli_folder(self) -> str:
        """The folder the design's stimulus names are relative to: ``dataset.stimuli``, else the BIDS folder's
        ``stimuli/`` (BIDS)."""
        from b2m.data.bids import STIMULI_FOLDER

        return lookup(self.config, "dataset.stimuli") or f"{self.bids_root}/{STIMULI_FOLDER}"

    def generators_of(self, feature: str) -> list[str]:
        return list(self.reconstructed.get(feature, {}).get("generators", []))

    def brain_score_options(self) -> BrainScoreOptions:
        return from_config(BrainScoreOptions, self.config)

    def brain_scored(self, feature: str) -> bool:
        """A brain-score job scores the feature's candidates: its retrieval re-ranked (``reconstruction.rerank``) or,
        with ``reconstruction.generation.select: brain``, its generated samples."""
        spec = self.brain_score_options()
        return feature in self.reconstructed and bool(
            spec.rerank or (spec.select == "brain" and self.generators_of(feature)))

    def zero_shot(self, feature: str) -> dict:
        """CLAP audio spaces score class agreement on the config's label sets by zero-shot prompts too."""
        sets = lookup(self.config, "reconstruction.label_sets") or {}
        return sets if self.extractor(feature) == "clap-audio" else {}

    def evaluation_needs_model(self, feature: str) -> bool:
        """The evaluation loads the feature's model to embed generated audio or zero-shot prompts."""
        return bool(self.generators_of(feature) or self.zero_shot(feature)) and self.needs_weights(feature)

    def cleaning(self, subject: str) -> CleaningOptions:
        """The cleaning options with ``{subject}`` in the mask and atlas paths filled in (per-subject files)."""
        options = from_config(CleaningOptions, self.config)
        fill = {name: getattr(options, name).replace("{subject}", subject)
                for name in ("mask", "atlas") if getattr(options, name)}
        return CleaningOptions(**{**vars(options), **fill})

    def caption_feature(self) -> str:
        return from_config(GeneratorOptions, self.config, generator="caption").captions_feature

    # ------------------------------------------------------------ the report

    def report_fold(self) -> str:
        return lookup(self.config, "report.fold") or ("test" if "test" in self.folds else self.folds[0])

    def has_positions(self) -> bool:
        """Voxel positions exist for BOLD input (raw or fMRIPrep), not for the authors' arrays."""
        return self.kind.reads_images

    def decodes_rois(self) -> bool:
        """Whether ROI models are asked for and have ROI labels (an atlas on BOLD input): their ROI tables."""
        return self.has_positions() and bool(lookup(self.config, "responses.atlas")) and any(
            DECODERS[model].needs_rois for model in self.decoding_models)

    def decoder_options(self) -> set:
        """The option classes the decoders of ``decoding.models`` take (``options`` of their classes)."""
        return {option for model in self.decoding_models for option in DECODERS[model].options}

    def decoding_options(self) -> DecodingOptions:
        """decode's options: the models of ``decoding.models`` fit on one subject."""
        return DecodingOptions(**{**vars(from_config(DecodingOptions, self.config)),
                                  "models": tuple(m for m in self.decoding_models if m not in POOLED)})

    def figure_options(self) -> FigureOptions:
        report = self.config.get("report", {})
        names = list(self.features)
        space = lookup(self.config, "dataset.fmriprep.space") or FmriprepOptions().space
        roi = self.decodes_rois()
        return FigureOptions(
            fold=self.report_fold(), subjects=tuple(self.subjects),
            extractors={name: self.extractor(name) for name in names},
            maps=tuple(report.get("maps", names)) if self.has_positions() else (),
            scatter=tuple(report.get("scatter", names[:2] if len(names) > 1 else [])),
            roi_table=tuple(names) if roi else (), banded=bool(self.banded),
            glass_brain=self.kind.fmriprep and space.startswith("MNI"))

    def listening_options(self) -> ListeningOptions:
        listening = lookup(self.config, "reconstruction.listening") or {}
        subjects = [s for s in listening.get("subjects", self.subjects) if s in self.subjects] or self.subjects[:1]
        features = [f for f in listening.get("features", self.reconstructed) if f in self.reconstructed] or list(
            self.reconstructed)
        folds = self.reconstructed_folds
        return ListeningOptions(subjects=tuple(subjects), features=tuple(features),
                                fold="test" if "test" in folds else folds[0],
                                model=from_config(RetrievalOptions, self.config).audio_model,
                                generated={f: self.generators_of(f) for f in features if self.generators_of(f)})

    def reads_captions_anywhere(self) -> bool:
        """Whether a feature space or a generator reads the captions."""
        return any(map(self.reads_captions, self.features)) or any(
            "caption" in self.generators_of(f) for f in self.reconstructed)

    def validation_options(self) -> ValidationOptions:
        keyed = from_config(ValidationOptions, self.config)
        return ValidationOptions(**{**vars(keyed), "subjects": tuple(self.subjects), "folds": tuple(self.folds),
                                    "stimuli": self.stimuli_folder(),
                                    "windows": tuple(map(tuple, self.windows())),
                                    "captions": keyed.captions if self.reads_captions_anywhere() else None,
                                    "authors_arrays": None if self.kind.reads_images else keyed.authors_arrays})

    def download_options(self) -> DownloadOptions:
        """The download's options: the study's subjects, and only the events and sidecars where no job reads the
        raw images."""
        return DownloadOptions(**{**vars(from_config(DownloadOptions, self.config)), "subjects": tuple(self.subjects),
                                  "metadata_only": not self.kind.reads_images or self.kind.fmriprep})

    def evaluation_options(self, feature: str) -> EvaluationOptions:
        return EvaluationOptions(**{**vars(from_config(EvaluationOptions, self.config)),
                                    "label_sets": self.zero_shot(feature) or None, "label": self.design.label})

    def pooled_options(self) -> PooledOptions:
        return PooledOptions(**{**vars(from_config(PooledOptions, self.config)), "subjects": tuple(self.subjects)})

    # ------------------------------------------------------------ checks across keys

    def check(self) -> None:
        """Every check of keys against each other, each naming the keys and the fix."""
        for check in (self._check_subjects, self._check_features, self._check_design, self._check_folds,
                      self._check_ridge, self._check_banded, self._check_decoders, self._check_reconstruction,
                      self._check_report, self._check_inputs):
            check()
        if self.simulated:
            n = self.simulation.n_training_runs
            self.check_runs({subject: n for subject in self.subjects})

    def check_runs(self, training_runs: dict[str, int]) -> None:
        """The checks of the config against the data: ``training_runs``, each subject's training runs (from the
        simulate section, or counted in the BIDS folder's events where it exists at planning; a downloaded study's
        jobs make the same check before they compute)."""
        from b2m.data.design import run_folds

        if any(f.startswith("cv-") for f in self.folds) and training_runs and self.design.cv == "run":
            run_folds(range(min(training_runs.values())), self.design.outer_folds)

    def _check_subjects(self) -> None:
        twice = sorted({s for s in self.subjects if self.subjects.count(s) > 1})
        if twice:
            raise ConfigError(f"config: subjects {twice} are listed twice; list each subject once")
        if self.simulated and self.downloaded:
            raise ConfigError("config: simulate.enabled and dataset.download.enabled exclude each other; turn one off")
        if self.downloaded and not lookup(self.config, "dataset.download.accession"):
            raise ConfigError("config: dataset.download.enabled needs dataset.download.accession, the OpenNeuro "
                              "dataset to fetch (e.g. ds003720)")
        if self.simulated:
            n = self.simulation.n_subjects
            unknown = sorted(set(self.subjects) - {f"sub-{i:03d}" for i in range(1, n + 1)})
            if unknown:
                raise ConfigError(f"config: subjects {unknown} are not simulated (simulate.n_subjects = {n}); "
                                  f"fix `subjects` or raise `simulate.n_subjects`")

    def _check_features(self) -> None:
        unknown = sorted(f for f in self.features if self.extractor(f) not in EXTRACTORS)
        if unknown:
            raise ConfigError(f"config: features {unknown} name no extractor; name them after one of "
                              f"{list(EXTRACTORS)} or give each an `extractor:`")
        tr = lookup(self.config, "dataset.repetition_time")
        short = sorted(f for f in self.features if tr and self.features[f].window_s < tr)
        if short:
            raise ConfigError(f"config: features {short} have a window_s shorter than dataset.repetition_time ({tr:g} "
                              f"s): some windows would hold no scan; make window_s at least the TR")

    def _check_folds(self) -> None:
        outer = self.design.outer_folds
        bad = [f for f in self.folds if f.startswith("cv-") and (not f[3:].isdigit() or not 1 <= int(f[3:]) <= outer)]
        if bad:
            raise ConfigError(f"config: folds {bad} are not among cv-1 .. cv-{outer} (outer_folds = {outer})")
        unknown = [f for f in self.folds if f != "test" and not f.startswith("cv-")
                   and not any(f.startswith(f"{label}-") for label in self.design.labels)]
        if unknown:
            raise ConfigError(f"config: folds {unknown} are neither test, cv-<k> nor <label>-<value> of a column of "
                              f"design.labels {list(self.design.labels)}; fix the fold names or the labels")
        if "test" in self.folds and not self.design.test:
            raise ConfigError("config: folds hold test, but design.test names no test runs; name them (e.g. "
                              "design.test: {task: Test}) or use cv-<k> folds")

    def _check_design(self) -> None:
        """What the design allows: audio spaces and reconstruction need stimulus audio (events that name their
        stimulus), label spaces need labels."""
        audio = sorted(f for f in self.features if self.reads_audio(f) or self.reads_captions(f))
        if not self.design.has_stimuli and (audio or self.reconstructed):
            raise ConfigError(f"config: features {audio} (and reconstruction) need each event's stimulus, but "
                              "design.stimulus names no column or template: a design with labels only gets label "
                              "spaces (extractor: labels); name the stimulus column, or leave these spaces out")
        labelled = sorted(f for f in self.features if self.extractor(f) == "labels")
        if labelled and not self.design.labels:
            raise ConfigError(f"config: features {labelled} one-hot code a label, but design.labels names none; "
                              "name the label columns there")
        columns = {self.features[f].column for f in labelled} - {None} - set(self.design.labels)
        if columns:
            raise ConfigError(f"config: label spaces name columns {sorted(columns)} that are not in design.labels "
                              f"{list(self.design.labels)}; add them there")

    def _check_ridge(self) -> None:
        ridge = from_config(RidgeOptions, self.config)
        if ridge.alpha_min_exp > ridge.alpha_max_exp:
            raise ConfigError(f"config: ridge.alpha_min_exp ({ridge.alpha_min_exp:g}) exceeds ridge.alpha_max_exp "
                              f"({ridge.alpha_max_exp:g}); fix: give the smaller exponent as alpha_min_exp")

    def _check_banded(self) -> None:
        grids = {self.window_of(f) for f in self.banded if f in self.features}
        if sorted(set(self.banded) - set(self.features)) or len(grids) > 1 or len(self.banded) == 1:
            raise ConfigError(f"config: encoding.banded {self.banded} must name two or more features of `features` "
                              f"with one window and stride (their responses are the same rows)")

    def _check_decoders(self) -> None:
        if WHOLE_MASK not in self.decoding_models:
            raise ConfigError(f"config: decoding.models {self.decoding_models} leaves out whole-mask, the decoder "
                              f"every other is compared with and whose training targets scale the reconstructions; "
                              f"add it")
        from_config(SelectionOptions, self.config).values()  # a ConfigError names the candidates it refuses
        reference = from_config(PooledOptions, self.config).reference
        if self.pooled and reference != SHARED and reference not in self.subjects:
            raise ConfigError(f"config: decoding.pooled.reference {reference!r} is not among `subjects`; name one of "
                              f"them or `shared`")
        if self.kshot_minutes and POOLED[0] not in self.decoding_models:
            raise ConfigError(f"config: decoding.pooled.kshot_minutes leaves each subject out of the {POOLED[0]} "
                              f"pool in turn: it needs {POOLED[0]} in decoding.models; add it or remove "
                              f"kshot_minutes")
        asked = {from_config(RetrievalOptions, self.config).audio_model} if self.reconstructed else set()
        asked |= set(from_config(GenerationOptions, self.config).models) if any(map(self.generators_of,
                                                                                    self.reconstructed)) else set()
        missing = sorted(asked - set(self.decoding_models) - {ORACLE})
        if missing:
            raise ConfigError(f"config: reconstruction.audio.model / reconstruction.generation.models name {missing}, "
                              f"which decoding.models does not run; add them there or name a decoder it runs")

    def _check_reconstruction(self) -> None:
        not_audio = sorted(f for f in self.reconstructed
                           if f not in self.features or EXTRACTORS[self.extractor(f)].input != "audio")
        if not_audio:
            raise ConfigError(f"config: reconstruction.features {not_audio} must be audio feature spaces of "
                              f"`features` (acoustic, clap-audio, w2v-bert, mert): a corpus is embedded from its audio")
        folds = sorted(set(self.reconstructed_folds) - set(self.folds))
        if folds:
            raise ConfigError(f"config: reconstruction.folds {folds} are not among `folds` {self.folds}")
        if self.reconstructed and "corpus" not in self.config.get("reconstruction", {}):
            raise ConfigError("config: reconstruction.features is set but reconstruction.corpus is not; name the "
                              "corpus sources to retrieve from")
        unknown = sorted({g for f in self.reconstructed for g in self.generators_of(f)} - set(GENERATORS))
        if unknown:
            raise ConfigError(f"config: generators {unknown} are unknown; use {sorted(GENERATORS)}")
        rerank, top_k = self.brain_score_options().rerank, from_config(RetrievalOptions, self.config).top_k
        if rerank > top_k:
            raise ConfigError(f"config: reconstruction.rerank {rerank} re-ranks more tracks than retrieval keeps "
                              f"(reconstruction.top_k {top_k}); raise top_k or lower rerank")
        if self.listening_test and not self.reconstructed:
            raise ConfigError("config: reconstruction.listening_test.enabled needs reconstructions to listen to; "
                              "name reconstruction.features, or turn the listening test off")
        if self.listening_test:
            check_foils(self.listening_foils, self.design.labels, "config: reconstruction.listening_test.foils")
        if self.listening_answers and not self.listening_test:
            raise ConfigError("config: reconstruction.listening_test.answers is set but the listening test is not "
                              "written (reconstruction.listening_test.enabled), whose key the answers are scored "
                              "against; enable it, or remove reconstruction.listening_test.answers")

    def matches_foils(self) -> bool:
        """Whether the listening test matches foils on a label (it then reads the design's labels)."""
        return any(foil_label(scheme) for scheme in self.listening_foils)

    def answer_files(self) -> list[str]:
        """The listening test's answer files (``*.json``, ``*.csv``, not hidden ones) in the folder the config
        names (relative to Snakemake's working directory), sorted."""
        if not self.listening_answers:
            return []
        found = [p for suffix in ("json", "csv") for p in Path(self.listening_answers).glob(f"*.{suffix}")]
        answers = sorted(str(p) for p in found if not p.name.startswith("."))
        for path in answers:  # a FIFO or device would block Snakemake's own reads of its inputs
            regular_file(path, "answer file", "leave only the JSON or CSV files the listening test page exported in "
                         "the folder")
        return plain_paths(answers, "an answer file", "rename it without { and } (the page names its exports "
                           "listening-test_<listener>_<page id>.json or .csv)")

    def _check_report(self) -> None:
        figures = self.figure_options()
        unknown = sorted(set(figures.maps + figures.scatter) - set(self.features))
        if unknown or figures.fold not in self.folds:
            raise ConfigError(f"config: report names features {unknown} or a fold ({figures.fold}) that are not "
                              f"among `features` / `folds`")

    def _check_inputs(self) -> None:
        if not lookup(self.config, self.kind.files_key):
            raise ConfigError(f"config: dataset.input is {self.input} but {self.kind.files_key} is not set; name the "
                              "folder of its files there")

    def output_roots(self) -> list[str]:
        """The folders rules may write to: ``results``, the model cache, and the data folders the config gives a
        rule to fill (the simulated study, the download)."""
        roots = [self.layout.results, self.layout.models]
        roots += [self.simulation_out] if self.simulated else []
        roots += [self.bids_root] if self.downloaded else []
        return [os.path.realpath(root) for root in roots]

    def check_output(self, rule: str, pattern: str) -> None:
        """Refuse a rule output outside ``output_roots``."""
        where = os.path.realpath(str(pattern).split("{", 1)[0] or ".")
        if not any(os.path.commonpath([where, root]) == root for root in self.output_roots()):
            raise ConfigError(f"config: rule {rule} would write {pattern}, outside `results` ({self.layout.results}) "
                              f"and the data folders it may fill; fix: point the path into `results` (or simulate.out "
                              f"when simulating)")
