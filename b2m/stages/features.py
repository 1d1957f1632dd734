"""Feature stages: embedding the stimulus clips, and fetching the model weights of feature spaces and generators
into the model cache."""

from __future__ import annotations

import logging
from pathlib import Path

from b2m.options import GENERATORS, ExtractorOptions, GeneratorOptions, ModelCacheOptions, from_config
from b2m.stages import provenance, stage
from b2m.stages.data import open_dataset

log = logging.getLogger("b2m")


def extractor_name(feature: str, options: ExtractorOptions) -> str:
    return options.extractor or feature


def make_extractor(feature: str, options: dict, **extra):
    """The extractor of a feature space with its options (and ``extra`` keywords, e.g. clap-text's
    ``captions``), reading weights from the model cache."""
    from b2m.features import make_extractor as make, required_weights

    spec, cache = options[ExtractorOptions], options[ModelCacheOptions].cache
    name, keywords = extractor_name(feature, spec), {**spec.model_options(), **extra}
    if required_weights(name, spec.model_options()):
        keywords["cache"] = Path(cache)
    return make(name, spec.window_s, spec.stride_s, **keywords)


def _features_arguments(parser) -> None:
    parser.add_argument("--feature", required=True, help="feature name in the config")
    parser.add_argument("--stimuli", type=Path, help="the folder the design's stimulus names are relative to (audio "
                        "spaces)")
    parser.add_argument("--captions", type=Path, help="captions CSV (clap-text)")
    parser.add_argument("--out", required=True, type=Path)


@stage("features", "embed every stimulus's windows", _features_arguments)
def features(args, options) -> None:
    from b2m.features.weights import use_cache

    cache = Path(options[ModelCacheOptions].cache)
    use_cache(cache, offline=True)
    from b2m.features import check_inputs, extract_features, required_weights
    from b2m.io import write_parquet

    spec = options[ExtractorOptions]
    name = extractor_name(args.feature, spec)
    clips = open_dataset(options).stimulus_table()
    check_inputs(name, clips, args.stimuli, args.captions)
    weights = required_weights(name, spec.model_options())
    extractor = make_extractor(args.feature, options, **({"captions": args.captions} if args.captions else {}))
    table = extract_features(clips, args.stimuli, extractor)
    write_parquet(args.out, table, {**provenance(args, options), "dim": extractor.dim,
                                    "sample_rate": getattr(extractor, "sample_rate", None),
                                    "weights": [str(w.local_path(cache)) for w in weights]})
    log.info("%s: %d rows × %d dims written to %s", args.feature, len(table), extractor.dim, args.out)


def fetch(weights, cache, marker) -> None:
    """Download ``weights`` into ``cache`` (online) and write the JSON ``marker`` naming them."""
    from b2m.features.weights import fetch_all, use_cache
    from b2m.io import write_json

    use_cache(cache, offline=False)
    paths = fetch_all(weights, cache)
    log.info("%d models in %s", len(paths), cache)
    if marker:
        write_json(marker, {"cache": str(cache), "models": [str(w) for w in dict.fromkeys(weights)],
                            "paths": [str(p) for p in paths]})


def _fetch_arguments(parser) -> None:
    parser.add_argument("--feature", help="the feature space whose weights are fetched")
    parser.add_argument("--config", type=Path, help="b2m config YAML: fetch for every feature and generator it lists")
    parser.add_argument("--marker", type=Path, help="JSON written when done (Snakemake's output)")


@stage("fetch-models", "download the model weights of a feature space (or of every model a config names) into "
       "the model cache", _fetch_arguments)
def fetch_models(args, options) -> None:
    from b2m.features import required_weights
    from b2m.features.weights import Weights

    if args.config:
        from b2m.study import load_study

        study = load_study(args.config)
        wanted = [(study.extractor(name), spec) for name, spec in study.features.items()]
        used = sorted({g for feature in study.reconstructed for g in study.generators_of(feature)})
        repos = [from_config(GeneratorOptions, study.config, generator=g).model or GENERATORS[g].model for g in used]
        given = "models.cache" in vars(args)  # --cache on the command line wins over the config's
        cache = options[ModelCacheOptions].cache if given else study.layout.models
    elif args.feature:
        wanted, repos = [(extractor_name(args.feature, options[ExtractorOptions]), options[ExtractorOptions])], []
        cache = options[ModelCacheOptions].cache
    else:
        raise SystemExit("b2m fetch-models: give --config (every model of a config) or --feature")
    weights = [item for name, spec in wanted for item in required_weights(name, spec.model_options())]
    fetch(weights + [Weights(repo) for repo in repos], Path(cache), args.marker)


def _generator_arguments(parser) -> None:
    parser.add_argument("--generator", required=True, choices=sorted(GENERATORS))
    parser.add_argument("--marker", type=Path, help="JSON written when done (Snakemake's output)")


@stage("fetch-generator", "download a generator's model into the model cache", _generator_arguments)
def fetch_generator(args, options) -> None:
    from b2m.features.weights import Weights

    repo = options[GeneratorOptions].model or GENERATORS[args.generator].model
    fetch([Weights(repo)], Path(options[ModelCacheOptions].cache), args.marker)
