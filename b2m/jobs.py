"""The job table: every rule of the workflow declared once, as a ``Job`` (the only list of jobs).

A ``Job`` says which ``b2m`` stage a rule runs, the option classes of its options document, its wildcards, the
``Layout`` method that builds its output folder, its input function in ``workflow/rules/common.smk``, its GPU
twin, and its command line's files: ``"--flag source"`` with ``source`` one of the rule's ``input.x``,
``output.x``, ``params.x``, ``wildcards.x`` or ``threads``; a source without a flag is a positional argument, and
``"[params.x]"`` an optional one, a param that holds its own flag and value (empty where the job has no such
file). A rule's shell line is ``JOBS[rule].shell``, ``@stage`` takes its options from here, and the functions
below give every job's options document from a ``Study``. Light on imports: the Snakefile reads it when it
parses the workflow.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from b2m.layout import CV_ALL
from b2m.options import (BandedOptions, BrainScoreOptions, CleaningOptions, ContrastiveOptions, CorpusCacheOptions,
                         CorpusOptions, DatasetOptions, DecodingOptions, DesignOptions, DownloadOptions,
                         EncodingOptions, EvaluationOptions, ExcerptOptions, ExtractorOptions, FactorOptions,
                         FigureOptions, FmriprepOptions, FoldPoolingOptions, GenerationOptions, GeneratorOptions,
                         KshotOptions, ListeningOptions, ListeningTestOptions, ModelCacheOptions, PooledOptions,
                         RetrievalOptions, RidgeOptions, SelectionOptions, SimulationConfig, SpaceOptions,
                         ValidationOptions, WindowOptions, document, from_config, keys_of)

if TYPE_CHECKING:
    from b2m.study import Study


@dataclass(frozen=True)
class Job:
    """One rule's contract with its stage: what it runs, reads and writes (see the module's docstring)."""

    rule: str
    stage: str
    options: tuple[type, ...]
    wildcards: tuple[str, ...]
    folder: str | None  # the Layout method that builds its outputs' folder (None: outside the results tree)
    inputs: str | None  # its input function in common.smk (None: its inputs are listed in the rule)
    files: tuple[str, ...]
    gpu_twin: str | None = None  # the rule that runs the jobs on a GPU (`gpu_when` says which)
    gpu_when: str | None = None  # the Study's predicate of a feature whose job runs as the GPU twin
    document: bool = True  # whether the rule hands its job an options document (`params.options`)
    stdout_log: bool = False  # whether the log takes stdout too (stages that print a report)

    def arguments(self) -> list[tuple[str | None, str, bool]]:
        """(flag or None, source, whether the param holds its own flag) of each file of the command line, in
        order."""
        return [(*item.split(), False) if " " in item else (None, item.strip("[]"), item.startswith("["))
                for item in self.files]

    @property
    def shell(self) -> str:
        """The rule's shell line: the stage with the options document, the files, the log."""
        parts = ["python -m b2m", self.stage] + (["--options {params.options:q}"] if self.document else [])
        for flag, source, _ in self.arguments():
            placeholder = f"{{{source}}}" if source == "threads" or source.startswith("wildcards.") else \
                f"{{{source}:q}}"
            parts.append(f"{flag} {placeholder}" if flag else placeholder)
        return " ".join(parts + ["> {log:q} 2>&1" if self.stdout_log else "2> {log:q}"])


def _with_gpu_twin(job: Job) -> list[Job]:
    """``job`` and its GPU twin (the same job run on a GPU partition)."""
    return [job, dataclasses.replace(job, rule=job.gpu_twin, gpu_twin=None)]


SUBJECT, FOLD, FEATURE = "wildcards.subject", "wildcards.fold", "wildcards.feature"
# Each summary rule summarize_<table> → the summary table it writes (results/summary/<table>).
SUMMARY_TABLES = {"decoding": "identification", "label_decoding": "label_decoding", "encoding": "encoding",
                  "reconstruction": "reconstruction", "kshot": "kshot"}

