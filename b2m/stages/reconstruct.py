"""Reconstruction stages: the corpus index, the corpus tracks that duplicate a test clip's audio, retrieval of
each test clip's nearest tracks (with their audio; its own clip and duplicates left out), generation from the
predicted embeddings, and the evaluation of both against the originals."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from b2m.errors import InputError
from b2m.layout import (AudioFiles, BrainScoreFiles, CorpusChunkFiles, CorpusFiles, GenerationFiles,
                        RetrievalFiles)
from b2m.options import (GENERATORS, BrainScoreOptions, CorpusCacheOptions, CorpusOptions, DesignOptions,
                         EncodingOptions, EvaluationOptions, ExcerptOptions, ExtractorOptions, GenerationOptions,
                         GeneratorOptions, ModelCacheOptions, RetrievalOptions, RidgeOptions, SpaceOptions)
from b2m.stages import provenance, stage
from b2m.stages.data import open_dataset
from b2m.stages.features import extractor_name, make_extractor

log = logging.getLogger("b2m")


def _corpus_sources(options) -> list[dict]:
    corpus = options[CorpusOptions]
    if not corpus.sources:
        raise SystemExit("b2m: give --sources (or an options document naming the corpus folders)")
    return [{"tracks_csv": None, **source} for source in corpus.sources]


def _list_arguments(parser) -> None:
    parser.add_argument("--chunk", required=True, type=int, help="the chunk to list (0 .. chunks - 1)")
    parser.add_argument("--out", required=True, type=Path, help="the chunk's listing (.parquet)")


@stage("list-chunk", "list one chunk of a music corpus: its tracks and the sha256 of each one's bytes",
       _list_arguments)
def list_chunk(args, options) -> None:
    from b2m.io import write_parquet
    from b2m.reconstruct.corpus import chunk_listing, corpus_track_files

    corpus = options[CorpusOptions]
    listing = chunk_listing(corpus_track_files(_corpus_sources(options)), args.chunk, corpus.chunks)
    write_parquet(args.out, listing, provenance(args, options))
    log.info("chunk %d of %d: %d tracks listed in %s", args.chunk, corpus.chunks, len(listing), args.out)


def _chunk_embedder(args, options):
    """A function ``(listing, out)`` that embeds a chunk's listing into the chunk folder ``out``, with the feature's
    extractor loaded once (from the model cache, offline) and its vector cache."""
    from b2m.features import required_weights
    from b2m.features.weights import use_cache
    from b2m.reconstruct.corpus import VectorCache, extractor_fingerprint, index_chunk

    spec, cache = options[ExtractorOptions], options[ModelCacheOptions].cache
    use_cache(Path(cache), offline=True)
    excerpt, extractor = options[ExcerptOptions], make_extractor(args.feature, options)
    weights = [os.path.relpath(w.local_path(cache), cache)
               for w in required_weights(extractor_name(args.feature, spec), spec.model_options())]
    fingerprint = extractor_fingerprint(extractor, excerpt.seconds, excerpt.offset_s, spec.model_options(),
                                        tuple(weights))
    vectors, params = VectorCache(options[CorpusCacheOptions].vector_cache, fingerprint), provenance(args, options)
    return lambda listing, out: index_chunk(listing, extractor, CorpusChunkFiles(out), vectors, excerpt.seconds,
                                            excerpt.offset_s, params)


def _chunk_arguments(parser) -> None:
    parser.add_argument("--feature", required=True, help="the feature space whose extractor embeds the corpus")
    parser.add_argument("--tracks", required=True, type=Path, help="the chunk's listing of b2m list-chunk")
    parser.add_argument("--out", required=True, type=Path, help="the chunk's folder of the index")


@stage("index-chunk", "embed one chunk of a music corpus (the opening `seconds` of each track), from the vector "
       "cache where the same audio was embedded before", _chunk_arguments)
def index_chunk(args, options) -> None:
    _chunk_embedder(args, options)(pd.read_parquet(args.tracks), args.out)


def _index_arguments(parser) -> None:
    parser.add_argument("--feature", required=True, help="the feature space whose extractor embeds the corpus")
    parser.add_argument("--embed", action="store_true", help="list and embed every chunk here first (by hand; "
                        "vectors come from the vector cache where they can), instead of gathering the chunks that "
                        "the workflow's chunk jobs made")
    parser.add_argument("--out", required=True, type=Path, help="index folder (its chunks: <out>/chunks/)")


@stage("index", "gather a corpus index from its chunks (with --embed, make them first)", _index_arguments)
def index(args, options) -> None:
    from b2m.reconstruct.corpus import chunk_listing, chunk_of, corpus_tracks, gather_index

    tracks, n_chunks = corpus_tracks(_corpus_sources(options)), options[CorpusOptions].chunks
    log.info("corpus: %d tracks from %d sources", len(tracks), len(options[CorpusOptions].sources))
    chunks = [CorpusFiles(args.out).chunk(n) for n in range(n_chunks)]
    if args.embed:
        embed, where = _chunk_embedder(args, options), chunk_of(tracks.track_id, n_chunks)
        for n, chunk in enumerate(chunks):
            embed(chunk_listing(tracks[where == n], n, n_chunks), chunk.path)
    missing = [chunk.path for chunk in chunks if not (chunk.vectors.exists() and chunk.tracks.exists())]
    if missing:
        raise InputError(missing[0], f"{len(missing)} of the index's {n_chunks} chunks are not made",
                         "run the workflow (its index_corpus_chunk jobs make them), or b2m index --embed")
    log.info("indexed: %s", gather_index(tracks, chunks, args.out, provenance(args, options)))


def _fingerprint_arguments(parser) -> None:
    parser.add_argument("--tracks", required=True, type=Path, help="the chunk's listing of b2m list-chunk")
    parser.add_argument("--out", required=True, type=Path, help="the chunk's fingerprints (.parquet)")


@stage("fingerprint-chunk", "acoustic fingerprints of one chunk of a music corpus, for find-duplicates",
       _fingerprint_arguments)
def fingerprint_chunk(args, options) -> None:
    from b2m.reconstruct.duplicates import fingerprint_tracks

    log.info("fingerprints: %s", fingerprint_tracks(pd.read_parquet(args.tracks), args.out,
                                                    provenance(args, options)))


def _duplicates_arguments(parser) -> None:
    parser.add_argument("--stimuli", required=True, type=Path, help="the stimulus folder (the design's stimulus "
                        "files are relative to it)")
    parser.add_argument("--fingerprints", required=True, type=Path, nargs="+",
                        help="the corpus chunks' fingerprints of b2m fingerprint-chunk")
    parser.add_argument("--out", required=True, type=Path, help="the table of duplicates (.tsv)")


@stage("find-duplicates", "corpus tracks that hold a stimulus clip's presented excerpt, by acoustic fingerprint",
       _duplicates_arguments)
def find_duplicates(args, options) -> None:
    """Every clip of the stimulus table is a query: a test clip in the test fold, a held-out training clip in the
    cv and label folds."""
    from b2m.features.audio import stimulus_path
    from b2m.reconstruct.duplicates import query_fingerprints, write_duplicates
    from b2m.reconstruct.duplicates import find_duplicates as matches

    clips = open_dataset(options).stimulus_table()
    clips = clips.assign(path=[str(stimulus_path(args.stimuli, path)) for path in clips.path])
    found = matches(query_fingerprints(clips), args.fingerprints)
    write_duplicates(args.out, found)
    log.info("%d duplicates of %d stimulus clips in the corpus's %d fingerprint chunks (%d of them the clip's own "
             "id); listed in %s", len(found), len(clips), len(args.fingerprints), int(found.same_id.sum()), args.out)


def _decoded_arguments(parser) -> None:
    parser.add_argument("--predictions", required=True, type=Path, help="predictions.parquet of b2m decode")
    parser.add_argument("--target-scale", required=True, type=Path, help="target_scale.npy of b2m decode")


def _duplicates_argument(parser) -> None:
    parser.add_argument("--duplicates", type=Path, help="duplicates.tsv of b2m find-duplicates: corpus tracks "
                        "left out for their clip like the clip itself")


def read_duplicates_of(args, corpus_ids, clip_ids):
    """The ``--duplicates`` table (None without one), each query's exclusions logged."""
    from b2m.reconstruct.duplicates import log_exclusions, read_duplicates

    duplicates = read_duplicates(args.duplicates) if args.duplicates else None
    log_exclusions(clip_ids, duplicates, corpus_ids)
    return duplicates


