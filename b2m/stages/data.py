"""Data stages: the synthetic study, the OpenNeuro download, cleaning the BOLD, windowing the responses (from
the cleaned scans or the authors' arrays)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from b2m.errors import InputError
from b2m.options import (CleaningOptions, DatasetOptions, DesignOptions, DownloadOptions, FmriprepOptions,
                         SimulationConfig, ValidationOptions, WindowOptions, read_document)
from b2m.stages import STAGES, add_field_flags, flag_values, provenance, stage

log = logging.getLogger("b2m")


def open_dataset(options: dict):
    """The BIDS dataset of a stage's ``DatasetOptions`` and ``DesignOptions`` (and ``FmriprepOptions``, where the
    stage has them)."""
    from b2m.data.bids import BidsDataset

    dataset, fmriprep = options[DatasetOptions], options.get(FmriprepOptions)
    if not dataset.bids_root:
        raise SystemExit("b2m: give --bids (the dataset folder) or an options document naming it")
    return BidsDataset(dataset.bids_root, options[DesignOptions], fmriprep=fmriprep.root if fmriprep else None,
                       space=fmriprep.space if fmriprep else "T1w", repetition_time=dataset.repetition_time)


# The design fields a twin reads (`b2m simulate --like`): which events are analysed and what they present (the
# excerpt's columns come with --excerpt; what the folds hold out does not change a twin).
TWIN_DESIGN_FIELDS = ("tasks", "stimulus_column", "stimulus_template", "labels", "keep", "drop", "lead_in")


def _simulate_arguments(parser) -> None:
    parser.add_argument("out", type=Path)
    parser.add_argument("--full", action="store_true", help="real ds003720 size (5 × 18 runs of 96×96×68×410); "
                        "flags and the options document override it")
    parser.add_argument("--jobs", type=int, default=1, help="processes rendering the clips and writing the subjects")
    twin = parser.add_argument_group("the planted-truth twin of a study (--like; the design flags below too)")
    twin.add_argument("--like", type=Path, metavar="BIDS_ROOT", help="write the twin of this BIDS study instead: its "
                      "events (byte for byte), sidecars and layout in OUT/<its name>/, synthetic stimuli in its "
                      "stimuli/ folder and BOLD whose planted voxels respond to what is heard (or, without "
                      "stimuli, to the events' labels); --subjects caps its subjects (default: all), --shape, --snr, "
                      "--snr-spread and --seed apply")
    twin.add_argument("--runs", type=int, help="only the first N runs of each subject and task")
    twin.add_argument("--max-seconds", type=float, metavar="S", help="leave out the events that start after S s "
                      "(their lines of the events files) and end each run after its last event (e.g. 40-min runs)")
    twin.add_argument("--excerpt", nargs=2, metavar=("START", "END"), help="the events columns of the excerpt's "
                      "start and end (s) in its stimulus file [design.stimulus.start, design.stimulus.end]")
    add_field_flags(parser, DesignOptions, only=TWIN_DESIGN_FIELDS)


@stage("simulate", "write a synthetic study in ds003720's layout with a planted truth, or (--like) the "
       "planted-truth twin of a BIDS study", _simulate_arguments)
def simulate(args, options) -> None:
    from b2m.data.simulate import simulate_study

    config = options[SimulationConfig]
    if args.full:  # ds003720's size, then only what the document and the flags set
        config = dataclasses.replace(SimulationConfig.full(),
                                     **{k: getattr(config, k) for k in given_fields(args, SimulationConfig)})
    if args.like:
        paths = simulate_twin(args, config)
    elif flag_values(args, DesignOptions) or any(v is not None for v in (args.runs, args.max_seconds, args.excerpt)):
        raise SystemExit("b2m simulate: the design flags, --runs, --max-seconds and --excerpt describe a twin: give "
                         "--like BIDS_ROOT")
    else:
        paths = simulate_study(args.out, config, jobs=args.jobs)
    log.info("synthetic study written: %s", {k: str(v) for k, v in paths.items()})


def given_fields(args, cls) -> set[str]:
    """The fields of option class ``cls`` that the options document or a flag sets."""
    return set(json.loads(args.options or "{}").get(cls.section, {})) | set(flag_values(args, cls))


def simulate_twin(args, config: SimulationConfig) -> dict:
    """``b2m simulate --like``: the twin of ``args.like`` (``b2m.data.simulate.like``) with the design of the flags."""
    from b2m.data.simulate.like import simulate_like

    excerpt = dict(zip(("excerpt_start", "excerpt_end"), args.excerpt or ()))
    design = DesignOptions(**flag_values(args, DesignOptions), **excerpt)
    subjects = config.n_subjects if "n_subjects" in given_fields(args, SimulationConfig) else None
    return simulate_like(args.like, args.out, config, design, subjects=subjects, runs=args.runs,
                         max_seconds=args.max_seconds, jobs=args.jobs)


def _download_arguments(parser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="the BIDS folder to fill")
    parser.add_argument("--marker", type=Path, help="JSON written when done (Snakemake's output)")


@stage("download", "fetch an OpenNeuro dataset's files for some subjects (resumable, checked)",
       _download_arguments)
def download(args, options) -> None:
    from b2m.data.download import download_dataset
    from b2m.io import write_json

    spec = options[DownloadOptions]
    if not spec.subjects or not spec.accession:
        raise SystemExit("b2m download: give --subjects and --accession (or an options document naming them)")
    summary = download_dataset(args.out, spec.accession, list(spec.subjects), spec.url, spec.metadata_only)
    log.info("downloaded: %s", summary)
    if args.marker:
        write_json(args.marker, {**summary, "dataset": spec.accession, "subjects": list(spec.subjects),
                                 "url": spec.url})


def _subject_arguments(parser) -> None:
    parser.add_argument("--subject", required=True)
    parser.add_argument("--out", required=True, type=Path, help="the stage's output folder")


@stage("clean-bold", "mask, detrend and z-score a subject's BOLD runs (streamed)", _subject_arguments)
def clean_bold(args, options) -> None:
    from b2m.data.responses import clean_subject

    summary = clean_subject(open_dataset(options), args.subject, args.out, options[CleaningOptions],
                            params=provenance(args, options))
    log.info("cleaned: %s", summary)


def _window_arguments(parser) -> None:
    _subject_arguments(parser)
    parser.add_argument("--window", type=float, default=1.5, help="embedding window (s)")
    parser.add_argument("--stride", type=float, default=1.5, help="window stride (s)")


def _cleaned_window_arguments(parser) -> None:
    _window_arguments(parser)
    parser.add_argument("--clean", required=True, type=Path, help="output folder of clean-bold")


@stage("window-responses", "average cleaned scans over lagged embedding windows", _cleaned_window_arguments)
def window_responses(args, options) -> None:
    from b2m.data.responses import window_responses as window

    summary = window(open_dataset(options), args.subject, args.clean, args.out, args.window, args.stride,
                     options[WindowOptions].lag_s, params=provenance(args, options))
    log.info("windowed: %s", summary)


def _authors_arguments(parser) -> None:
    _window_arguments(parser)
    parser.add_argument("--training", required=True, type=Path, help="sub-XXX_Resp_Training.npy (voxels × 4800)")
    parser.add_argument("--test", required=True, type=Path, help="sub-XXX_Resp_Test_Mean.npy (voxels × 600)")


@stage("authors-arrays", "window the authors' preprocessed arrays (Zenodo 8275363)", _authors_arguments)
def authors_arrays(args, options) -> None:
    from b2m.data.authors import authors_responses

    summary = authors_responses(open_dataset(options), args.subject, args.training, args.test, args.out,
                                args.window, args.stride, options[WindowOptions].lag_s,
                                params=provenance(args, options))
    log.info("authors' arrays windowed: %s", summary)


def _validate_arguments(parser) -> None:
    parser.add_argument("--config", type=Path, help="a b2m config YAML: check its dataset (instead of --options)")
    parser.add_argument("--metadata-only", action="store_true", help="events, sidecars and captions only: no BOLD "
                        "image, mask, atlas or audio (e.g. before the data are downloaded)")
    parser.add_argument("--report", type=Path, help="write the report here when nothing is refused (the workflow's "
                        "output)")


@stage("validate", "check a study's dataset before anything is computed: runs, TRs, grids, events, stimuli, "
       "captions; prints a report and exits 2 if anything is refused", _validate_arguments)
def validate(args, options) -> None:
    from b2m.data.validate import validate_study
    from b2m.io import atomic_path

    if args.config:
        from b2m.jobs import job_document
        from b2m.study import load_study

        options = read_document(job_document(load_study(args.config), "validate_dataset"), STAGES["validate"].options)
    spec = options[ValidationOptions]
    report = validate_study(open_dataset(options), spec, options[WindowOptions].lag_s, not args.metadata_only)
    print(report.text(), flush=True)
    if report.problems:
        if args.report:  # a report of an earlier pass must not stand for these files
            args.report.unlink(missing_ok=True)
        first = report.problems[0]
        raise InputError(first.path, f"{first.problem} (and {len(report.problems) - 1} more problem(s), listed in the "
                         "report above)", first.fix)
    if args.report:
        with atomic_path(args.report) as tmp:
            Path(tmp).write_text(report.text() + "\n")