_JOBS = [
    Job("simulate", "simulate", (SimulationConfig,), (), None, "simulated_outputs",
        ("--jobs threads", "params.out"), stdout_log=True),
    Job("download_dataset", "download", (DownloadOptions,), (), None, "dataset_input",
        ("--out params.out", "--marker output")),
    Job("validate_dataset", "validate",
        (DatasetOptions, DesignOptions, FmriprepOptions, ValidationOptions, WindowOptions), (), "validation",
        "validation_inputs", ("--report output",), stdout_log=True),
    Job("clean_bold", "clean-bold", (DatasetOptions, DesignOptions, CleaningOptions, FmriprepOptions), ("subject",),
        "scans", "cleaning_inputs", (f"--subject {SUBJECT}", "--out params.out")),
    Job("window_responses", "window-responses", (DatasetOptions, DesignOptions, WindowOptions),
        ("subject", "window", "stride"), "windows", "subject_runs",
        (f"--subject {SUBJECT}", "--clean params.clean", "--out params.out", "--window wildcards.window",
         "--stride wildcards.stride")),
    Job("authors_responses", "authors-arrays", (DatasetOptions, DesignOptions, WindowOptions),
        ("subject", "window", "stride"), "windows", "authors_arrays",
        (f"--subject {SUBJECT}", "--training input.training", "--test input.test", "--out params.out",
         "--window wildcards.window", "--stride wildcards.stride")),
    Job("fetch_models", "fetch-models", (ExtractorOptions, ModelCacheOptions), ("feature",), "fetched", None,
        (f"--feature {FEATURE}", "--marker output")),
    *_with_gpu_twin(Job("features", "features", (DatasetOptions, DesignOptions, ExtractorOptions, ModelCacheOptions),
                        ("feature",), "features", "features_input",
                        ("[params.stimuli]", f"--feature {FEATURE}", "[params.captions]", "--out output"),
                        gpu_twin="features_gpu", gpu_when="needs_weights")),
    Job("factorise", "factorise", (FactorOptions,), ("subject", "fold", "window", "stride"), "factors",
        "factorised_responses",
        ("--responses params.responses", "[params.positions]", "--out params.out", f"--subject {SUBJECT}",
         f"--fold {FOLD}")),
    Job("decode", "decode", (RidgeOptions, DecodingOptions, ContrastiveOptions, SelectionOptions),
        ("subject", "fold", "feature"), "decoding", "window_inputs",
        ("--responses params.responses", "--factors input.factors", "--features input.features", "--out params.out",
         f"--subject {SUBJECT}", f"--fold {FOLD}", f"--feature {FEATURE}")),
    Job("decode_pooled", "decode-pooled", (RidgeOptions, PooledOptions), ("fold", "feature"), "pooled",
        "pooled_inputs",
        ("--responses params.responses", "--features input.features", "--out params.out", f"--fold {FOLD}",
         f"--feature {FEATURE}")),
    Job("decode_kshot", "decode-kshot", (RidgeOptions, PooledOptions, KshotOptions), ("subject", "fold", "feature"),
        "kshot", "kshot_inputs",
        ("--responses params.responses", "--features input.features", "--full-data input.full_data",
         "--out params.out", f"--subject {SUBJECT}", f"--fold {FOLD}", f"--feature {FEATURE}")),
    Job("pool_folds", "pool-folds", (RidgeOptions, DecodingOptions), ("subject", "feature"), "pooled_folds",
        "pooled_fold_inputs",
        ("--folds params.folds", "--features input.features", "--out params.out", f"--subject {SUBJECT}",
         f"--feature {FEATURE}")),
    Job("encode", "encode", (RidgeOptions, EncodingOptions, FoldPoolingOptions), ("subject", "fold", "feature"),
        "encoding", "window_inputs",
        ("--responses params.responses", "--features input.features", "[params.positions]", "--out params.out",
         f"--subject {SUBJECT}", f"--fold {FOLD}", f"--feature {FEATURE}")),
    Job("encode_banded", "encode-banded", (RidgeOptions, BandedOptions, FoldPoolingOptions), ("subject", "fold"),
        "banded", "banded_inputs",
        ("--responses params.responses", "--features params.spaces", "[params.positions]", "--out params.out",
         f"--subject {SUBJECT}", f"--fold {FOLD}")),
    Job("list_corpus_chunk", "list-chunk", (CorpusOptions,), ("chunk",), "corpus_listing", "corpus_chunk_audio",
        ("--chunk wildcards.chunk", "--out output")),
    *_with_gpu_twin(Job("index_corpus_chunk", "index-chunk",
                        (ExtractorOptions, ModelCacheOptions, CorpusCacheOptions, ExcerptOptions), ("feature", "chunk"),
                        "corpus", "corpus_chunk_input",
                        (f"--feature {FEATURE}", "--tracks input.tracks", "--out params.out"),
                        gpu_twin="index_corpus_chunk_gpu", gpu_when="needs_weights")),
    Job("index_corpus", "index", (ExtractorOptions, ModelCacheOptions, CorpusOptions, CorpusCacheOptions,
                                  ExcerptOptions), ("feature",), "corpus", "index_input",
        (f"--feature {FEATURE}", "--out params.out")),
    Job("fingerprint_corpus_chunk", "fingerprint-chunk", (), ("chunk",), "duplicates", None,
        ("--tracks input.tracks", "--out output")),
    Job("find_duplicates", "find-duplicates", (DatasetOptions, DesignOptions), (), "duplicates", None,
        ("--stimuli input.stimuli", "--fingerprints input.fingerprints", "--out output.table")),
    Job("retrieve", "retrieve", (DatasetOptions, DesignOptions, SpaceOptions, RetrievalOptions, ExcerptOptions),
        ("subject", "fold", "feature"), "retrieval", "decoding_outputs",
        ("--predictions input.predictions", "--target-scale input.target_scale", "--index params.index",
         "--stimuli input.stimuli", "--duplicates input.duplicates", "--out params.out")),
    Job("fetch_generator", "fetch-generator", (GeneratorOptions, ModelCacheOptions), ("generator",), "fetched", None,
        ("--generator wildcards.generator", "--marker output")),
    Job("generate", "generate", (GenerationOptions, GeneratorOptions, ModelCacheOptions),
        ("subject", "fold", "feature", "generator"), "generation", "generate_input",
        ("--backend wildcards.generator", "--predictions input.predictions", "--target-scale input.target_scale",
         "[params.captions]", "--out output")),
    *_with_gpu_twin(Job("brain_score", "brain-score",
                        (DatasetOptions, DesignOptions, RidgeOptions, EncodingOptions, BrainScoreOptions,
                         ExtractorOptions, ModelCacheOptions, ExcerptOptions, RetrievalOptions),
                        ("subject", "fold", "feature"), "brain_score", "brain_score_input",
                        ("--responses params.responses", "--features input.features", f"--feature {FEATURE}",
                         f"--fold {FOLD}", "[params.retrieval]", "--stimuli input.stimuli", "[params.generated]",
                         "--out output"),
                        gpu_twin="brain_score_gpu", gpu_when="needs_weights")),
    *_with_gpu_twin(Job("evaluate_reconstruction", "evaluate-reconstruction",
                        (ExtractorOptions, ModelCacheOptions, SpaceOptions, EvaluationOptions),
                        ("subject", "fold", "feature"), "evaluation", "evaluate_input",
                        ("--predictions input.predictions", "--target-scale input.target_scale",
                         "--index params.index", "--retrieval input.neighbours", "--duplicates input.duplicates",
                         "[params.generated]", "[params.brain]", f"--subject {SUBJECT}", f"--fold {FOLD}",
                         f"--feature {FEATURE}", "--out output"),
                        gpu_twin="evaluate_reconstruction_gpu", gpu_when="evaluation_needs_model", stdout_log=True)),
    Job("report_figures", "report-figures", (FigureOptions,), (), "figures", "figure_inputs",
        ("--scores input.scores", "[params.labels]", "--encoding params.encoding", "--scans params.scans",
         "--rois params.rois", "--out params.out")),
    Job("listening_page", "listening-page", (ListeningOptions,), (), "listening_page", "listening_inputs",
        ("--jobs threads", "--predictions params.predictions", "--retrieved params.audio",
         "--samples params.generated", "[params.brain]", "--out output")),
    Job("listening_test", "listening-test", (DatasetOptions, DesignOptions, ListeningOptions, ListeningTestOptions),
        (), "listening_test", "listening_audio",
        ("--jobs threads", "--retrieved params.audio", "--samples params.generated", "[params.brain]",
         "--page output.page", "--key output.key", "--duplicates input.duplicates")),
    Job("report_kshot", "report-kshot", (), (), "figures", None, ("--scores input.scores", "--out output"),
        document=False),
    Job("score_listening", "score-listening", (), (), "listening_test", None,
        ("input.answers", "--key input.key", "--out output.table", "--html output.html"), document=False,
        stdout_log=True),
    *(Job(f"summarize_{table}", "summarize", (), (), "summary", None,
          ("input", "--out output.table", "--tsv output.tsv"), document=False, stdout_log=True)
      for table in SUMMARY_TABLES),
]
JOBS: dict[str, Job] = {job.rule: job for job in _JOBS}