def _retrieve_arguments(parser) -> None:
    _decoded_arguments(parser)
    parser.add_argument("--index", required=True, type=Path, help="corpus index folder of b2m index")
    _duplicates_argument(parser)
    parser.add_argument("--stimuli", type=Path, help="the stimulus folder: write the originals' and the retrieved "
                        "tracks' audio beside the table")
    parser.add_argument("--out", required=True, type=Path)


@stage("retrieve", "top-k corpus tracks for each test clip's predicted embedding", _retrieve_arguments)
def retrieve(args, options) -> None:
    from b2m.io import load_npy, write_parquet
    from b2m.models.decoders import RECONSTRUCTED, check_decoders
    from b2m.reconstruct.corpus import read_index
    from b2m.reconstruct.retrieval import clip_queries
    from b2m.reconstruct.retrieval import retrieve as nearest

    retrieval, out = options[RetrievalOptions], RetrievalFiles(args.out)
    check_decoders([retrieval.audio_model], "reconstruction.audio.model (--audio-model)", RECONSTRUCTED)
    corpus, tracks = read_index(args.index)
    predictions = pd.read_parquet(args.predictions)
    duplicates = read_duplicates_of(args, tracks.track_id, clip_queries(predictions)["oracle"].clip_id)
    neighbours = nearest(predictions, corpus, tracks, load_npy(args.target_scale), options[SpaceOptions].space,
                         retrieval.top_k, duplicates)
    params = provenance(args, options)
    if args.stimuli:  # the audio first and the table last: a clip that cannot be read leaves neither
        write_neighbour_audio(neighbours, args.stimuli, out.audio, options, params)
    write_parquet(out.neighbours, neighbours, params)
    label = options[DesignOptions].label
    for model, rows in neighbours[neighbours["rank"] == 1].groupby("model", sort=False) if label else ():
        log.info("%s: top-1 retrieved track's corpus class = stimulus %s for %d/%d clips", model, label,
                 int((rows.track_genre == rows.label).sum()), len(rows))


