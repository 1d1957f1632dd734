"""Report stages: the report's figures, the listening page, the listening test and its scores, and the summary
tables over every job."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pandas as pd

from b2m.errors import ConfigError
from b2m.layout import AudioFiles, BrainScoreFiles, FigureFiles
from b2m.options import (DesignOptions, FigureOptions, ListeningOptions, ListeningTestOptions, check_foils,
                         foil_label)
from b2m.reconstruct.brain import RERANKED
from b2m.stages import provenance, stage

log = logging.getLogger("b2m")


def read_atlas_labels(path) -> dict[int, str]:
    """The atlas's label names by label (a TSV with columns index and name)."""
    from b2m.errors import InputError
    from b2m.io import regular_file

    fix = "give responses.atlas_labels as a TSV with the columns index and name"
    path = regular_file(path, "atlas label table", fix)
    try:
        names = pd.read_csv(path, sep="\t")[["index", "name"]]
        if names.isna().any().any():
            raise ValueError("a row lacks its index or name")
        return dict(zip(names["index"].astype(int), names["name"].astype(str)))
    except (KeyError, ValueError) as err:  # pandas' parse errors and a bad encoding are ValueErrors
        raise InputError(path, f"not an atlas label table ({type(err).__name__}: {err})", fix) from err


class KeyedPaths(dict):
    """The ``KEY=PATH`` arguments of one flag as key → path, a key's parts split at ``:`` (``sub-001:acoustic=...``
    → ``("sub-001", "acoustic")``; a key of one part stays a string); a key asked for but not given stops the stage
    with a ``ConfigError`` naming the flag (a rule gives every file its stage reads)."""

    def __init__(self, flag: str, items: list[str]):
        self.flag = flag
        malformed = [item for item in items if "=" not in item]
        if malformed:
            raise ConfigError(f"{flag} {malformed[0]!r} is not KEY=PATH; give each file as KEY=PATH")
        pairs = (item.split("=", 1) for item in items)
        super().__init__({tuple(key.split(":")) if ":" in key else key: Path(path) for key, path in pairs})

    def __missing__(self, key):
        name = ":".join(key) if isinstance(key, tuple) else key
        raise ConfigError(f"{self.flag} gives no file for {name}; give {self.flag} {name}=PATH")


def _figure_arguments(parser) -> None:
    parser.add_argument("--scores", required=True, type=Path, help="the identification table of b2m summarize")
    parser.add_argument("--encoding", nargs="*", default=[], metavar="SUBJECT:SPACE=FILE",
                        help="each subject × space's encoding voxels.parquet (space banded: the banded model's)")
    parser.add_argument("--scans", nargs="*", default=[], metavar="SUBJECT=FOLDER",
                        help="each subject's responses folder: its voxel positions and mask (BOLD input)")
    parser.add_argument("--rois", nargs="*", default=[], metavar="SUBJECT:SPACE=FILE",
                        help="each subject × space's decoding ROI table (the ROI table's spaces)")
    parser.add_argument("--atlas-labels", type=Path, help="TSV with columns index, name (the atlas's ROI names)")
    parser.add_argument("--out", required=True, type=Path, help="folder of the figures and tables")


@stage("report-figures", "the report's figures: identification vs the paper's Table 2, encoding maps, voxel "
       "scatter, ROI table, variance partitioning", _figure_arguments)
def report_figures(args, options) -> None:
    from b2m.report import figures
    from b2m.report.published import citations

    spec, out = options[FigureOptions], FigureFiles(args.out)
    subjects, fold = list(spec.subjects), spec.fold
    files = figures.FigureInputs(KeyedPaths("--encoding", args.encoding), KeyedPaths("--scans", args.scans),
                                 KeyedPaths("--rois", args.rois))
    scores = pd.read_parquet(args.scores)
    comparison = figures.identification_comparison(scores, spec.extractors or {}, fold)
    figures.write_html_table(out.table2, comparison, f"Identification accuracy, {fold} fold",
                             "mean ± sd over subjects and the mean measured chance, beside the published results "
                             "each row compares to (the paper's for the space each feature stands in for), by "
                             f"study: {citations()}. Rows with no feature: a published result b2m has no row of "
                             "here, and where b2m's counterpart is")
    figures.save_figure(figures.plot_identification(scores, comparison, fold), out.identification)
    for feature in spec.maps:
        figures.save_figure(figures.plot_encoding_maps(files, subjects, feature, spec.glass_brain),
                            out.encoding_map(feature))
        log.info("encoding maps of %s written", feature)
    if spec.scatter:
        figures.save_figure(figures.plot_voxel_scatter(files, subjects, *spec.scatter), out.scatter)
    if spec.roi_table:
        labels = read_atlas_labels(args.atlas_labels) if args.atlas_labels else {}
        table = figures.roi_table(files, subjects, list(spec.roi_table), labels)
        figures.write_html_table(out.roi, table, f"Encoding per ROI, {fold} fold",
                                 "voxels, voxels at q < 0.05, mean and max r per atlas ROI")
        table = figures.decoding_roi_table(files, subjects, list(spec.roi_table), labels)
        figures.write_html_table(out.roi_weights, table, f"Decoding per ROI, {fold} fold",
                                 "the roi-banded decoder (banded ridge, one band per ROI): each ROI's share of its "
                                 "test predictions and its kernel weight (each sums to 1 over the ROIs); the ROI's "
                                 "own decoder's mean CV score (l2 negative loss) and whether the roi-ensemble "
                                 "averaged it")
    if spec.banded:
        table = figures.variance_partition_table(files, subjects)
        figures.write_html_table(out.variance_table, table, f"Variance partitioning, {fold} fold",
                                 "banded ridge: each space's mean share of the joint R² over the voxels at q < 0.05, "
                                 "and the voxels where it is the largest share")
        figures.save_figure(figures.plot_variance_partition(table), out.variance)
    log.info("report figures written to %s", out.path)