def stage_options(stage: str) -> tuple[type, ...]:
    """The option classes of a stage: those of the jobs that run it (every such job reads the same; a stage no
    rule runs, such as ``init-config``, reads none)."""
    return next((job.options for job in JOBS.values() if job.stage == stage), ())


def runs_on_gpu(study: "Study", rule: str, feature: str) -> bool:
    """Whether ``feature``'s job of a rule with a GPU twin runs as the twin."""
    return getattr(study, JOBS[rule].gpu_when)(feature)


def twin_of(rule: str, on_gpu: bool) -> str:
    """The rule of ``rule``'s jobs on a GPU (its twin) or, without ``on_gpu``, the rule itself."""
    return JOBS[rule].gpu_twin if on_gpu else rule


def run_by(study: "Study", rule: str, feature: str) -> str:
    """The rule that runs ``feature``'s job of ``rule``: its GPU twin where the job runs on a GPU."""
    return twin_of(rule, runs_on_gpu(study, rule, feature))


# ---------------------------------------------------------------- job documents


def derived_options(study: "Study", subject: str, feature: str) -> dict:
    """Option class → the Study's function that makes it, for the options set from several keys."""
    return {
        CleaningOptions: lambda: study.cleaning(subject),
        DownloadOptions: study.download_options,
        EvaluationOptions: lambda: study.evaluation_options(feature),
        FigureOptions: study.figure_options,
        ValidationOptions: study.validation_options,
        ListeningOptions: study.listening_options,
        DecodingOptions: study.decoding_options,
        PooledOptions: study.pooled_options,
        FoldPoolingOptions: lambda: FoldPoolingOptions(folds=tuple(study.pooled_folds)),
    }