def write_neighbour_audio(neighbours: pd.DataFrame, stimuli, audio: AudioFiles, options: dict, params: dict) -> None:
    """The originals and the audio model's top retrieved tracks of a retrieval table as audio, with their listing
    (``write_retrieval_audio``); nothing is left of the folder where a clip cannot be read."""
    from b2m.io import write_parquet
    from b2m.reconstruct.listening import write_retrieval_audio

    retrieval, excerpt = options[RetrievalOptions], options[ExcerptOptions]
    try:
        listing = write_retrieval_audio(neighbours, open_dataset(options).stimulus_table(), stimuli, audio.path,
                                        retrieval.audio_model, retrieval.audio_top, excerpt.seconds, excerpt.offset_s)
        write_parquet(audio.listing, listing, params)
    except BaseException:
        shutil.rmtree(audio.path, ignore_errors=True)
        raise


def _generate_arguments(parser) -> None:
    parser.add_argument("--backend", required=True, choices=sorted(GENERATORS))
    _decoded_arguments(parser)
    parser.add_argument("--caption-features", type=Path, help="caption: the clap-text feature table")
    parser.add_argument("--captions", type=Path, help="caption: the captions CSV")
    parser.add_argument("--out", required=True, type=Path)


def make_generator(args, options: dict):
    """The generator of ``--backend`` (``GENERATORS``) with the ``GeneratorOptions`` its constructor takes (None:
    the generator's own default); one that renders captions with the caption vectors of ``--caption-features``
    and ``--captions``."""
    from inspect import signature

    from b2m.reconstruct import generation

    info, spec, cache = GENERATORS[args.backend], options[GeneratorOptions], Path(options[ModelCacheOptions].cache)
    cls = getattr(generation, info.cls)
    keywords = {key: getattr(spec, key) for key in signature(cls).parameters
                if hasattr(spec, key) and getattr(spec, key) is not None}
    if not info.reads_captions:
        return cls(cache, **keywords)
    if not (args.caption_features and args.captions):
        raise SystemExit(f"b2m generate --backend {args.backend}: give --caption-features (the clap-text feature "
                         "table) and --captions (the captions CSV)")
    return cls(cache, generation.caption_vectors(args.caption_features, args.captions), **keywords)


