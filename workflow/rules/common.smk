# The functions the rules share: the study model (b2m.study) gives every path, list and job option, so rules
# know wildcards and files, never config values (the config is read once, by `Study`). The job table (b2m.jobs)
# gives each rule's shell line (`JOBS[rule].shell`) and its options document: a job's options reach its command
# only as `params.options`, the JSON document Snakemake's params trigger compares with the last run's.
import functools
import os
import re

from b2m.errors import InputError
from b2m.jobs import JOBS, SUMMARY_TABLES, job_document, runs_on_gpu, twin_of
from b2m.layout import BANDED, CV_ALL
from b2m.study import Study

STUDY = Study(config)
LAYOUT = STUDY.layout
REPEATS = ["test_repeats", "test_repeats_rows"] if STUDY.kind.reads_images else []


def job_options(rule):
    """`params.options` of a rule: its job's options document, from the subject, feature, generator and fold
    wildcards."""

    def options(wildcards):
        names = {key: wildcards[key] for key in ("subject", "feature", "generator", "fold") if key in wildcards.keys()}
        return job_document(STUDY, rule, **names)

    return options


def output_folder(name):
    """A param: the folder of the rule's output ``name`` (a stage writes its folder's files, named by the layout)."""
    return lambda wildcards, output: os.path.dirname(output[name])


def input_folder(name):
    return lambda wildcards, input: os.path.dirname(input[name])


def outputs_of(files, *extra):
    """A layout folder's files as a rule's outputs (with the optional ones named in ``extra``), its subfolders
    flagged as directories."""
    return {
        name: directory(path) if name in files.subfolders() else path for name, path in files.outputs(*extra).items()
    }


def log_of(*parts):
    """The log of a job: logs/<parts>.log (wildcards allowed)."""
    return str(LAYOUT.log(*parts))


def benchmark_of(*parts):
    return str(LAYOUT.benchmark(*parts))


def features_matching(test):
    """A wildcard pattern of the features for which ``test(feature)`` holds (one that matches none if none do):
    rules that run on a GPU for some features only are split in two, so that a cluster profile can send the
    GPU half to a GPU partition."""
    names = [re.escape(f) for f in STUDY.features if test(f)]
    return "|".join(names) if names else "(?!)"


def on_gpu_pattern(rule, gpu):
    return features_matching(lambda f: runs_on_gpu(STUDY, rule, f) == gpu)


def grows_with_attempt(base):
    """A job's memory (mem_mb): ``base`` times its attempt, so a job killed for memory is retried with more
    (`retries:` in profiles/slurm). Bases are about 1.4 × the peaks of the full-size run (BENCHMARKS.md). Run
    time is the cluster profile's (`runtime`, capped at the partition's limit): it does not depend on the rule."""
    return lambda wildcards, attempt: base * attempt


def conda_env(wildcards):
    """The conda environment of a features job: laion-clap's own for its CLAP spaces."""
    return "../../envs/clap.yaml" if STUDY.uses_laion_clap(wildcards.feature) else "../../envs/core.yaml"


# ---------------------------------------------------------------- inputs


def simulated_outputs():
    """The simulated study, in ds003720's layout under `simulate.out` (the dataset keys must point into it)."""
    out = STUDY.simulation_out
    return {
        "bids": directory(STUDY.bids_root),
        "stimuli": directory(STUDY.stimuli_folder()),
        "corpus": directory(f"{out}/corpus"),
        "captions": STUDY.captions or f"{out}/captions.csv",
        "atlas": f"{out}/atlas/atlas.nii.gz",
        "atlas_labels": f"{out}/atlas/atlas.tsv",
        "mask": f"{out}/atlas/cortex_mask.nii.gz",
        "truth": directory(f"{out}/truth"),
        "subject_masks": subject_masks(),
    }


def subject_masks():
    """Each subject's own cortex mask, where the simulated subjects have their own (`simulate.voxel_dropout`)."""
    from b2m.data.simulate import subject_mask_path

    if not STUDY.simulation.voxel_dropout:
        return []
    return [str(subject_mask_path(f"{STUDY.simulation_out}/atlas", s)) for s in STUDY.subjects]