DECODER_ONLY_OPTIONS = (ContrastiveOptions, SelectionOptions)  # read by a decode job only where its decoders take them


def options_of(study: "Study", rule: str, subject: str = "", feature: str = "", generator: str = "",
               fold: str = "") -> list:
    """The option objects of one job of ``rule``; the folds pooled only in a job of fold cv-all, so that the other
    folds' documents do not depend on them."""
    derived = derived_options(study, subject, feature)
    left_out = {FmriprepOptions: not study.kind.fmriprep,
                **{cls: cls not in study.decoder_options() for cls in DECODER_ONLY_OPTIONS},
                FoldPoolingOptions: fold != CV_ALL}
    return [derived[cls]() if cls in derived else from_config(cls, study.config, feature=feature, generator=generator)
            for cls in JOBS[rule].options if not left_out.get(cls)]


def job_document(study: "Study", rule: str, **names) -> str:
    """The JSON options document of one job (a rule's ``params.options``)."""
    return document(*options_of(study, rule, **names))


def job_kinds(study: "Study") -> list[tuple[str, dict]]:
    """(rule, names) of every kind of job, subjects and folds aside (but the encoding of fold cv-all, whose
    options differ): the names a rule's options depend on."""
    kinds = [("report_figures", {}), ("validate_dataset", {})]
    kinds += [(rule, {"subject": s}) for s in study.subjects for rule in study.kind.response_rules]
    kinds += [("simulate", {})] if study.simulated else []
    kinds += [("download_dataset", {})] if study.downloaded else []
    encoded = ("encode", *(["encode_banded"] if study.banded else []))
    kinds += [(rule, {}) for rule in ("factorise", "decode", *encoded, *(["decode_pooled"] if study.pooled else []),
                                      *(["decode_kshot"] if study.kshot else []),
                                      *(["pool_folds"] if study.pooled_folds else []))]
    kinds += [(rule, {"fold": CV_ALL}) for rule in encoded] if study.pooled_folds else []
    for feature in study.features:
        kinds += [(run_by(study, "features", feature), {"feature": feature})]
        kinds += [("fetch_models", {"feature": feature})] if study.needs_weights(feature) else []
    for feature in study.reconstructed:
        kinds += [(run_by(study, rule, feature), {"feature": feature})
                  for rule in ("index_corpus_chunk", "evaluate_reconstruction")]
        kinds += [("index_corpus", {"feature": feature}), ("retrieve", {"feature": feature})]
        kinds += [("generate", {"feature": feature, "generator": g}) for g in study.generators_of(feature)]
        kinds += [(run_by(study, "brain_score", feature), {"feature": feature})] if study.brain_scored(feature) else []
    kinds += [(rule, {}) for rule in ("list_corpus_chunk", "fingerprint_corpus_chunk", "find_duplicates")
              if study.reconstructed]
    generators = sorted({g for f in study.reconstructed for g in study.generators_of(f)})
    kinds += [("fetch_generator", {"generator": g}) for g in generators]
    kinds += [("listening_page", {})] if study.reconstructed else []
    kinds += [("listening_test", {})] if study.listening_test else []
    return kinds


def readers(study: "Study") -> dict[str, set[str]]:
    """Config key → the rules whose job options read it (directly or through a derived option)."""
    table: dict[str, set[str]] = {}
    for rule, names in job_kinds(study):
        for obj in options_of(study, rule, **{"subject": "", **names}):
            for key in keys_of(type(obj), feature=names.get("feature", ""), generator=names.get("generator", "")):
                table.setdefault(key, set()).add(rule)
    return table