@stage("generate", "music generated from each test clip's predicted embedding", _generate_arguments)
def generate(args, options) -> None:
    from b2m.features.weights import use_cache

    use_cache(Path(options[ModelCacheOptions].cache), offline=True)
    from b2m.io import load_npy, write_parquet
    from b2m.models.decoders import RECONSTRUCTED, check_decoders
    from b2m.reconstruct import generation
    from b2m.reconstruct.listening import write_flac
    from b2m.reconstruct.retrieval import clip_queries, from_standardised

    spec, out = options[GenerationOptions], GenerationFiles(args.out)
    check_decoders(spec.models, "reconstruction.generation.models (--models)", RECONSTRUCTED)
    scale = load_npy(args.target_scale)
    queries = clip_queries(pd.read_parquet(args.predictions))
    generator = make_generator(args, options)
    rows = []
    for model in spec.models:
        clips = queries[model]
        embeddings = from_standardised(np.stack(clips.vector.to_numpy()), scale, "raw")
        audio = generator.generate(embeddings, clips.clip_id.tolist(), spec.n_samples, spec.seed)
        chosen = getattr(generator, "chosen_", None)
        for number, clip in enumerate(clips.itertuples()):
            for sample, waveform in enumerate(audio[number]):
                name = f"{model}-{sample}.flac"
                write_flac(out.clip_file(clip.clip_id, name), waveform, generator.sample_rate)
                rows.append({"clip_id": clip.clip_id, "label": clip.label, "method": args.backend, "model": model,
                             "sample": sample, "seed": generation.sample_seed(spec.seed, number, sample),
                             "file": out.relative(clip.clip_id, name),
                             "caption": chosen.caption.iloc[number] if chosen is not None else ""})
    write_parquet(out.listing, pd.DataFrame(rows), provenance(args, options))
    log.info("%d pieces generated by %s at %d Hz into %s", len(rows), args.backend, generator.sample_rate, args.out)


def generated_reconstructions(folder, clip_order, extractor) -> dict:
    """(backend, model) → Reconstructions of a ``b2m generate`` folder, each file embedded with ``extractor``."""
    from b2m.reconstruct.corpus import embed_track
    from b2m.reconstruct.evaluation import Reconstructions

    files = GenerationFiles(folder)
    listing = pd.read_parquet(files.listing)
    listing["vector"] = [embed_track(files.path / file, extractor, np.inf) for file in listing.file]
    result = {}
    for (method, model), rows in listing.groupby(["method", "model"], sort=False):
        table = rows.pivot(index="clip_id", columns="sample", values="vector").loc[clip_order]
        result[(method, model)] = Reconstructions(np.stack([np.stack(table[c].to_numpy()) for c in table.columns]))
    return result


def _brain_score_arguments(parser) -> None:
    parser.add_argument("--responses", required=True, type=Path, help="window-responses output folder of the "
                        "feature's window grid")
    parser.add_argument("--features", required=True, type=Path, help="the feature table the encoding model is fit on")
    parser.add_argument("--feature", required=True, help="the reconstructed feature space (its extractor embeds the "
                        "candidates)")
    parser.add_argument("--fold", default="test")
    parser.add_argument("--retrieval", type=Path, help="neighbours.parquet of b2m retrieve: its top `rerank` tracks "
                        "re-ranked")
    parser.add_argument("--stimuli", type=Path, help="the stimulus folder: write the originals' and the re-ranked "
                        "tracks' audio")
    parser.add_argument("--generated", type=Path, nargs="*", help="folders of b2m generate: each clip's sample of "
                        "best score kept (reconstruction.generation.select: brain)")
    parser.add_argument("--out", required=True, type=Path)