def _reconstruction_arguments(parser) -> None:
    """The reconstructions listened to: each section's retrieval audio and generated samples."""
    parser.add_argument("--retrieved", nargs="+", required=True, metavar="SUBJECT:SPACE=FOLDER",
                        help="each subject × space's retrieval audio folder (b2m retrieve)")
    parser.add_argument("--samples", nargs="*", default=[], metavar="SUBJECT:SPACE:GENERATOR=FOLDER",
                        help="each subject × space's samples of each generator (b2m generate)")
    parser.add_argument("--brain", nargs="*", default=[], metavar="SUBJECT:SPACE=FOLDER",
                        help="each subject × space's brain-scored reconstructions (b2m brain-score), where scored")
    parser.add_argument("--jobs", type=int, default=1, help="audio files encoded at once")


def _listening_arguments(parser) -> None:
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--predictions", nargs="+", required=True, metavar="SUBJECT:SPACE=FILE",
                        help="each subject × space's decoding predictions (its identification ranks)")
    _reconstruction_arguments(parser)


def sections(spec: ListeningOptions, args) -> list[tuple[str, str, Path, list[Path], BrainScoreFiles | None]]:
    """(subject, feature, retrieval audio folder, generated folders, brain-scored folder or None) of each section of
    the listening page and test, in the options' order, from the stage's ``--retrieved``, ``--samples`` and
    ``--brain``; ``spec.model`` must be a decoder reconstructions are made from."""
    from b2m.models.decoders import RECONSTRUCTED, check_decoders

    check_decoders([spec.model], "reconstruction.audio.model (--model)", RECONSTRUCTED)
    audio, generated = KeyedPaths("--retrieved", args.retrieved), KeyedPaths("--samples", args.samples)
    brain, generators = KeyedPaths("--brain", args.brain), spec.generated or {}
    return [(subject, feature, audio[subject, feature],
             [generated[subject, feature, g] for g in generators.get(feature, [])],
             BrainScoreFiles(brain[subject, feature]) if (subject, feature) in brain else None)
            for subject in spec.subjects for feature in spec.features]


def reranked_audio(brain: BrainScoreFiles | None) -> AudioFiles | None:
    """The audio of a section's brain-scored retrieval (None where the section's retrieval is not re-ranked)."""
    return brain.audio if brain and brain.audio.listing.exists() else None


def chosen_samples(brain: BrainScoreFiles | None) -> list[Path]:
    """The folders of a section's brain-chosen generated samples (none where not scored)."""
    return [files.path for files in brain.generations()] if brain else []


@stage("listening-page", "one HTML page to hear each test clip beside its reconstructions",
       _listening_arguments)
def listening_page(args, options) -> None:
    from b2m.report.listening import section_html, write_listening_page

    spec, predictions, rendered = options[ListeningOptions], KeyedPaths("--predictions", args.predictions), []
    for subject, feature, audio, generated, brain in sections(spec, args):
        title, ranked = f"{subject}, {spec.fold} fold, {feature} ({spec.model})", pd.read_parquet(
            predictions[subject, feature])
        rendered.append(section_html(title, audio, ranked, spec.model, generated + chosen_samples(brain), args.jobs))
        if reranked_audio(brain):
            rendered.append(section_html(f"{title}: {RERANKED}", reranked_audio(brain).path, ranked, spec.model,
                                         jobs=args.jobs))
        log.info("listening page: %s %s %s added", subject, spec.fold, feature)
    write_listening_page(args.out, rendered)


def _listening_test_arguments(parser) -> None:
    parser.add_argument("--page", required=True, type=Path, help="the test's HTML page")
    parser.add_argument("--key", required=True, type=Path, help="its key: the true side of every trial (TSV)")
    parser.add_argument("--duplicates", type=Path, help="duplicates.tsv of b2m find-duplicates: corpus tracks that "
                        "are a clip's own audio, never its foil")
    _reconstruction_arguments(parser)