def dataset_input():
    """The BIDS folder, or with `dataset.download` the download's marker (the folder itself is no rule's
    output, so a stopped download keeps its partial files and resumes)."""
    return f"{STUDY.bids_root}/.b2m-download.json" if STUDY.downloaded else STUDY.bids_root


def dataset_made():
    """Where the dataset is made by the workflow (the checkpoints simulate and download_dataset), wait until it is
    made: its files are listed as inputs only then, so the first run records the same inputs as every later one."""
    if STUDY.simulated:
        checkpoints.simulate.get()
    elif STUDY.downloaded:
        checkpoints.download_dataset.get()


def bids_dataset():
    """The dataset as the jobs will read it (None where there is none to read)."""
    from b2m.data.bids import BidsDataset

    try:
        return BidsDataset(STUDY.bids_root, STUDY.design, STUDY.fmriprep.root, STUDY.fmriprep.space)
    except InputError:
        return None


def check_the_data():
    """The config against the data that is there at planning: each subject's training runs, counted in its events
    files (a simulated study's come from its config; the jobs of a downloaded one check before they compute)."""
    dataset = None if STUDY.simulated or STUDY.downloaded else bids_dataset()
    counts = {}
    for subject in STUDY.subjects if dataset else []:
        try:
            counts[subject] = sum(run.split == "train" for run in dataset.runs(subject))
        except InputError:
            pass  # validate_dataset reports it, naming the file
    STUDY.check_runs(counts)


@functools.cache
def run_files(subject, images):
    """Each run's events, sidecar and (with ``images``) image that a subject's job reads, as its inputs, so that
    a corrected file reruns exactly what read it (none where the subject has no runs: the job reports it)."""
    dataset_made()
    dataset = bids_dataset()
    try:
        return [str(path) for path in dataset.run_files(subject, images)] if dataset else []
    except InputError:
        return []


@functools.cache
def stimulus_files(split=None, audio=True):
    """The events the stimulus table is read from and (with ``audio``) every stimulus clip's audio file (of
    ``split``)."""
    dataset_made()
    dataset = bids_dataset()
    try:
        files = dataset.stimulus_files(STUDY.stimuli_folder(), split, audio) if dataset else []
        return [str(path) for path in files]
    except InputError:
        return []


def validation_inputs(wildcards):
    """Every dataset file a job of the study reads: what `b2m validate` checks before any of them runs."""
    images = STUDY.kind.reads_images
    inputs = {
        "bids": dataset_input(),
        "runs": [f for s in STUDY.subjects for f in run_files(s, images)],
        "clips": stimulus_files(),
    }
    if STUDY.design.has_stimuli:
        inputs["stimuli"] = STUDY.stimuli_folder()
    spec = STUDY.validation_options()
    if spec.captions:
        inputs["captions"] = spec.captions
    labels = [STUDY.cleaning(s) for s in STUDY.subjects] if images else []
    inputs["labels"] = sorted({p for c in labels for p in (c.mask, c.atlas) if p and p != "compute"})
    if not images:
        inputs["arrays"] = [f for s in STUDY.subjects for f in authors_array_files(s).values()]
    return inputs


def cleaning_inputs(wildcards):
    cleaning = STUDY.cleaning(wildcards.subject)
    files = {"bids": dataset_input(), "runs": run_files(wildcards.subject, True)}
    if STUDY.kind.fmriprep:
        files["fmriprep"] = STUDY.fmriprep.root
    if cleaning.mask != "compute":
        files["mask"] = cleaning.mask
    if cleaning.atlas:
        files["atlas"] = cleaning.atlas
    return files


def authors_array_files(subject):
    from b2m.data.authors import ARRAY_NAMES

    folder = STUDY.authors_arrays
    return {
        "training": f"{folder}/{ARRAY_NAMES['train'].format(subject=subject)}",
        "test": f"{folder}/{ARRAY_NAMES['test'].format(subject=subject)}",
    }


def authors_arrays(wildcards):
    return authors_array_files(wildcards.subject)


def clips_read(wildcards):
    """The stimulus table's events and, for a space embedded from audio, every clip's audio file."""
    return stimulus_files(audio=STUDY.reads_audio(wildcards.feature))


def subject_runs(wildcards):
    """A subject's events and sidecars (windowing reads no image), and every subject's events: the stimulus table
    they make deals the cv folds and the inner CV's groups."""
    return list(dict.fromkeys(run_files(wildcards.subject, False) + stimulus_files(audio=False)))


