"""The ``b2m`` command: one subcommand per stage; the Snakemake rules call these."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

log = logging.getLogger("b2m")


def _dataset(args):
    from b2m.data.bids import BidsDataset

    return BidsDataset(args.bids, train_task=args.train_task, test_task=args.test_task)


def cmd_simulate(args) -> None:
    from b2m.data.simulate import SimulationConfig, simulate_study

    base = SimulationConfig.full() if args.full else SimulationConfig()
    overrides = {k: v for k, v in {"n_subjects": args.subjects, "n_training_runs": args.training_runs,
                                   "n_test_runs": args.test_runs, "shape": tuple(args.shape) if args.shape else None,
                                   "snr": args.snr, "seed": args.seed}.items() if v is not None}
    paths = simulate_study(args.out, replace(base, **overrides))
    log.info("synthetic study written: %s", {k: str(v) for k, v in paths.items()})


def cmd_clean_bold(args) -> None:
    from b2m.data.responses import CleaningOptions, clean_subject

    options = CleaningOptions(drift=args.drift, drift_window_s=args.drift_window,
                              polynomial_order=args.polynomial_order)
    summary = clean_subject(_dataset(args), args.subject, args.out, mask=args.mask, atlas=args.atlas,
                            options=options, params=vars_for_provenance(args))
    log.info("cleaned: %s", summary)


def cmd_window_responses(args) -> None:
    from b2m.data.responses import window_responses

    summary = window_responses(_dataset(args), args.subject, args.clean, args.out, args.window, args.stride,
                               args.lag, params=vars_for_provenance(args))
    log.info("windowed: %s", summary)


def cmd_authors_arrays(args) -> None:
    from b2m.data.authors import authors_responses

    summary = authors_responses(_dataset(args), args.subject, args.training, args.test, args.out,
                                args.window, args.stride, args.lag, params=vars_for_provenance(args))
    log.info("authors' arrays windowed: %s", summary)


EXTRACTOR_OPTIONS = ("backend", "model", "checkpoint", "amodel", "layer", "batch_size", "device", "captions")


def extractor_options(args) -> dict:
    """The extractor's keyword options that were given on the command line (the rest keep their defaults)."""
    return {key: getattr(args, key) for key in EXTRACTOR_OPTIONS if getattr(args, key, None) is not None}


def cmd_features(args) -> None:
    from b2m.features.weights import use_cache

    use_cache(args.cache, offline=True)
    from b2m.features import extract_features, make_extractor, required_weights
    from b2m.io import write_parquet

    clips = _dataset(args).stimulus_table()
    name = args.extractor or args.feature
    options = extractor_options(args)
    weights = required_weights(name, options)
    if weights:
        options["cache"] = args.cache
    extractor = make_extractor(name, args.window, args.stride, **options)
    table = extract_features(clips, args.stimuli, extractor)
    write_parquet(args.out, table, {**vars_for_provenance(args), "dim": extractor.dim,
                                    "sample_rate": getattr(extractor, "sample_rate", None),
                                    "weights": [str(w.local_path(args.cache)) for w in weights]})
    log.info("%s: %d rows × %d dims written to %s", args.feature, len(table), extractor.dim, args.out)


def cmd_fetch_models(args) -> None:
    import yaml

    from b2m.features.weights import use_cache

    config = yaml.safe_load(args.config.read_text()) if args.config else {}
    if args.config:
        wanted = [(spec.get("extractor", name), spec) for name, spec in config["features"].items()]
    elif args.feature:
        wanted = [(args.extractor or args.feature, extractor_options(args))]
    else:
        raise SystemExit("b2m fetch-models: give --config (every feature of a config) or --feature")
    args.cache = args.cache or Path(config.get("models", {}).get("cache", "models"))
    use_cache(args.cache, offline=False)
    from b2m.features import required_weights
    from b2m.features.weights import fetch_all
    from b2m.io import write_json

    weights = [item for name, spec in wanted for item in required_weights(name, spec)]
    paths = fetch_all(weights, args.cache)
    log.info("%d models in %s", len(paths), args.cache)
    if args.marker:
        write_json(args.marker, {"cache": str(args.cache), "models": [str(w) for w in dict.fromkeys(weights)],
                                 "paths": [str(p) for p in paths]})