def foil_labels(options, schemes) -> dict:
    """Label → test clip → its value, for each label a ``<label>-matched`` foil scheme of ``schemes`` matches on,
    from the design's stimulus table (none read when every scheme is random)."""
    from b2m.stages.data import open_dataset

    matched = [foil_label(s) for s in schemes if foil_label(s)]
    if not matched:
        return {}
    check_foils(schemes, options[DesignOptions].labels, "--foils")
    table = open_dataset(options).stimulus_table()
    return {label: dict(zip(table.clip_id[table[label].notna()], table[label].dropna().astype(str)))
            for label in matched}


@stage("listening-test", "one HTML page of two-alternative trials to identify each clip's reconstruction by ear, "
       "and its key", _listening_test_arguments)
def listening_test(args, options) -> None:
    from b2m.reconstruct.duplicates import read_duplicates
    from b2m.report.listening_test import draw_trials, generation_candidates, retrieval_candidates, \
        write_listening_test

    spec, draw, candidates = options[ListeningOptions], options[ListeningTestOptions], []
    duplicates = read_duplicates(args.duplicates) if args.duplicates else None
    for subject, feature, audio, generated, brain in sections(spec, args):
        retrieved = retrieval_candidates(audio, subject, spec.fold, feature, spec.model, duplicates)
        candidates += [retrieved] + [generation_candidates(folder, retrieved)
                                     for folder in generated + chosen_samples(brain)]
        if reranked_audio(brain):
            candidates.append(replace(retrieval_candidates(reranked_audio(brain).path, subject, spec.fold, feature,
                                                           spec.model, duplicates), method=RERANKED))
    trials = draw_trials(candidates, draw.seed, draw.clips, draw.foils, foil_labels(options, draw.foils))
    key = write_listening_test(args.page, args.key, trials, args.jobs)
    log.info("listening test %s: %d trials written to %s, its key to %s", key.page_id, len(trials), args.page,
             args.key)


def _score_listening_arguments(parser) -> None:
    parser.add_argument("answers", nargs="+", type=Path, help="answer files the test page exported (JSON or CSV)")
    parser.add_argument("--key", required=True, type=Path, help="the key written beside the page")
    parser.add_argument("--out", required=True, type=Path, help="the score table (TSV)")
    parser.add_argument("--html", type=Path, help="the same table as an HTML page")


@stage("score-listening", "accuracy of a listening test's answers per listener, method, space, foil scheme and "
       "pooled, with exact (Clopper–Pearson) intervals and binomial p against chance", _score_listening_arguments)
def score_listening(args, options) -> None:
    from b2m.evaluate.listeners import score_answer_files
    from b2m.io import atomic_path
    from b2m.report.figures import write_html_table

    table = score_answer_files(args.key, args.answers)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.4g")
    if args.html:
        shown = table.assign(**{c: table[c].map("{:.2g}".format) for c in ("p_two_sided", "p_above_chance")})
        write_html_table(args.html, shown, "Listening test: two-alternative identification by ear",
                         "share of trials answered with the true reconstruction; 95 % Clopper–Pearson interval; "
                         "exact binomial p against 0.5, two-sided and one-sided (above chance), uncorrected for "
                         "the number of rows; pooled rows count every answer as one draw; foil scheme rows compare "
                         "random foils with foils matched on a label (<label>-matched)")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def _summary_arguments(parser) -> None:
    parser.add_argument("scores", nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--tsv", type=Path)


def _kshot_figure_arguments(parser) -> None:
    parser.add_argument("--scores", required=True, type=Path, help="the k-shot table of b2m summarize (kshot.parquet)")
    parser.add_argument("--out", required=True, type=Path, help="the figure (.svg)")


@stage("report-kshot", "the k-shot curves: each left-out subject's identification against the minutes of its data "
       "aligned to the others' shared space, beside its own full-data decoder", _kshot_figure_arguments)
def report_kshot(args, options) -> None:
    from b2m.report import figures

    figures.save_figure(figures.plot_kshot(pd.read_parquet(args.scores)), args.out)


@stage("summarize", "one table of every subject × fold × feature score", _summary_arguments)
def summarize(args, options) -> None:
    from b2m.io import atomic_path, write_parquet

    table = pd.concat([pd.read_parquet(p) for p in args.scores], ignore_index=True)
    keys = [key for key in ("feature", "fold", "model", "level", "metric", "subject") if key in table.columns]
    table = table.sort_values(keys, kind="stable").reset_index(drop=True)
    first = ["subject", "fold", "feature", "method", "model", "level", "metric"]
    table = table[[c for c in first if c in table.columns] + [c for c in table.columns if c not in first]]
    write_parquet(args.out, table, provenance(args, options))
    if args.tsv:
        with atomic_path(args.tsv) as tmp:
            table.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
