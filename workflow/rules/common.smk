# Paths and parameters shared by the rules.
import os
import re
import shlex


def quoted(values):
    """Shell words for ``values``, each quoted: config values reach commands only this way or as ``{name:q}``."""
    return " ".join(shlex.quote(str(value)) for value in values)


def cli_options(section, flags):
    """Command-line options for the config keys that are set (``flags`` maps key to option); keys left out
    take the b2m command's own defaults, so each default lives in one place."""
    words = []
    for key, flag in flags.items():
        value = section.get(key)
        if value is not None:
            values = value if isinstance(value, list) else [value]
            words.append(f"{flag} {quoted(values)}")
    return " ".join(words)


RESULTS = config["results"]
DATASET = config["dataset"]
BIDS = DATASET["bids_root"]
STIMULI = DATASET["stimuli"]
SIMULATE = config.get("simulate", {}).get("enabled", False)
SUBJECTS = config["subjects"]
FEATURES = config["features"]
FOLDS = config["folds"]
MODELS = config.get("models", {}).get("cache", "models")
LOGS = f"{RESULTS}/logs"
# The b2m command line, run with b2m imported from this workflow's folder: the same code in a venv,
# a conda env of the rule (envs/core.yaml) or on a cluster node.
B2M = f'PYTHONPATH="{workflow.basedir}${{PYTHONPATH:+:$PYTHONPATH}}" python -m b2m'
DATASET_ARGS = cli_options(DATASET, {"bids_root": "--bids", "train_task": "--train-task", "test_task": "--test-task",
                                     "repetition_time": "--tr"})
DOWNLOAD = DATASET.get("download", {})
# With `dataset.download`, rules wait for the download's marker; the BIDS folder itself is no rule's output,
# so a stopped download keeps its partial files and resumes.
BIDS_INPUT = f"{BIDS}/.b2m-download.json" if DOWNLOAD.get("enabled") else BIDS

if SIMULATE and DOWNLOAD.get("enabled"):
    raise ValueError("config: simulate.enabled and dataset.download.enabled exclude each other; turn one off")

if SIMULATE:
    _n = config["simulate"].get("n_subjects", 3)
    _unknown = sorted(set(SUBJECTS) - {f"sub-{i:03d}" for i in range(1, _n + 1)})
    if _unknown:
        raise ValueError(
            f"config: subjects {_unknown} are not simulated (simulate.n_subjects = {_n}); "
            f"fix `subjects` or raise `simulate.n_subjects`"
        )


wildcard_constraints:
    subject="sub-[A-Za-z0-9]+",
    feature="|".join(FEATURES),
    fold="|".join(FOLDS),
    window=r"[0-9.]+",


def window_label(feature):
    """Folder name of the responses averaged over this feature's window, e.g. window-1.5s."""
    spec = FEATURES[feature]
    return f"window-{spec['window_s']:g}s-stride-{spec['stride_s']:g}s"


def responses_dir(subject, feature):
    return f"{RESULTS}/{subject}/responses/{window_label(feature)}"


EXTRACTORS = ["acoustic", "genre", "clap-audio", "clap-text", "w2v-bert", "mert"]
MODEL_EXTRACTORS = ["clap-audio", "clap-text", "w2v-bert", "mert"]
# Config keys of a feature passed to `b2m features` / `b2m fetch-models` when set.
EXTRACTOR_FLAGS = {"backend": "--backend", "model": "--model", "checkpoint": "--checkpoint", "amodel": "--amodel",
                   "layer": "--layer", "batch_size": "--batch-size", "device": "--device"}


def extractor_of(feature):
    return FEATURES[feature].get("extractor", feature)


_unknown_extractors = sorted(f for f in FEATURES if extractor_of(f) not in EXTRACTORS)
if _unknown_extractors:
    raise ValueError(
        f"config: features {_unknown_extractors} name no extractor; name them after one of {EXTRACTORS} "
        f"or give each an `extractor:`"
    )


_outer = config.get("outer_folds", 4)
_bad_folds = [f for f in FOLDS if f.startswith("cv-") and int(f[3:]) > _outer]
if _bad_folds:
    raise ValueError(f"config: folds {_bad_folds} exceed outer_folds = {_outer}; use cv-1 .. cv-{_outer}")
_banded = config.get("encoding", {}).get("banded", [])
_grids = {(FEATURES[f]["window_s"], FEATURES[f]["stride_s"]) for f in _banded if f in FEATURES}
if sorted(set(_banded) - set(FEATURES)) or len(_grids) > 1 or len(_banded) == 1:
    raise ValueError(
        f"config: encoding.banded {_banded} must name two or more features of `features` with one window and "
        f"stride (their responses are the same rows)"
    )


def features_matching(test):
    """A wildcard pattern of the features for which ``test(feature)`` holds (one that matches none if none do):
    rules that run on a GPU for some features only are split in two, so that a cluster profile can send the
    GPU half to a GPU partition."""
    names = [re.escape(f) for f in FEATURES if test(f)]
    return "|".join(names) if names else "(?!)"


def grows_with_attempt(base):
    """A resource (mem_mb, runtime) that is ``base`` times the job's attempt: a job killed for memory or time
    is retried with more (`retries:` in profiles/slurm)."""
    return lambda wildcards, attempt: base * attempt


def needs_weights(feature):
    return extractor_of(feature) in MODEL_EXTRACTORS


def uses_laion_clap(feature):
    return extractor_of(feature) in ("clap-audio", "clap-text") and FEATURES[feature].get("backend", "laion-clap") == "laion-clap"


def extractor_args(feature):
    """`--extractor` and the feature's own options, for the b2m command."""
    return f"--extractor {quoted([extractor_of(feature)])} --cache {quoted([MODELS])} " + cli_options(
        FEATURES[feature], EXTRACTOR_FLAGS)


_recon = config.get("reconstruction", {})
_not_audio = sorted(f for f in _recon.get("features", {})
                    if f not in FEATURES or extractor_of(f) in ("genre", "clap-text"))
if _not_audio:
    raise ValueError(
        f"config: reconstruction.features {_not_audio} must be audio feature spaces of `features` (acoustic, "
        f"clap-audio, w2v-bert, mert): a corpus is embedded from its audio"
    )
_recon_folds = sorted(set(_recon.get("folds", [])) - set(FOLDS))
if _recon_folds:
    raise ValueError(f"config: reconstruction.folds {_recon_folds} are not among `folds` {FOLDS}")


def check_output_roots():
    """Refuse, before the DAG is planned, any rule output outside ``results`` and the data folders the config
    gives a rule to fill (the simulated study, the download, the model cache)."""
    roots = [RESULTS, MODELS, *([config["simulate"]["out"]] if SIMULATE else []),
             *([BIDS] if DOWNLOAD.get("enabled") else [])]
    roots = [os.path.realpath(root) for root in roots]
    for rule in workflow.rules:
        for pattern in rule.output:
            where = os.path.realpath(str(pattern).split("{", 1)[0] or ".")
            if not any(os.path.commonpath([where, root]) == root for root in roots):
                raise ValueError(
                    f"config: rule {rule.name} would write {pattern}, outside `results` ({RESULTS}) and the data "
                    f"folders it may fill; fix: point the path into `results` (or simulate.out when simulating)"
                )