def window_inputs(wildcards, feature=None):
    """The responses of a feature's window grid (with the repeats, where the input has them)."""
    window, stride = STUDY.window_of(feature or wildcards.feature)
    return LAYOUT.windows(wildcards.subject, window, stride).outputs(*REPEATS)


def factorised_responses(wildcards):
    """The responses a factorisation reads: one window grid's training and test rows."""
    windows = LAYOUT.windows(wildcards.subject, wildcards.window, wildcards.stride)
    return {name: str(getattr(windows, name)) for name in ("train", "train_rows", "test", "test_rows")}


def decoding_files():
    """The decode rule's outputs: the ROI table too where the decoders have ROI labels."""
    return outputs_of(LAYOUT.decoding("{subject}", "{fold}", "{feature}"), *(["rois"] if STUDY.decodes_rois() else []))


def pooled_inputs(wildcards):
    """Every subject's responses of the feature's window grid (lists in `subjects` order) and the features."""
    window, stride = STUDY.window_of(wildcards.feature)
    folders = [LAYOUT.windows(s, window, stride) for s in STUDY.subjects]
    names = ("train", "train_rows", "test", "test_rows")
    return {"features": str(LAYOUT.features(wildcards.feature))} | {
        name: [str(getattr(folder, name)) for folder in folders] for name in names
    }


def pooled_responses(wildcards, input):
    """`--responses` of decode_pooled: SUBJECT=FOLDER of every subject."""
    return [f"{s}={os.path.dirname(path)}" for s, path in zip(STUDY.subjects, input.train)]


def kshot_inputs(wildcards):
    """decode_kshot's: every subject's responses and the features (`pooled_inputs`), the left-out subject's own
    decoders' scores (its full-data end) and, where responses have voxel positions, every subject's (the
    zero-shot alignment's)."""
    scans = [LAYOUT.scans(s) for s in STUDY.subjects] if STUDY.has_positions() else []
    own = LAYOUT.decoding(wildcards.subject, wildcards.fold, wildcards.feature)
    return pooled_inputs(wildcards) | {
        "full_data": str(own.scores),
        "positions": [str(files.voxels) for files in scans],
        "masks": [str(files.mask) for files in scans],
    }


def decoded(name):
    """An input function: the table ``name`` (scores, label_scores) of every subject × fold × feature's decoders
    and, where the cv folds are pooled, of every subject × feature's cv-all fold."""

    def tables(wildcards):
        pooled = [str(getattr(LAYOUT.pooled_folds(s, x), name)) for s in STUDY.subjects for x in STUDY.features]
        return every(lambda s, f, x: getattr(LAYOUT.decoding(s, f, x), name)) + (pooled if STUDY.pooled_folds else [])

    return tables


def decoding_scores(wildcards):
    """Every decoder's scores: each subject's (with cv-all) and (with a pooled model) each fold × feature's pooled
    ones."""
    pooled = [str(LAYOUT.pooled(f, x).scores) for f in STUDY.folds for x in STUDY.features] if STUDY.pooled else []
    return decoded("scores")(wildcards) + pooled


def pooled_fold_inputs(wildcards):
    """pool_folds' inputs: each cv fold's predictions and target scale (lists in `folds` order), and the features."""
    folders = [LAYOUT.decoding(wildcards.subject, f, wildcards.feature) for f in STUDY.pooled_folds]
    return {
        "features": str(LAYOUT.features(wildcards.feature)),
        "predictions": [str(folder.predictions) for folder in folders],
        "target_scale": [str(folder.target_scale) for folder in folders],
    }


def pooled_fold_folders(wildcards, input):
    """`--folds` of pool_folds: FOLD=FOLDER of every cv fold."""
    return [f"{f}={os.path.dirname(path)}" for f, path in zip(STUDY.pooled_folds, input.predictions)]


def factors_output():
    """factorise's output: kept (``decoding.keep_factors``, the default) or temporary."""
    path = str(LAYOUT.factors("{subject}", "{fold}", "{window}", "{stride}").factors)
    return path if STUDY.keeps_factors else temp(path)


