"""The ``b2m`` command: one subcommand per stage; the Snakemake rules call these."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from b2m.models.backend import BACKENDS

log = logging.getLogger("b2m")


def _dataset(args):
    from b2m.data.bids import BidsDataset

    return BidsDataset(args.bids, train_task=args.train_task, test_task=args.test_task,
                       fmriprep=getattr(args, "fmriprep", None), space=getattr(args, "space", "T1w"),
                       repetition_time=args.tr)


def cmd_simulate(args) -> None:
    from b2m.data.simulate import SimulationConfig, simulate_study

    base = SimulationConfig.full() if args.full else SimulationConfig()
    overrides = {k: v for k, v in {"n_subjects": args.subjects, "n_training_runs": args.training_runs,
                                   "n_test_runs": args.test_runs, "shape": tuple(args.shape) if args.shape else None,
                                   "snr": args.snr, "seed": args.seed, "gzip_bold": args.gzip or None}.items()
                 if v is not None}
    paths = simulate_study(args.out, replace(base, **overrides), jobs=args.jobs)
    log.info("synthetic study written: %s", {k: str(v) for k, v in paths.items()})


def cmd_download(args) -> None:
    from b2m.data.download import download_dataset
    from b2m.io import write_json

    summary = download_dataset(args.out, args.dataset, args.subjects, args.url, args.metadata_only)
    log.info("downloaded: %s", summary)
    if args.marker:
        write_json(args.marker, {**summary, "dataset": args.dataset, "subjects": args.subjects, "url": args.url})


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
    from b2m.features import check_inputs, extract_features, required_weights
    from b2m.io import write_parquet

    clips = _dataset(args).stimulus_table()
    check_inputs(args.extractor or args.feature, clips, args.stimuli, args.captions)
    weights = required_weights(args.extractor or args.feature, extractor_options(args))
    extractor = make_args_extractor(args)
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
        generation = config.get("reconstruction", {}).get("generation", {})
        used = {g for spec in config.get("reconstruction", {}).get("features", {}).values()
                for g in (spec or {}).get("generators", [])}
        repos = [generation.get(g, {}).get("model", generation_models()[g]) for g in sorted(used)]
    elif args.feature or args.repo:
        wanted, repos = ([(args.extractor or args.feature, extractor_options(args))] if args.feature else []), args.repo
    else:
        raise SystemExit("b2m fetch-models: give --config (every model of a config), --feature or --repo")
    args.cache = args.cache or Path(config.get("models", {}).get("cache", "models"))
    use_cache(args.cache, offline=False)
    from b2m.features import required_weights
    from b2m.features.weights import Weights, fetch_all
    from b2m.io import write_json

    weights = [item for name, spec in wanted for item in required_weights(name, spec)] + [Weights(r) for r in repos]
    paths = fetch_all(weights, args.cache)
    log.info("%d models in %s", len(paths), args.cache)
    if args.marker:
        write_json(args.marker, {"cache": str(args.cache), "models": [str(w) for w in dict.fromkeys(weights)],
                                 "paths": [str(p) for p in paths]})


def generation_models() -> dict:
    from b2m.reconstruct.generation import MUSICGEN, MUSICLDM

    return {"musicldm": MUSICLDM, "caption": MUSICGEN}


def ridge_setup(args, responses_dir, n_outputs: int | None = None) -> dict:
    """Set himalaya's backend for this job and gather the ridge options shared by decode and encode.
    ``n_outputs`` (features of the design) picks the form for ``auto``: kernel when they outnumber samples."""
    from b2m.io import npy_shape
    from b2m.models.backend import use_backend

    samples, voxels = npy_shape(Path(responses_dir) / "train.npy")
    form = "kernel" if (n_outputs or voxels) > samples else "primal"
    solver_params = {key: getattr(args, key) for key in ("n_targets_batch", "n_alphas_batch")
                     if getattr(args, key) is not None}
    return {"backend": use_backend(args.backend, form), "form": form,
            "alphas": np.logspace(args.alpha_min_exp, args.alpha_max_exp, args.n_alphas),
            "n_folds": args.cv_folds, "n_outer_folds": args.outer_folds, "solver_params": solver_params,
            "Y_in_cpu": args.y_in_cpu}


def cmd_decode(args) -> None:
    from b2m.evaluate import clip_means
    from b2m.io import write_npy, write_parquet
    from b2m.models.decoding import decode_fold

    ridge = ridge_setup(args, args.responses)
    params = {**vars_for_provenance(args), "backend": ridge["backend"]}
    result = decode_fold(args.responses, args.features, args.fold, ridge["alphas"], ridge["n_folds"],
                         ridge["n_outer_folds"], args.roi_k, args.n_permutations, args.n_bootstrap, args.seed,
                         ridge["solver_params"], ridge["Y_in_cpu"])
    out = Path(args.out)
    scores = result["scores"].assign(subject=args.subject, fold=args.fold, feature=args.feature)
    write_parquet(out / "scores.parquet", scores, params)
    predictions = []
    rows = result["rows"][["clip_id", "genre", "window", "start_s", "end_s"]]
    clips, clip_true = clip_means(rows, result["true"])
    for model, values in result["predicted"].items():
        windows = rows.assign(model=model, level="window", predicted=list(values), true=list(result["true"]))
        _, clip_predicted = clip_means(rows, values)
        per_clip = pd.DataFrame({"clip_id": clips, "model": model, "level": "clip",
                                 "predicted": list(clip_predicted.astype(np.float32)),
                                 "true": list(clip_true.astype(np.float32))})
        predictions += [windows, per_clip.merge(rows.drop_duplicates("clip_id")[["clip_id", "genre"]], on="clip_id")]
    write_parquet(out / "predictions.parquet", pd.concat(predictions, ignore_index=True), params)
    decoder = result["decoder"]
    write_npy(out / "alphas.npy", decoder.best_alphas_, params)
    write_npy(out / "cv_scores.npy", decoder.cv_scores_, params)
    write_npy(out / "target_scale.npy", np.stack([decoder.target_mean_, decoder.target_sd_]).astype(np.float32),
              {**params, "rows": "training mean, sd of the targets (predictions are (y - mean) / sd)"})
    if result["rois"] is not None:
        write_parquet(out / "rois.parquet", result["rois"], params)
    for row in scores[scores.metric == "identification_accuracy"].itertuples():
        log.info("%s %s %s %s %s-level identification accuracy %.3f [%.3f, %.3f] (chance %.3f ± %.3f, n=%d)",
                 args.subject, args.fold, args.feature, row.model, row.level, row.value, row.ci_low, row.ci_high,
                 row.chance_mean, row.chance_sd, row.n_items)


def write_encoding(out: Path, result: dict, responses_dir, params: dict, summary: dict) -> None:
    """voxels.parquet (one row per response column), NIfTI maps of each voxel column, and a one-row summary."""
    import nibabel as nib

    from b2m.io import atomic_path, write_parquet
    from b2m.models.encoding import voxel_map

    voxels = result["voxels"]
    write_parquet(out / "voxels.parquet", voxels, params)
    positions_path, mask = Path(responses_dir).parent / "voxels.parquet", Path(responses_dir).parent / "mask.nii.gz"
    positions = pd.read_parquet(positions_path) if positions_path.exists() and mask.exists() else None
    if positions is None or len(positions) != len(voxels):
        log.info("no voxel positions for these responses (the authors' arrays): no maps written")
    else:
        for column in voxels.columns:
            with atomic_path(out / f"{column}.nii.gz") as tmp:
                nib.save(voxel_map(voxels[column].to_numpy(np.float32), positions, mask), tmp)
    significant = voxels["q"] < 0.05
    row = {**summary, "n_voxels": len(voxels), "n_test_rows": result["n_test"], "median_r": float(voxels.r.median()),
           "n_significant_q05": int(significant.sum()),
           "median_r_significant": float(voxels.r[significant].median()) if significant.any() else np.nan,
           "null": "permutation" if "p_permutation" in voxels else "gaussian"}
    if "noise_ceiling" in voxels:
        row["median_noise_ceiling"] = float(voxels.noise_ceiling.median())
    write_parquet(out / "summary.parquet", pd.DataFrame([row]), params)
    log.info("%s", row)


def cmd_encode(args) -> None:
    from b2m.io import write_npy
    from b2m.models.encoding import encode_fold

    n_features = len(pd.read_parquet(args.features, columns=["embedding"]).embedding.iloc[0]) * len(args.delays)
    ridge = ridge_setup(args, args.responses, n_features)
    params = {**vars_for_provenance(args), "backend": ridge["backend"]}
    result = encode_fold(args.responses, args.features, args.fold, ridge["alphas"], ridge["n_folds"],
                         ridge["n_outer_folds"], args.delays, args.n_permutations, args.seed,
                         ridge["solver_params"], ridge["Y_in_cpu"])
    out = Path(args.out)
    write_npy(out / "alphas.npy", result["encoder"].best_alphas_, params)
    write_encoding(out, result, args.responses, params,
                   {"subject": args.subject, "fold": args.fold, "feature": args.feature})


def cmd_encode_banded(args) -> None:
    from b2m.models.encoding import encode_banded

    spaces = dict(item.split("=", 1) for item in args.features)
    ridge = ridge_setup(args, args.responses, n_outputs=1)  # banded ridge solves the primal form
    params = {**vars_for_provenance(args), "backend": ridge["backend"]}
    result = encode_banded(args.responses, spaces, args.fold, ridge["n_folds"], ridge["n_outer_folds"], args.n_iter,
                           ridge["alphas"], args.n_permutations, args.seed, ridge["solver_params"], ridge["Y_in_cpu"])
    voxels = result["voxels"]
    significant = voxels[voxels.q < 0.05]
    shares = {f"mean_r2_{name}_significant": float(significant[f"r2_{name}"].mean()) if len(significant) else np.nan
              for name in result["spaces"]}
    write_encoding(Path(args.out), result, args.responses, params,
                   {"subject": args.subject, "fold": args.fold, "feature": "+".join(result["spaces"]), **shares})


def make_args_extractor(args):
    """The extractor named by ``--feature``/``--extractor`` and its options, reading weights from ``--cache``."""
    from b2m.features import make_extractor, required_weights

    name, options = args.extractor or args.feature, extractor_options(args)
    if required_weights(name, options):
        options["cache"] = args.cache
    return make_extractor(name, args.window, args.stride, **options)


def corpus_sources(args) -> list[dict]:
    sources = []
    for item in args.source:
        layout, _, path = item.partition(":")
        sources.append({"layout": layout, "path": path, "tracks_csv": args.tracks_csv if layout == "fma" else None})
    return sources


def cmd_index(args) -> None:
    from b2m.features.weights import use_cache

    use_cache(args.cache, offline=True)
    from b2m.reconstruct.corpus import corpus_tracks, index_corpus

    tracks = corpus_tracks(corpus_sources(args))
    log.info("corpus: %d tracks from %d sources", len(tracks), len(args.source))
    summary = index_corpus(tracks, make_args_extractor(args), args.out, args.seconds, args.offset,
                           args.chunk_tracks, vars_for_provenance(args))
    log.info("indexed: %s", summary)


def cmd_retrieve(args) -> None:
    from b2m.io import load_npy, write_parquet
    from b2m.reconstruct.corpus import read_index
    from b2m.reconstruct.listening import write_retrieval_audio
    from b2m.reconstruct.retrieval import retrieve

    if args.audio and not args.stimuli:
        raise SystemExit("b2m retrieve --audio: give --stimuli (the GTZAN-layout folder of the original clips)")
    corpus, tracks = read_index(args.index)
    predictions = pd.read_parquet(args.predictions)
    neighbours = retrieve(predictions, corpus, tracks, load_npy(args.target_scale), args.space, args.top_k)
    params = vars_for_provenance(args)
    write_parquet(args.out / "neighbours.parquet", neighbours, params)
    if args.audio:
        listing = write_retrieval_audio(neighbours, _dataset(args).stimulus_table(), args.stimuli, args.audio,
                                        args.audio_model, args.audio_top, args.seconds, args.offset)
        write_parquet(args.audio / "listening.parquet", listing, params)
    for model, rows in neighbours[neighbours["rank"] == 1].groupby("model", sort=False):
        log.info("%s: top-1 retrieved genre = stimulus genre for %d/%d clips", model,
                 int((rows.track_genre == rows.genre).sum()), len(rows))


def generated_reconstructions(folder, clip_order, extractor) -> dict:
    """(backend, model) → Reconstructions of a ``b2m generate`` folder, each file embedded with ``extractor``."""
    from b2m.reconstruct.corpus import embed_track
    from b2m.reconstruct.evaluation import Reconstructions

    listing = pd.read_parquet(Path(folder) / "generated.parquet")
    listing["vector"] = [embed_track(Path(folder) / file, extractor, np.inf) for file in listing.file]
    result = {}
    for (method, model), rows in listing.groupby(["method", "model"], sort=False):
        table = rows.pivot(index="clip_id", columns="sample", values="vector").loc[clip_order]
        result[(method, model)] = Reconstructions(np.stack([np.stack(table[c].to_numpy()) for c in table.columns]))
    return result


def cmd_generate(args) -> None:
    from b2m.features.weights import use_cache

    use_cache(args.cache, offline=True)
    from b2m.io import load_npy, write_parquet
    from b2m.reconstruct import generation
    from b2m.reconstruct.listening import write_flac
    from b2m.reconstruct.retrieval import clip_queries, from_standardised

    scale = load_npy(args.target_scale)
    queries = clip_queries(pd.read_parquet(args.predictions))
    options = {"seconds": args.seconds, "guidance_scale": args.guidance_scale, "device": args.device}
    options = {key: value for key, value in options.items() if value is not None}
    if args.model:
        options["model"] = args.model
    if args.backend == "musicldm":
        generator = generation.MusicLdmGenerator(args.cache, steps=args.steps, batch_size=args.batch_size, **options)
    else:
        if not (args.caption_features and args.captions):
            raise SystemExit("b2m generate --backend caption: give --caption-features (the clap-text feature table) "
                             "and --captions (the captions CSV)")
        captions = generation.caption_vectors(args.caption_features, args.captions)
        generator = generation.CaptionGenerator(args.cache, captions, **options)
    rows = []
    for model in args.models:
        clips = queries[model]
        embeddings = from_standardised(np.stack(clips.vector.to_numpy()), scale, "raw")
        audio = generator.generate(embeddings, clips.clip_id.tolist(), args.n_samples, args.seed)
        chosen = getattr(generator, "chosen_", None)
        for number, clip in enumerate(clips.itertuples()):
            for sample, waveform in enumerate(audio[number]):
                file = f"{clip.clip_id}/{model}-{sample}.flac"
                write_flac(args.out / file, waveform, generator.sample_rate)
                rows.append({"clip_id": clip.clip_id, "genre": clip.genre, "method": args.backend, "model": model,
                             "sample": sample, "seed": generation.sample_seed(args.seed, number, sample),
                             "file": file, "caption": chosen.caption.iloc[number] if chosen is not None else ""})
    write_parquet(args.out / "generated.parquet", pd.DataFrame(rows), vars_for_provenance(args))
    log.info("%d pieces generated by %s at %d Hz into %s", len(rows), args.backend, generator.sample_rate, args.out)


def cmd_evaluate_reconstruction(args) -> None:
    from b2m.io import load_npy, write_parquet
    from b2m.reconstruct.corpus import read_index
    from b2m.reconstruct.evaluation import evaluate_reconstructions, retrieved_reconstructions
    from b2m.reconstruct.labels import make_labelers
    from b2m.reconstruct.retrieval import clip_queries, from_standardised

    corpus, tracks = read_index(args.index)
    scale = load_npy(args.target_scale)
    queries = clip_queries(pd.read_parquet(args.predictions))
    originals = queries["oracle"].assign(vector=list(from_standardised(np.stack(queries["oracle"].vector.to_numpy()),
                                                                       scale, "raw")))
    order = originals.clip_id.to_numpy()
    reconstructions = retrieved_reconstructions(pd.read_parquet(args.retrieval), corpus, tracks, order)
    extractor = make_args_extractor(args) if args.generated or args.label_set else None
    for folder in args.generated or []:
        reconstructions.update(generated_reconstructions(folder, order, extractor))
    label_sets = {name: words.split(",") for name, words in (item.split("=", 1) for item in args.label_set)}
    labelers = make_labelers(corpus, tracks, order, args.seed, label_sets, extractor)
    table = evaluate_reconstructions(originals, reconstructions, corpus, tracks, scale, args.space, labelers,
                                     args.n_chance, args.seed)
    table = table.assign(subject=args.subject, fold=args.fold, feature=args.feature, space=args.space)
    write_parquet(args.out, table, vars_for_provenance(args))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def cmd_listening_page(args) -> None:
    from b2m.report.listening import section_html, write_listening_page

    generators = {}
    for item in args.generated:
        feature, _, generator = item.partition("=")
        generators.setdefault(feature, []).append(generator)
    sections = []
    for subject in args.subjects:
        for feature in args.features:
            folder = args.results / subject / args.fold / feature
            predictions = pd.read_parquet(folder / "decoding" / "predictions.parquet")
            generated = [folder / "generation" / g for g in generators.get(feature, [])]
            sections.append(section_html(f"{subject}, {args.fold} fold, {feature} ({args.model})",
                                         folder / "retrieval" / "audio", predictions, args.model, generated))
            log.info("listening page: %s %s %s added", subject, args.fold, feature)
    write_listening_page(args.out, sections)


def cmd_report_figures(args) -> None:
    from b2m.report import figures

    out = args.out
    scores = pd.read_parquet(args.scores)
    extractors = dict(item.split("=", 1) for item in args.extractors)
    comparison = figures.identification_comparison(scores, extractors, args.fold)
    figures.write_html_table(out / "table2.html", comparison, f"Identification accuracy, {args.fold} fold",
                             "mean ± sd over subjects, mean measured chance, and Denk et al. 2023 Table 2 for the "
                             "space each feature stands in for")
    figures.save_figure(figures.plot_identification(scores, comparison, args.fold), out / "identification.svg")
    for feature in args.maps:
        figures.save_figure(figures.plot_encoding_maps(args.results, args.subjects, args.fold, feature,
                                                       args.glass_brain), out / "maps" / f"{feature}.png")
        log.info("encoding maps of %s written", feature)
    if args.scatter:
        figures.save_figure(figures.plot_voxel_scatter(args.results, args.subjects, args.fold, *args.scatter),
                            out / "voxel_scatter.png")
    if args.roi_table:
        labels = {}
        if args.atlas_labels:
            names = pd.read_csv(args.atlas_labels, sep="\t")
            labels = dict(zip(names["index"].astype(int), names["name"].astype(str)))
        table = figures.roi_table(args.results, args.subjects, args.fold, args.roi_table, labels)
        figures.write_html_table(out / "roi.html", table, f"Encoding per ROI, {args.fold} fold",
                                 "voxels, voxels at q < 0.05, mean and max r per atlas ROI")
    if args.banded:
        table = figures.variance_partition_table(args.results, args.subjects, args.fold)
        figures.write_html_table(out / "variance_partitioning.html", table, f"Variance partitioning, {args.fold} fold",
                                 "banded ridge: each space's mean share of the joint R² over the voxels at q < 0.05, "
                                 "and the voxels where it is the largest share")
        figures.save_figure(figures.plot_variance_partition(table), out / "variance_partitioning.svg")
    log.info("report figures written to %s", out)


def cmd_summarize(args) -> None:
    from b2m.io import atomic_path, write_parquet

    table = pd.concat([pd.read_parquet(p) for p in args.scores], ignore_index=True)
    keys = [key for key in ("feature", "fold", "model", "level", "metric", "subject") if key in table.columns]
    table = table.sort_values(keys, kind="stable").reset_index(drop=True)
    first = ["subject", "fold", "feature", "method", "model", "level", "metric"]
    table = table[[c for c in first if c in table.columns] + [c for c in table.columns if c not in first]]
    write_parquet(args.out, table, vars_for_provenance(args))
    if args.tsv:
        with atomic_path(args.tsv) as tmp:
            table.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def vars_for_provenance(args) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}


def _add_dataset_args(p) -> None:
    p.add_argument("--bids", required=True, type=Path, help="ds003720-layout BIDS folder")
    p.add_argument("--train-task", default="Training", help="task name of the training runs")
    p.add_argument("--test-task", default="Test", help="task name of the test runs")
    p.add_argument("--tr", type=float, help="the study's TR (s); every run's sidecar must agree (ds003720: 1.5)")


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


def _add_model_args(p, features_nargs=None) -> None:
    p.add_argument("--responses", required=True, type=Path, help="window-responses output folder")
    if features_nargs:
        p.add_argument("--features", required=True, nargs=features_nargs, metavar="NAME=PARQUET",
                       help="feature tables, one per band")
    else:
        p.add_argument("--features", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--subject", required=True)
    p.add_argument("--fold", default="test", help="test, cv-<k> or genre-<g>")
    p.add_argument("--feature", default="", help="feature name, for the tables")
    p.add_argument("--outer-folds", type=int, default=4, help="k of the cv-<k> folds (groups of training runs)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="himalaya backend: auto (torch_cuda with a GPU, else cpu), cpu, numpy, torch, torch_cuda")
    p.add_argument("--alpha-min-exp", type=float, default=-1.0)
    p.add_argument("--alpha-max-exp", type=float, default=7.0)
    p.add_argument("--n-alphas", type=int, default=17)
    p.add_argument("--cv-folds", type=int, default=5, help="inner CV folds, grouped by run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-targets-batch", type=int, help="himalaya: targets solved at once (memory)")
    p.add_argument("--n-alphas-batch", type=int, help="himalaya: alphas solved at once (memory)")
    p.add_argument("--y-in-cpu", action="store_true", help="himalaya: keep targets in host memory on a GPU")


def _add_reconstruction_args(p) -> None:
    p.add_argument("--predictions", required=True, type=Path, help="predictions.parquet of b2m decode")
    p.add_argument("--target-scale", required=True, type=Path, help="target_scale.npy of b2m decode")
    p.add_argument("--index", required=True, type=Path, help="corpus index folder of b2m index")
    p.add_argument("--space", choices=["raw", "standardised"], default="standardised",
                   help="retrieval space: the extractor's own, or standardised by the decoder's training targets")


def _add_windowed_response_args(p) -> None:
    _add_dataset_args(p)
    _add_window_args(p)
    p.add_argument("--subject", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--lag", type=float, default=4.5, help="hemodynamic lag (s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="b2m", description=__doc__, allow_abbrev=False)
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
    p.add_argument("--gzip", action="store_true", help="write the BOLD runs as .nii.gz, as OpenNeuro serves ds003720")
    p.add_argument("--jobs", type=int, default=1, help="subjects written at once, each in its own process")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("download", help="fetch an OpenNeuro dataset's files for some subjects (resumable, checked)")
    p.add_argument("--out", required=True, type=Path, help="the BIDS folder to fill")
    p.add_argument("--dataset", default="ds003720", help="OpenNeuro accession")
    p.add_argument("--subjects", required=True, nargs="+")
    p.add_argument("--url", default="https://s3.amazonaws.com/openneuro.org", help="the bucket's address")
    p.add_argument("--metadata-only", action="store_true", help="no images: events and sidecars only")
    p.add_argument("--marker", type=Path, help="JSON written when done (Snakemake's output)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("clean-bold", help="mask, detrend and z-score a subject's BOLD runs (streamed)")
    _add_dataset_args(p)
    p.add_argument("--subject", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--fmriprep", type=Path, help="fMRIPrep derivatives folder: read its preprocessed BOLD")
    p.add_argument("--space", default="T1w", help="fMRIPrep output space, e.g. T1w or MNI152NLin2009cAsym_res-2")
    p.add_argument("--mask", default="compute",
                   help="mask NIfTI on the BOLD grid, or 'compute' (with --fmriprep: its run masks' intersection)")
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
    p.add_argument("--config", type=Path, help="b2m config YAML: fetch for every feature and generator it lists")
    p.add_argument("--repo", nargs="+", default=[], help="hub repositories to fetch whole (e.g. a generator's)")
    _add_extractor_args(p, fetching=True)
    p.add_argument("--marker", type=Path, help="JSON written when done (Snakemake's output)")
    p.set_defaults(func=cmd_fetch_models)

    p = sub.add_parser("decode", help="ridge decoding of an embedding from responses, scored by identification")
    _add_model_args(p)
    p.add_argument("--roi-k", type=int, default=6, help="ROIs averaged in the ROI ensemble (best by CV score)")
    p.add_argument("--n-permutations", type=int, default=200, help="permutations for chance identification")
    p.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap resamples of clips for the CIs")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("encode", help="ridge encoding of responses from one embedding, voxelwise r, p, FDR, maps")
    _add_model_args(p)
    p.add_argument("--delays", type=int, nargs="+", default=[0], help="FIR delays in windows (0 = none)")
    p.add_argument("--n-permutations", type=int, default=0,
                   help="clip-block permutations for voxel p-values (0: the Gaussian null only)")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("encode-banded", help="banded ridge over several embeddings, with variance partitioning")
    _add_model_args(p, features_nargs="+")
    p.add_argument("--n-iter", type=int, default=20, help="random-search draws of the band weights")
    p.add_argument("--n-permutations", type=int, default=0,
                   help="clip-block permutations for voxel p-values (0: the Gaussian null only)")
    p.set_defaults(func=cmd_encode_banded)

    p = sub.add_parser("index", help="embed a music corpus (first 15 s of each track) for retrieval; resumable")
    _add_window_args(p)
    _add_extractor_args(p, fetching=False)
    p.add_argument("--source", required=True, action="append", metavar="LAYOUT:PATH",
                   help="a corpus folder and its layout (gtzan, fma, folder); repeat for several")
    p.add_argument("--tracks-csv", type=Path, help="FMA's fma_metadata/tracks.csv (genres of the fma layout)")
    p.add_argument("--seconds", type=float, default=15.0, help="seconds of each track embedded")
    p.add_argument("--offset", type=float, default=0.0, help="start of the embedded part (s)")
    p.add_argument("--chunk-tracks", type=int, default=256, help="tracks per resumable chunk")
    p.add_argument("--out", required=True, type=Path, help="index folder")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("retrieve", help="top-k corpus tracks for each test clip's predicted embedding")
    _add_dataset_args(p)
    _add_reconstruction_args(p)
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--stimuli", type=Path, help="GTZAN-layout stimuli folder (for the original excerpts' audio)")
    p.add_argument("--audio", type=Path, help="folder for each clip's original and retrieved audio (FLAC)")
    p.add_argument("--audio-model", default="whole-mask", help="decoder whose retrievals are written as audio")
    p.add_argument("--audio-top", type=int, default=3, help="retrieved tracks written per clip")
    p.add_argument("--seconds", type=float, default=15.0, help="seconds of each retrieved track written")
    p.add_argument("--offset", type=float, default=0.0, help="start of the written part of each track (s)")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_retrieve)

    p = sub.add_parser("generate", help="music generated from each test clip's predicted embedding")
    p.add_argument("--backend", required=True, choices=["musicldm", "caption"])
    p.add_argument("--predictions", required=True, type=Path, help="predictions.parquet of b2m decode")
    p.add_argument("--target-scale", required=True, type=Path, help="target_scale.npy of b2m decode")
    p.add_argument("--models", nargs="+", default=["whole-mask", "oracle"],
                   help="decoders to generate from (oracle: the true embedding)")
    p.add_argument("--n-samples", type=int, default=2, help="pieces per clip and model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=Path("models"), help="model cache folder (hub layout)")
    p.add_argument("--model", help="hub id of the generator (default ucsd-reach/musicldm, facebook/musicgen-small)")
    p.add_argument("--seconds", type=float, help="length of each piece (s)")
    p.add_argument("--steps", type=int, default=200, help="musicldm: denoising steps")
    p.add_argument("--guidance-scale", type=float, help="classifier-free guidance scale")
    p.add_argument("--batch-size", type=int, default=4, help="musicldm: clips per pipeline call")
    p.add_argument("--device", help="torch device (auto, cpu, cuda)")
    p.add_argument("--caption-features", type=Path, help="caption: the clap-text feature table")
    p.add_argument("--captions", type=Path, help="caption: the captions CSV")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("evaluate-reconstruction",
                       help="identification and class agreement of reconstructions vs originals, oracle and chance")
    _add_reconstruction_args(p)
    p.add_argument("--retrieval", required=True, type=Path, help="neighbours.parquet of b2m retrieve")
    p.add_argument("--generated", type=Path, nargs="*", help="folders of b2m generate, embedded with the extractor")
    _add_window_args(p)
    _add_extractor_args(p, fetching=False)
    p.add_argument("--label-set", action="append", default=[], metavar="NAME=WORD,WORD,...",
                   help="CLAP zero-shot classes for class agreement (CLAP extractors), e.g. mood=happy,sad,calm")
    p.add_argument("--n-chance", type=int, default=100, help="draws of random corpus items for chance")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subject", required=True)
    p.add_argument("--fold", default="test")
    p.add_argument("--out", required=True, type=Path, help="evaluation table (.parquet)")
    p.set_defaults(func=cmd_evaluate_reconstruction)

    p = sub.add_parser("report-figures", help="the report's figures: identification vs the paper's Table 2, "
                       "encoding maps, voxel scatter, ROI table, variance partitioning")
    p.add_argument("--scores", required=True, type=Path, help="summary/identification.parquet")
    p.add_argument("--results", required=True, type=Path)
    p.add_argument("--subjects", required=True, nargs="+")
    p.add_argument("--fold", default="test")
    p.add_argument("--extractors", nargs="*", default=[], metavar="FEATURE=EXTRACTOR",
                   help="each feature's extractor (for the paper space it stands in for)")
    p.add_argument("--maps", nargs="*", default=[], metavar="FEATURE", help="features whose encoding maps to draw")
    p.add_argument("--glass-brain", action="store_true", help="the maps are in MNI space: draw glass brains")
    p.add_argument("--scatter", nargs=2, metavar=("FEATURE_A", "FEATURE_B"), help="voxel scatter of two spaces")
    p.add_argument("--roi-table", nargs="*", default=[], metavar="FEATURE", help="features of the ROI table")
    p.add_argument("--atlas-labels", type=Path, help="TSV with columns index, name (the atlas's ROI names)")
    p.add_argument("--banded", action="store_true", help="variance partitioning of the banded model")
    p.add_argument("--out", required=True, type=Path, help="folder of the figures and tables")
    p.set_defaults(func=cmd_report_figures)

    p = sub.add_parser("listening-page", help="one HTML page to hear each test clip beside its reconstructions")
    p.add_argument("--results", required=True, type=Path, help="the results folder of the pipeline")
    p.add_argument("--subjects", required=True, nargs="+")
    p.add_argument("--fold", default="test")
    p.add_argument("--features", required=True, nargs="+", help="reconstructed feature spaces")
    p.add_argument("--model", default="whole-mask", help="decoder whose reconstructions are shown")
    p.add_argument("--generated", nargs="*", default=[], metavar="FEATURE=GENERATOR",
                   help="generators whose samples are shown beside a feature's retrievals")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_listening_page)

    p = sub.add_parser("summarize", help="one table of every subject × fold × feature score")
    p.add_argument("scores", nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--tsv", type=Path)
    p.set_defaults(func=cmd_summarize)
    for command in (parser, *sub.choices.values()):
        command.allow_abbrev = False  # a misspelt option is an error, never another option's prefix
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
