# Paths and parameters shared by the rules.
import shlex

RESULTS = config["results"]
DATASET = config["dataset"]
BIDS = DATASET["bids_root"]
STIMULI = DATASET["stimuli"]
SIMULATE = config.get("simulate", {}).get("enabled", False)
SUBJECTS = config["subjects"]
FEATURES = config["features"]
FOLDS = config["folds"]
LOGS = f"{RESULTS}/logs"
# The b2m command line, run with b2m imported from this workflow's folder: the same code in a venv,
# a conda env of the rule (envs/core.yaml) or on a cluster node.
B2M = f'PYTHONPATH="{workflow.basedir}${{PYTHONPATH:+:$PYTHONPATH}}" python -m b2m'
DATASET_ARGS = f"--bids {BIDS} --train-task {DATASET['train_task']} --test-task {DATASET['test_task']}"

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


def cli_options(section, flags):
    """Command-line options for the config keys that are set (``flags`` maps key to option); keys left out
    take the b2m command's own defaults, so each default lives in one place."""
    words = []
    for key, flag in flags.items():
        value = section.get(key)
        if value is not None:
            values = value if isinstance(value, list) else [value]
            words.append(" ".join([flag, *(shlex.quote(str(v)) for v in values)]))
    return " ".join(words)


def window_label(feature):
    """Folder name of the responses averaged over this feature's window, e.g. window-1.5s."""
    spec = FEATURES[feature]
    return f"window-{spec['window_s']:g}s-stride-{spec['stride_s']:g}s"


def responses_dir(subject, feature):
    return f"{RESULTS}/{subject}/responses/{window_label(feature)}"