def factors_input(wildcards):
    """The factorisation of the feature's window grid in this subject × fold."""
    window, stride = STUDY.window_of(wildcards.feature)
    return str(LAYOUT.factors(wildcards.subject, wildcards.fold, window, stride).factors)


def positions_input(wildcards):
    """The subject's voxel positions and ROI labels, where the input has them (not the authors' arrays)."""
    scans = LAYOUT.scans(wildcards.subject)
    return {"voxels": str(scans.voxels), "mask": str(scans.mask)} if STUDY.has_positions() else {}


def positions_option(wildcards, input):
    """`--positions <folder>` where the job has the voxel positions as input."""
    return ["--positions", os.path.dirname(input.voxels)] if "voxels" in input.keys() else []


def banded_inputs(wildcards):
    return window_inputs(wildcards, STUDY.banded[0])


def banded_features(wildcards):
    return {name: str(LAYOUT.features(name)) for name in STUDY.banded}


def features_input(wildcards):
    inputs = {"bids": dataset_input()}
    if STUDY.reads_audio(wildcards.feature):
        inputs["stimuli"] = STUDY.stimuli_folder()
    if STUDY.needs_weights(wildcards.feature):
        inputs["models"] = str(LAYOUT.fetched(wildcards.feature))
    if STUDY.reads_captions(wildcards.feature):
        inputs["captions"] = STUDY.captions
    return inputs


@functools.cache
def corpus_chunk_files():
    """Chunk → the audio files of its corpus tracks, listed once per plan (none where a source is missing or
    empty: the chunk job reports it; a file whose path holds { or } stops the plan, naming it). A simulated corpus
    is listed once it is made."""
    from b2m.reconstruct.corpus import chunk_of, corpus_track_files
    from b2m.study import plain_paths

    if STUDY.simulated:
        checkpoints.simulate.get()
    try:
        tracks = corpus_track_files(STUDY.corpus_sources)
    except InputError:
        return {}
    plain_paths(tracks.path.tolist(), "a corpus track", "rename it without { and }, or move it out of the corpus")
    chunks = chunk_of(tracks.track_id, len(STUDY.corpus_chunks()))
    return {str(n): paths.tolist() for n, paths in tracks.path.groupby(chunks)}


def corpus_chunk_audio(wildcards):
    """The audio files of a chunk's corpus tracks: the inputs of its listing."""
    return corpus_chunk_files().get(wildcards.chunk, [])


def corpus_chunk_input(wildcards):
    """An index chunk job's listing (and the model marker of a space with weights)."""
    inputs = {"tracks": str(LAYOUT.corpus_listing(wildcards.chunk))}
    if STUDY.needs_weights(wildcards.feature):
        inputs["models"] = str(LAYOUT.fetched(wildcards.feature))
    return inputs


def index_input(wildcards):
    """The gather's: every chunk of the feature's index, and the label files of the sources (FMA's tracks.csv)."""
    corpus = LAYOUT.corpus(wildcards.feature)
    return {
        "chunks": [path for n in STUDY.corpus_chunks() for path in corpus.chunk(n).outputs().values()],
        "labels": [s["tracks_csv"] for s in STUDY.corpus_sources if s.get("tracks_csv")],
    }


def decoding_outputs(wildcards):
    decoded = LAYOUT.decoding(wildcards.subject, wildcards.fold, wildcards.feature)
    corpus = LAYOUT.corpus(wildcards.feature)
    return {
        "predictions": str(decoded.predictions),
        "target_scale": str(decoded.target_scale),
        "vectors": str(corpus.vectors),
        "tracks": str(corpus.tracks),
    }


def generate_input(wildcards):
    inputs = {**decoding_outputs(wildcards), "models": str(LAYOUT.fetched(f"generator-{wildcards.generator}"))}
    if wildcards.generator == "caption":
        inputs["caption_features"] = str(LAYOUT.features(STUDY.caption_feature()))
        inputs["captions"] = STUDY.captions
    return inputs