def candidate_scorer(args, options: dict):
    """``score(clip_id, files, offset)``: the brain scores of candidate audio files for a test clip, each cut into
    the clip's windows from ``offset`` (``track_windows``, the corpus's ``seconds``) and embedded with the feature's
    extractor, by a ``BrainScorer`` fit on the fold's training rows (the encoder of ``b2m encode``)."""
    import functools

    from b2m.data.windowed import load_encoding_fold
    from b2m.evaluate import clip_means
    from b2m.models.backend import use_backend
    from b2m.models.brain_score import BrainScorer, fit_brain_scorer
    from b2m.models.encoding import RidgeEncoder
    from b2m.reconstruct.corpus import track_windows

    ridge, spec, excerpt = options[RidgeOptions], options[BrainScoreOptions], options[ExcerptOptions]
    use_backend(ridge.backend)
    fold = load_encoding_fold(args.responses, {args.feature: args.features}, args.fold)
    scorer = fit_brain_scorer(fold, BrainScorer(RidgeEncoder.from_options(ridge, options[EncodingOptions]),
                                                spec.voxels, spec.min_r))
    if len(scorer.voxels_) < 2:  # the score is a correlation over voxels
        raise InputError(args.responses, f"{len(scorer.voxels_)} voxel(s) with an inner-CV encoding r from "
                         f"{args.feature} above {spec.min_r:g} (best {scorer.inner_r_.max():.3f}): the brain score "
                         "correlates over voxels and needs two",
                         "lower reconstruction.brain_score.min_r; reconstruction.brain_score.voxels: 0 (no cap) or 2 "
                         "or more")
    log.info("brain score: %d of %d voxels (inner-CV r %.3f to %.3f), from %d training rows", len(scorer.voxels_),
             len(scorer.inner_r_), scorer.inner_r_[scorer.voxels_].min(), scorer.inner_r_.max(),
             len(fold.data.train_rows))
    clips, measured = clip_means(fold.data.test_rows, fold.data.X_test)
    measured = dict(zip(clips, measured))
    n_windows = fold.data.test_rows.groupby("clip_id")["window"].nunique()
    extractor = make_extractor(args.feature, options)
    windows = functools.cache(lambda path, n, offset: track_windows(path, extractor, excerpt.seconds, offset, n))
    return lambda clip_id, files, offset: scorer.score(
        [windows(str(path), int(n_windows[clip_id]), offset) for path in files], measured[clip_id])


@stage("brain-score", "candidate reconstructions of each test clip (top-k retrieved tracks, generated samples) "
       "ranked by how well the encoding model predicts the clip's measured response from them", _brain_score_arguments)
def brain_score(args, options) -> None:
    from b2m.features.weights import use_cache

    use_cache(Path(options[ModelCacheOptions].cache), offline=True)
    from b2m.io import write_parquet
    from b2m.models.decoders import RECONSTRUCTED, check_decoders
    from b2m.reconstruct.brain import rerank

    check_decoders([options[RetrievalOptions].audio_model], "reconstruction.audio.model (--audio-model)",
                   RECONSTRUCTED)
    spec, out, params = options[BrainScoreOptions], BrainScoreFiles(args.out), provenance(args, options)
    score = candidate_scorer(args, options)
    tables = []
    if spec.rerank and args.retrieval:
        offset = options[ExcerptOptions].offset_s
        reranked, scores = rerank(pd.read_parquet(args.retrieval), spec.rerank,
                                  lambda clip_id, files: score(clip_id, files, offset))
        if args.stimuli:
            write_neighbour_audio(reranked, args.stimuli, out.audio, options, params)
        write_parquet(out.neighbours, reranked, params)
        tables.append(scores)
    for folder in args.generated if spec.select == "brain" and args.generated else []:
        tables.append(write_selected_samples(GenerationFiles(folder), out.generation(Path(folder).name),
                                             lambda clip_id, files: score(clip_id, files, 0.0), params))
    if not tables:
        raise SystemExit("b2m brain-score: nothing to score: give --retrieval with reconstruction.rerank > 0, or "
                         "--generated with reconstruction.generation.select: brain")
    scores = pd.concat(tables, ignore_index=True)
    write_parquet(out.scores, scores, params)
    for (method, model), rows in scores.groupby(["method", "model"], sort=False):
        chosen = rows[rows.chosen]
        log.info("%s %s: mean brain score of the chosen candidates %.3f, of every candidate %.3f (%d clips)", method,
                 model, chosen.brain_r.mean(), rows.brain_r.mean(), len(chosen))