def cmd_decode(args) -> None:
    from b2m.io import write_npy, write_parquet
    from b2m.models.backend import use_backend
    from b2m.models.decoding import decode_test_fold

    if args.fold != "test":
        raise SystemExit(f"fold {args.fold!r} is not implemented yet; use 'test'")
    params = {**vars_for_provenance(args), "backend": use_backend(args.backend)}
    alphas = np.logspace(args.alpha_min_exp, args.alpha_max_exp, args.n_alphas)
    result = decode_test_fold(args.responses, args.features, alphas, args.cv_folds, args.n_permutations, args.seed)
    out = Path(args.out)
    scores = result["scores"].assign(subject=args.subject, fold=args.fold, feature=args.feature)
    write_parquet(out / "scores.parquet", scores, params)
    predictions = result["rows"][["clip_id", "genre", "window", "start_s", "end_s"]].copy()
    predictions["predicted"] = list(result["predicted"])
    predictions["true"] = list(result["true"])
    write_parquet(out / "predictions.parquet", predictions, params)
    decoder = result["decoder"]
    write_npy(out / "alphas.npy", decoder.best_alphas_, params)
    write_npy(out / "cv_scores.npy", decoder.cv_scores_, params)
    for row in scores.itertuples():
        log.info("%s %s %s %s-level identification accuracy %.3f (chance %.3f ± %.3f, n=%d)", args.subject,
                 args.fold, args.feature, row.level, row.value, row.chance_mean, row.chance_sd, row.n_items)


def cmd_summarize(args) -> None:
    import pandas as pd

    from b2m.io import write_parquet

    table = pd.concat([pd.read_parquet(p) for p in args.scores], ignore_index=True)
    columns = ["subject", "fold", "feature", "level", "metric", "value", "chance_mean", "chance_sd",
               "p_permutation", "n_items"]
    table = table[columns].sort_values(["feature", "fold", "level", "subject"]).reset_index(drop=True)
    write_parquet(args.out, table, vars_for_provenance(args))
    if args.tsv:
        from b2m.io import atomic_path

        with atomic_path(args.tsv) as tmp:
            table.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def vars_for_provenance(args) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}


def _add_dataset_args(p) -> None:
    p.add_argument("--bids", required=True, type=Path, help="ds003720-layout BIDS folder")
    p.add_argument("--train-task", default="Training", help="task name of the training runs")
    p.add_argument("--test-task", default="Test", help="task name of the test runs")


def _add_window_args(p) -> None:
    p.add_argument("--window", type=float, default=1.5, help="embedding window (s)")
    p.add_argument("--stride", type=float, default=1.5, help="window stride (s)")


def _add_extractor_args(p, fetching: bool) -> None:
    p.add_argument("--feature", required=not fetching, help="feature name in the config")
    p.add_argument("--extractor", help="extractor of the feature (default: the feature name)")
    p.add_argument("--cache", type=Path, default=None if fetching else Path("models"),
                   help="model cache folder (hub layout; fetch-models: default the config's models.cache)")
    p.add_argument("--backend", choices=["laion-clap", "transformers"], help="CLAP backend")
    p.add_argument("--model", help="hub model id (transformers CLAP, w2v-bert, mert)")
    p.add_argument("--checkpoint", help="laion-clap checkpoint: a .pt file or org/repo/file.pt on the hub")
    p.add_argument("--amodel", help="laion-clap audio model (HTSAT-base for the music checkpoints)")
    p.add_argument("--layer", type=int, help="hidden layer of w2v-bert / mert")
    p.add_argument("--batch-size", type=int, help="windows (or captions) per model call")
    p.add_argument("--device", help="torch device (cpu, cuda)")
    p.add_argument("--captions", type=Path, help="captions CSV (clap-text)")