def brain_score_input(wildcards):
    """A brain-score job's: the responses and features its encoding model is fit on, the retrieval it re-ranks
    (``reconstruction.rerank``), the generated samples it chooses among (``generation.select: brain``) and the model
    marker of a space with weights."""
    names = (wildcards.subject, wildcards.fold, wildcards.feature)
    spec = STUDY.brain_score_options()
    generators = STUDY.generators_of(wildcards.feature) if spec.select == "brain" else []
    inputs = {
        **window_inputs(wildcards),
        "features": str(LAYOUT.features(wildcards.feature)),
        "retrieval": [str(LAYOUT.retrieval(*names).neighbours)] if spec.rerank else [],
        "generated": [str(LAYOUT.generation(*names, g).path) for g in generators],
    }
    if STUDY.needs_weights(wildcards.feature):
        inputs["models"] = str(LAYOUT.fetched(wildcards.feature))
    return inputs


def evaluate_input(wildcards):
    names = (wildcards.subject, wildcards.fold, wildcards.feature)
    inputs = {
        **decoding_outputs(wildcards),
        "neighbours": str(LAYOUT.retrieval(*names).neighbours),
        "duplicates": str(LAYOUT.duplicates().table),
        "generated": [str(LAYOUT.generation(*names, g).path) for g in STUDY.generators_of(wildcards.feature)],
        "brain": [str(LAYOUT.brain_score(*names).path)] if STUDY.brain_scored(wildcards.feature) else [],
    }
    if STUDY.evaluation_needs_model(wildcards.feature):
        inputs["models"] = str(LAYOUT.fetched(wildcards.feature))
    return inputs


def every(layout_path, features=None, folds=None):
    """``layout_path(subject, fold, feature)`` for every subject × fold × feature (default: all of them)."""
    return [
        str(layout_path(s, f, x))
        for s in STUDY.subjects
        for f in (folds or STUDY.folds)
        for x in (features if features is not None else STUDY.features)
    ]


def encoding_summaries(wildcards):
    """Every encoding's summary: each subject × fold × feature's and banded model's, fold cv-all's too where the cv
    folds are pooled."""
    folds = STUDY.encoded_folds
    spaces = every(lambda s, f, x: LAYOUT.encoding(s, f, x).summary, folds=folds)
    return spaces + ([str(LAYOUT.banded(s, f).summary) for s in STUDY.subjects for f in folds] if STUDY.banded else [])


def encoded_fold_pattern():
    """The fold wildcard of the encoding rules: `folds`, and cv-all where the cv folds are pooled."""
    return "|".join(map(re.escape, STUDY.encoded_folds))


def keyed(name, keys, folder=False):
    """A param: the input list ``name`` as the stage's `KEY=PATH` arguments, a key's parts joined by `:` (with
    ``folder``, the folder of each file)."""

    def arguments(wildcards, input):
        paths = [os.path.dirname(path) if folder else path for path in input[name]]
        return [":".join(key) + f"={path}" for key, path in zip(keys, paths, strict=True)]

    return arguments


def flagged(flag, arguments):
    """A param: the list the param function ``arguments`` gives, after ``flag``; nothing where the list is empty (an
    optional file of the command line)."""

    def param(wildcards, input):
        values = arguments(wildcards, input)
        return [flag, *values] if values else []

    return param


def figure_keys():
    """report_figures' files by what they are, in its input lists' order: (subject, space) of each encoding table
    and decoding ROI table, (subject,) of each responses folder."""
    figures = STUDY.figure_options()
    encoded = sorted(set(figures.maps + figures.scatter + figures.roi_table)) + ([BANDED] if figures.banded else [])
    return {
        "encoding": [(s, f) for s in STUDY.subjects for f in encoded],
        "scans": [(s,) for s in STUDY.subjects] if STUDY.has_positions() else [],
        "rois": [(s, f) for s in STUDY.subjects for f in figures.roi_table],
    }


def figure_inputs(wildcards):
    figures, keys = STUDY.figure_options(), figure_keys()
    scans = [LAYOUT.scans(s) for (s,) in keys["scans"]]
    labels = STUDY.atlas_labels if figures.roi_table else None
    return {
        "scores": str(LAYOUT.summary("identification")),
        "encoding": [str(LAYOUT.encoding(s, figures.fold, f).voxels) for s, f in keys["encoding"]],
        "positions": [str(files.voxels) for files in scans],
        "masks": [str(files.mask) for files in scans],
        "labels": [labels] if labels else [],
        "rois": [str(LAYOUT.decoding(s, figures.fold, f).rois) for s, f in keys["rois"]],
    }