def write_selected_samples(generated: GenerationFiles, out: GenerationFiles, score, params: dict) -> pd.DataFrame:
    """Each (model, clip)'s sample of best brain score in ``generated`` (``select_samples``) copied into ``out``
    with its listing (method ``<generator>-brain``); returns the scores of every sample."""
    from b2m.io import atomic_path, write_parquet
    from b2m.reconstruct.brain import select_samples

    chosen, scores = select_samples(pd.read_parquet(generated.listing), generated.path, score)
    for file in chosen.file:
        with atomic_path(out.path / file) as tmp:
            shutil.copyfile(generated.path / file, tmp)
    write_parquet(out.listing, chosen, params)
    return scores


def _evaluate_arguments(parser) -> None:
    _decoded_arguments(parser)
    parser.add_argument("--index", required=True, type=Path, help="corpus index folder of b2m index")
    parser.add_argument("--retrieval", required=True, type=Path, help="neighbours.parquet of b2m retrieve")
    _duplicates_argument(parser)
    parser.add_argument("--generated", type=Path, nargs="*", help="folders of b2m generate (embedded with the "
                        "extractor)")
    parser.add_argument("--brain", type=Path, help="the folder of b2m brain-score: its re-ranked retrieval and "
                        "chosen samples are methods of their own")
    parser.add_argument("--feature", required=True, help="the decoded feature space")
    parser.add_argument("--subject", required=True)
    parser.add_argument("--fold", default="test")
    parser.add_argument("--out", required=True, type=Path, help="evaluation table (.parquet)")


@stage("evaluate-reconstruction", "identification and class agreement of reconstructions vs originals, oracle and "
       "chance", _evaluate_arguments)
def evaluate_reconstruction(args, options) -> None:
    from b2m.io import load_npy, write_parquet
    from b2m.reconstruct.corpus import read_index
    from b2m.reconstruct.brain import RERANKED
    from b2m.reconstruct.evaluation import evaluate_reconstructions, retrieved_reconstructions
    from b2m.reconstruct.labels import make_labelers
    from b2m.reconstruct.retrieval import clip_queries, from_standardised

    evaluation, space = options[EvaluationOptions], options[SpaceOptions].space
    corpus, tracks = read_index(args.index)
    scale = load_npy(args.target_scale)
    queries = clip_queries(pd.read_parquet(args.predictions))
    originals = queries["oracle"].assign(vector=list(from_standardised(np.stack(queries["oracle"].vector.to_numpy()),
                                                                       scale, "raw")))
    order = originals.clip_id.to_numpy()
    duplicates = read_duplicates_of(args, tracks.track_id, order)
    reconstructions = retrieved_reconstructions(pd.read_parquet(args.retrieval), corpus, tracks, order)
    label_sets = evaluation.label_sets or {}
    brain = BrainScoreFiles(args.brain) if args.brain else None
    chosen = [files.path for files in brain.generations()] if brain else []  # each generator's best samples
    extractor = make_extractor(args.feature, options) if args.generated or chosen or label_sets else None
    for folder in args.generated or []:
        reconstructions.update(generated_reconstructions(folder, order, extractor))
    if brain and brain.neighbours.exists():
        reconstructions.update(retrieved_reconstructions(pd.read_parquet(brain.neighbours), corpus, tracks, order,
                                                         RERANKED))
    for folder in chosen:
        reconstructions.update(generated_reconstructions(folder, order, extractor))
    labelers = make_labelers(corpus, tracks, order, evaluation.label, evaluation.seed, label_sets, extractor,
                             duplicates)
    table = evaluate_reconstructions(originals, reconstructions, corpus, tracks, scale, space, labelers,
                                     evaluation.n_chance, evaluation.seed, duplicates, evaluation.label)
    table = table.assign(subject=args.subject, fold=args.fold, feature=args.feature, space=space)
    write_parquet(args.out, table, provenance(args, options))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