def _add_windowed_response_args(p) -> None:
    _add_dataset_args(p)
    _add_window_args(p)
    p.add_argument("--subject", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--lag", type=float, default=4.5, help="hemodynamic lag (s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="b2m", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="write a synthetic study in ds003720's layout with a planted truth")
    p.add_argument("out", type=Path)
    p.add_argument("--full", action="store_true", help="real ds003720 size (5 × 18 runs of 96×96×68×410)")
    p.add_argument("--subjects", type=int)
    p.add_argument("--training-runs", type=int)
    p.add_argument("--test-runs", type=int)
    p.add_argument("--shape", type=int, nargs=3, metavar=("X", "Y", "Z"))
    p.add_argument("--snr", type=float, help="planted signal / noise variance ratio")
    p.add_argument("--seed", type=int)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("clean-bold", help="mask, detrend and z-score a subject's BOLD runs (streamed)")
    _add_dataset_args(p)
    p.add_argument("--subject", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--mask", default="compute", help="mask NIfTI on the BOLD grid, or 'compute'")
    p.add_argument("--atlas", help="ROI label NIfTI on the BOLD grid")
    p.add_argument("--drift", choices=["median", "polynomial", "none"], default="median")
    p.add_argument("--drift-window", type=float, default=240.0, help="running-median window (s)")
    p.add_argument("--polynomial-order", type=int, default=3)
    p.set_defaults(func=cmd_clean_bold)

    p = sub.add_parser("window-responses", help="average cleaned scans over lagged embedding windows")
    _add_windowed_response_args(p)
    p.add_argument("--clean", required=True, type=Path, help="output folder of clean-bold")
    p.set_defaults(func=cmd_window_responses)

    p = sub.add_parser("authors-arrays", help="window the authors' preprocessed arrays (Zenodo 8275363)")
    _add_windowed_response_args(p)
    p.add_argument("--training", required=True, type=Path, help="sub-XXX_Resp_Training.npy (voxels × 4800)")
    p.add_argument("--test", required=True, type=Path, help="sub-XXX_Resp_Test_Mean.npy (voxels × 600)")
    p.set_defaults(func=cmd_authors_arrays)

    p = sub.add_parser("features", help="embed every stimulus clip's windows")
    _add_dataset_args(p)
    _add_window_args(p)
    p.add_argument("--stimuli", required=True, type=Path, help="GTZAN-layout folder")
    _add_extractor_args(p, fetching=False)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("fetch-models", help="download the model weights a config needs into the model cache")
    p.add_argument("--config", type=Path, help="b2m config YAML: fetch for every feature it lists")
    _add_extractor_args(p, fetching=True)
    p.add_argument("--marker", type=Path, help="JSON written when done (Snakemake's output)")
    p.set_defaults(func=cmd_fetch_models)

    p = sub.add_parser("decode", help="ridge decoding of an embedding from responses, scored by identification")
    p.add_argument("--responses", required=True, type=Path, help="window-responses output folder")
    p.add_argument("--features", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--subject", required=True)
    p.add_argument("--fold", default="test")
    p.add_argument("--feature", required=True)
    p.add_argument("--backend", default="auto")
    p.add_argument("--alpha-min-exp", type=float, default=-1.0)
    p.add_argument("--alpha-max-exp", type=float, default=7.0)
    p.add_argument("--n-alphas", type=int, default=17)
    p.add_argument("--cv-folds", type=int, default=5, help="inner CV folds, grouped by run")
    p.add_argument("--n-permutations", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("summarize", help="one table of every subject × fold × feature score")
    p.add_argument("scores", nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--tsv", type=Path)
    p.set_defaults(func=cmd_summarize)
    return parser


def main(argv=None) -> int:
    from b2m.errors import InputError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args.func(args)
    except InputError as err:
        log.error("bad input: %s", err)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