def reported(path, caption, category, **extra):
    """An output shown in `snakemake --report`, with its caption from workflow/report/<caption>.rst (an absolute
    path: a relative one is taken from whichever snakefile calls this)."""
    captions = os.path.join(workflow.basedir, "workflow", "report")
    return report(str(path), caption=os.path.join(captions, f"{caption}.rst"), category=category, **extra)


def figure_outputs():
    figures, files = STUDY.figure_options(), LAYOUT.figures()
    outputs = {
        "identification": reported(files.identification, "figure_identification", "Decoding"),
        "table2": reported(files.table2, "table2", "Decoding"),
    }
    if figures.maps:
        outputs["maps"] = [
            reported(files.encoding_map(f), "maps", "Encoding", subcategory="Maps", labels={"feature": f})
            for f in figures.maps
        ]
    if figures.scatter:
        outputs["scatter"] = reported(files.scatter, "voxel_scatter", "Encoding")
    if figures.roi_table:
        outputs["roi"] = reported(files.roi, "roi", "Encoding")
        outputs["roi_weights"] = reported(files.roi_weights, "roi_weights", "Decoding")
    if figures.banded:
        for name in ("variance", "variance_table"):
            outputs[name] = reported(getattr(files, name), "variance_partitioning", "Encoding")
    return outputs


def listening_keys():
    """The listening page's and test's files by what they are, in their input lists' order: (subject, space) of
    each section's retrieval audio and predictions, (subject, space, generator) of its generated samples, (subject,
    space) of its brain-scored reconstructions where they are made."""
    page = STUDY.listening_options()
    sections = [(s, f) for s in page.subjects for f in page.features]
    generated = [(s, f, g) for s, f in sections for g in STUDY.generators_of(f)]
    brain = [(s, f) for s, f in sections if STUDY.brain_scored(f)]
    return {"audio": sections, "predictions": sections, "generated": generated, "brain": brain}


def listening_audio(wildcards):
    """The audio the listening page and the listening test play: retrieval's folders, every generator's, and the
    brain-scored ones."""
    fold, keys = STUDY.listening_options().fold, listening_keys()
    return {
        "audio": [str(LAYOUT.retrieval(s, fold, f).audio_folder) for s, f in keys["audio"]],
        "generated": [str(LAYOUT.generation(s, fold, f, g).path) for s, f, g in keys["generated"]],
        "brain": [str(LAYOUT.brain_score(s, fold, f).path) for s, f in keys["brain"]],
    }


def foil_label_inputs(wildcards):
    """The events the listening test reads its clips' labels from, where it matches foils on a label (none for
    random foils)."""
    if not STUDY.matches_foils():
        return {}
    return {"bids": dataset_input(), "clips": stimulus_files(audio=False)}


def listening_inputs(wildcards):
    """The listening page's: its audio and the predictions its identification ranks come from."""
    fold, keys = STUDY.listening_options().fold, listening_keys()
    predictions = [str(LAYOUT.decoding(s, fold, f).predictions) for s, f in keys["predictions"]]
    return {**listening_audio(wildcards), "predictions": predictions}


def final_outputs():
    outputs = [
        str(LAYOUT.validation()),
        str(LAYOUT.summary("identification", ".tsv")),
        str(LAYOUT.summary("label_decoding", ".tsv")),
        str(LAYOUT.summary("encoding", ".tsv")),
        *figure_outputs().values(),
    ]
    if STUDY.reconstructed:
        outputs += [str(LAYOUT.summary("reconstruction", ".tsv")), str(LAYOUT.listening_page())]
    if STUDY.kshot:
        outputs += [str(LAYOUT.summary("kshot", ".tsv")), str(LAYOUT.figures().kshot)]
    if STUDY.listening_test:
        outputs += [str(LAYOUT.listening_test().page), str(LAYOUT.listening_test().key)]
    if STUDY.answer_files():
        outputs += [str(LAYOUT.listening_test().scores_html)]
    return outputs


def check_output_roots():
    """Refuse, before the DAG is planned, any rule output outside ``results`` and the data folders the config
    gives a rule to fill (the simulated study, the download, the model cache)."""
    for each in workflow.rules:
        for pattern in each.output:
            STUDY.check_output(each.name, pattern)
