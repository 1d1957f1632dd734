"""Model stages: ridge decoding (fMRI → embedding), encoding (embedding → fMRI) and banded ridge encoding, each on
one subject × fold, writing the folders of ``b2m.layout`` (``DecodingFiles``, ``EncodingFiles``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from b2m.layout import (CV_ALL, DecodingFiles, EncodingFiles, FactorFiles, KshotFiles, PooledFiles,
                        PredictionFiles, ScanFiles, WindowFiles)
from b2m.options import (BandedOptions, DecodingOptions, EncodingOptions, FactorOptions,
                         FoldPoolingOptions, KshotOptions, PooledOptions, RidgeOptions)
from b2m.stages import provenance, stage

log = logging.getLogger("b2m")


def fit_provenance(args, options, n_folds: int) -> dict:
    """What the outputs of a model job of one fold carry: the stage's provenance and the fold's inner CV
    (``b2m.models.folds.inner_cv``: logged where it makes fewer splits than ``ridge.cv_folds``; of fold cv-all,
    each pooled fold's). Read first, so that a fold that holds no row stops the job before it computes."""
    from b2m.data.windowed import training_runs
    from b2m.models.folds import inner_cv

    inner = {fold: inner_cv(n_folds, training_runs(args.responses, fold)) for fold in fitted_folds(args, options)}
    return {**provenance(args, options), "inner_cv": inner if args.fold == CV_ALL else inner[args.fold]}


def fitted_folds(args, options) -> tuple[str, ...]:
    """The folds a model job fits: its own, or of fold cv-all the cv folds it pools (``FoldPoolingOptions``)."""
    return options[FoldPoolingOptions].folds if args.fold == CV_ALL else (args.fold,)


def fold_options(args, options) -> dict:
    """A job's option objects as its document holds them (and its outputs' provenance records): the pooled folds
    only in a job of fold cv-all (``b2m.jobs.options_of``)."""
    if args.fold == CV_ALL:
        return options
    return {cls: obj for cls, obj in options.items() if cls is not FoldPoolingOptions}


def _model_arguments(parser, features: str = "one", positions: bool = True, pooled: bool = False) -> None:
    """The files of a model stage; ``features``: ``one`` table, ``bands`` (NAME=PARQUET, one per band) or
    ``none`` (the factorisation reads responses only); ``positions``: the voxel table (decode has its ROI labels
    from the factorisation, and adds ``--factors``); ``pooled``: the stage fits fold cv-all too."""
    parser.add_argument("--responses", required=True, type=Path, help="window-responses output folder")
    if features == "bands":
        parser.add_argument("--features", required=True, nargs="+", metavar="NAME=PARQUET",
                            help="feature tables, one per band")
    elif features == "one":
        parser.add_argument("--features", required=True, type=Path)
        parser.add_argument("--feature", default="", help="feature name, for the tables")
    if positions:
        parser.add_argument("--positions", type=Path, help="clean-bold output folder: voxel positions and ROI "
                            "labels (default: the folder the responses lie in)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--subject", required=True)
    parser.add_argument("--fold", default="test", help="test, cv-<k> or <label>-<value>" + (
        f" ({CV_ALL}: every fold of --folds, pooled)" if pooled else ""))


def _decode_arguments(parser) -> None:
    _model_arguments(parser, positions=False)
    parser.add_argument("--factors", required=True, type=Path,
                        help="the fold's factorisation, factors.npz of `b2m factorise` on the same responses")


def positions_of(args) -> ScanFiles:
    return ScanFiles(args.positions) if args.positions else WindowFiles(args.responses).scans


def prediction_table(result) -> pd.DataFrame:
    """Window- and clip-level rows of every model's predictions beside the true targets (standardised)."""
    from b2m.evaluate import clip_means

    rows = result.rows[["clip_id", "label", "window", "start_s", "end_s"]]
    clips, clip_true = clip_means(rows, result.true)
    tables = []
    for model, values in result.predicted.items():
        windows = rows.assign(model=model, level="window", predicted=list(values), true=list(result.true))
        _, clip_predicted = clip_means(rows, values)
        per_clip = pd.DataFrame({"clip_id": clips, "model": model, "level": "clip",
                                 "predicted": list(clip_predicted.astype(np.float32)),
                                 "true": list(clip_true.astype(np.float32))})
        tables += [windows, per_clip.merge(rows.drop_duplicates("clip_id")[["clip_id", "label"]], on="clip_id")]
    return pd.concat(tables, ignore_index=True)


@stage("factorise", "the decoders' stimulus sides of one subject × fold × window, shared by its feature spaces",
       lambda parser: _model_arguments(parser, features="none"))
def factorise(args, options) -> None:
    from b2m.data.decoding_inputs import voxel_labels, write_factors
    from b2m.data.windowed import load_fold
    from b2m.models.backend import use_backend
    from b2m.models.factors import fold_decoders

    factor_options = options[FactorOptions]
    params = {**fit_provenance(args, options, factor_options.cv_folds),
              "backend": use_backend(factor_options.backend)}
    data = load_fold(args.responses, args.fold)
    splits, decoders = fold_decoders(data.X_train, data.train_rows, voxel_labels(positions_of(args)), factor_options)
    write_factors(FactorFiles(args.out).factors, splits, decoders, params)


@stage("decode", "decoding of an embedding from one subject's responses (ridge, contrastive), scored by "
       "identification", _decode_arguments)
def decode(args, options) -> None:
    from b2m.data.decoding_inputs import load_target_fold, read_factors
    from b2m.models.backend import use_backend
    from b2m.models.decoding import label_space
    from b2m.models.factors import WHOLE_MASK

    backend = use_backend(options[RidgeOptions].backend)
    params = {**fit_provenance(args, options, options[RidgeOptions].cv_folds), "backend": backend}
    factors = read_factors(args.factors)
    features = pd.read_parquet(args.features)
    data = load_target_fold(args.responses, features, args.features, args.fold)
    fitted = fit_decoders(options, data, factors)
    result = score_decoders(fitted, data, label_space(features), options)
    write_decoding(DecodingFiles(args.out), result, fitted[WHOLE_MASK],
                   {"subject": args.subject, "fold": args.fold, "feature": args.feature}, params)


@dataclass
class DecodingResult:
    """One fold's decoding: the test rows, their standardised true targets (rows × dims), each model's
    predictions (model → rows × dims), the scores (model, level, metric, ...; label accuracy rows in a label
    space) and the ROI table of the ROI models (None without them)."""

    rows: pd.DataFrame
    true: np.ndarray
    predicted: dict
    scores: pd.DataFrame
    rois: pd.DataFrame | None = None


def decoders_of(models, factors) -> list[str]:
    """The one-subject decoders a decode job fits, in the registry's order: the whole mask (always) and those of
    ``models`` (``decoding.models``), the ROI decoders where the factorisation has ROI labels."""
    from b2m.models.decoders import DECODERS, ONE_SUBJECT, check_decoders
    from b2m.models.factors import WHOLE_MASK

    check_decoders(models, "decoding.models (--models)", ONE_SUBJECT)
    if not factors.has_rois():
        log.info("no ROI labels for these responses: no ROI decoders")
    return [name for name, cls in DECODERS.items() if not cls.pooled and (name == WHOLE_MASK or name in models)
            and (factors.has_rois() or not cls.needs_rois)]


def fit_decoders(options: dict, data, factors) -> dict:
    """Each decoder of ``decoders_of`` fitted on the fold's training rows (``TargetFold``) with the fold's
    factorisation: name → fitted decoder."""
    from b2m.models.decoders import make_decoder

    held_out = data.test_rows["clip_id"]
    return {name: make_decoder(name, options).fit(data.X_train, data.Y_train, data.train_rows, held_out, factors)
            for name in decoders_of(options[DecodingOptions].models, factors)}


def score_decoders(fitted: dict, data, labels: bool, options: dict) -> DecodingResult:
    """The fitted decoders' predictions of the fold's test rows, scored (``score_predictions``) against the true
    targets standardised as the whole-mask decoder's training targets; in a label space (``labels``) by label
    accuracy too."""
    from b2m.evaluate import score_predictions
    from b2m.models.decoding import roi_table
    from b2m.models.factors import WHOLE_MASK

    decoding, whole_mask = options[DecodingOptions], fitted[WHOLE_MASK]
    true = whole_mask.standardise(data.Y_test)
    predicted = {name: decoder.predict(data.X_test) for name, decoder in fitted.items()}
    label_scale = np.stack([whole_mask.target_mean_, whole_mask.target_sd_]) if labels else None
    scores = pd.concat([score_predictions(values, true, data.test_rows, decoding.n_permutations, decoding.n_bootstrap,
                                          options[RidgeOptions].seed, label_scale, decoding.segment_s).assign(
        model=model) for model, values in predicted.items()], ignore_index=True)
    log.info("%d training rows, %d test rows (%d clips)", len(data.train_rows), len(data.test_rows),
             data.test_rows.clip_id.nunique())
    rois = roi_table(fitted.values(), data.X_test)
    return DecodingResult(data.test_rows, true, predicted, scores, rois)


def write_decoding(out: DecodingFiles, result: DecodingResult, whole_mask, names: dict, params: dict) -> None:
    """A decode job's folder: scores, predictions, the whole-mask decoder's alphas, CV scores and target scale, and
    the ROI table where there is one."""
    from b2m.io import write_npy, write_parquet

    scores = write_scores(out, result.scores.assign(**names), params)
    write_parquet(out.predictions, prediction_table(result), params)
    write_npy(out.alphas, whole_mask.best_alphas_, params)
    write_npy(out.cv_scores, whole_mask.cv_scores_, params)
    write_npy(out.target_scale, np.stack([whole_mask.target_mean_, whole_mask.target_sd_]).astype(np.float32),
              {**params, "rows": "training mean, sd of the targets (predictions are (y - mean) / sd)"})
    if result.rois is not None:
        write_parquet(out.rois, result.rois, params)
    log_identification(scores)


def write_scores(out, scores: pd.DataFrame, params: dict) -> pd.DataFrame:
    """A scores table (subject, fold, feature, model, level, metric, ...) split in two (``split_label_scores``):
    ``out.scores`` (identification) and ``out.label_scores`` (label accuracy: no row unless a label space), each
    summarised in its own table. Returns the whole table."""
    from b2m.evaluate import split_label_scores
    from b2m.io import write_parquet

    identification, labels = split_label_scores(scores)
    write_parquet(out.scores, identification, params)
    write_parquet(out.label_scores, labels, params)
    return scores


def log_identification(scores: pd.DataFrame) -> None:
    """One log line per row of identification (or label) accuracy in a scores table (subject, fold, feature,
    model, ...)."""
    for row in scores[scores.metric.isin(["identification_accuracy", "label_accuracy"])].itertuples():
        log.info("%s %s %s %s %s-level %s %.3f [%.3f, %.3f] (chance %.3f ± %.3f, n=%d)", row.subject, row.fold,
                 row.feature, row.model, row.level, row.metric.replace("_", " "), row.value, row.ci_low,
                 row.ci_high, row.chance_mean, row.chance_sd, row.n_items)


def _pool_folds_arguments(parser) -> None:
    parser.add_argument("--folds", required=True, nargs="+", metavar="FOLD=FOLDER",
                        help="each cv fold's decoding output folder (predictions.parquet, target_scale.npy)")
    parser.add_argument("--features", required=True, type=Path, help="the feature table (is it a label space?)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--subject", required=True)
    parser.add_argument("--feature", default="", help="feature name, for the tables")


@stage("pool-folds", "every cv fold's out-of-fold predictions of one subject × feature together (fold cv-all), "
       "scored among every stimulus", _pool_folds_arguments)
def pool_folds(args, options) -> None:
    from b2m.evaluate.out_of_fold import pool_folds as pool, pooled_prediction_table, read_fold_predictions, \
        score_pooled
    from b2m.io import write_npy, write_parquet
    from b2m.models.decoding import label_space

    decoding, params = options[DecodingOptions], provenance(args, options)
    pooled = pool([read_fold_predictions(*item.split("=", 1)) for item in args.folds])
    scores = score_pooled(pooled, label_space(pd.read_parquet(args.features)), decoding.n_permutations,
                          decoding.n_bootstrap, options[RidgeOptions].seed, decoding.segment_s)
    out = PredictionFiles(args.out)
    scores = write_scores(out, scores.assign(subject=args.subject, fold=CV_ALL, feature=args.feature), params)
    write_parquet(out.predictions, pooled_prediction_table(pooled), params)
    write_npy(out.target_scale, pooled.scale.astype(np.float32),
              {**params, "rows": "mean, sd of the pooled true rows (predictions are (y - mean) / sd)"})
    log_identification(scores)


def _pooled_arguments(parser) -> None:
    parser.add_argument("--responses", required=True, nargs="+", metavar="SUBJECT=FOLDER",
                        help="each pooled subject's window-responses output folder")
    parser.add_argument("--features", required=True, type=Path)
    parser.add_argument("--feature", default="", help="feature name, for the tables")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--fold", default="test", help="test, cv-<k> or <label>-<value>")


@stage("decode-pooled", "one ridge decoder over every subject's responses aligned to a reference space, scored "
       "on each subject's test rows", _pooled_arguments)
def decode_pooled(args, options) -> None:
    from b2m.data.decoding_inputs import load_subject_folds
    from b2m.io import write_parquet
    from b2m.models.backend import use_backend
    from b2m.models.decoders import POOLED

    backend = use_backend(options[RidgeOptions].backend)
    folds = load_subject_folds(dict(item.split("=", 1) for item in args.responses), args.features, args.fold)
    [name] = POOLED  # the one pooled decoder (its alignment table is the job's)
    decoder = fit_pooled(name, folds, options)
    results = score_pooled(name, decoder, folds, options)
    params = {**provenance(args, options), "backend": backend}
    names = {"fold": args.fold, "feature": args.feature}
    scores = pd.concat([r.scores.assign(subject=s, **names) for s, r in results.items()], ignore_index=True)
    out = PooledFiles(args.out)
    write_parquet(out.scores, scores, params)
    write_parquet(out.predictions, pd.concat([prediction_table(r).assign(subject=s) for s, r in
                                              results.items()], ignore_index=True), params)
    write_parquet(out.alignment, decoder.alignment_.assign(**names), params)
    log_identification(scores)


def fit_pooled(name: str, folds, options: dict, held_out=None):
    """The pooled decoder ``name`` fitted on every subject's training rows (``SubjectFold``s, in pooling order),
    every subject's test clips held out (and ``held_out``, where given: the clips held out instead)."""
    from b2m.models.decoders import make_decoder

    if held_out is None:
        held_out = pd.concat([fold.test_rows["clip_id"] for fold in folds]).unique()
    return make_decoder(name, options).fit([f.X_train for f in folds], [f.Y_train for f in folds],
                                           [f.train_rows for f in folds], held_out, [f.subject for f in folds])


def score_pooled(name: str, decoder, folds, options: dict) -> dict[str, DecodingResult]:
    """Per subject, the pooled decoder's predictions of its test rows (``SubjectFold``), scored against its true
    targets standardised as the pooled training targets."""
    from b2m.evaluate import score_predictions

    spec, results = options[PooledOptions], {}
    for fold, predicted in zip(folds, decoder.predict([f.X_test for f in folds])):
        true = decoder.standardise(fold.Y_test)
        scores = score_predictions(predicted, true, fold.test_rows, spec.n_permutations, spec.n_bootstrap,
                                   options[RidgeOptions].seed)
        results[fold.subject] = DecodingResult(fold.test_rows, true, {name: predicted}, scores.assign(model=name))
    return results


def _kshot_arguments(parser) -> None:
    _pooled_arguments(parser)
    parser.add_argument("--subject", required=True, help="the subject left out of the pool (one of --responses)")
    parser.add_argument("--full-data", required=True, type=Path,
                        help="the left-out subject's own decoders' scores (scores.parquet of `b2m decode`, the same "
                        "fold and feature): its full-data end")


@stage("decode-kshot", "one subject left out of the pool, aligned to the others' shared space from the first minutes "
       "of its training runs (0: anatomically), scored on its test rows beside its own full-data decoder",
       _kshot_arguments)
def decode_kshot(args, options) -> None:
    from b2m.data.decoding_inputs import load_subject_folds
    from b2m.errors import InputError
    from b2m.io import write_parquet
    from b2m.models.backend import use_backend

    backend = use_backend(options[RidgeOptions].backend)
    responses = dict(item.split("=", 1) for item in args.responses)
    if args.subject not in responses or len(responses) < 3:
        raise InputError("--responses", f"{', '.join(responses)}: the left-out subject {args.subject} and two "
                         "subjects or more to pool are needed", f"give every subject's responses, {args.subject}'s too")
    folds = load_subject_folds(responses, args.features, args.fold)
    positions, no_grid = voxel_positions(responses)
    points, decoder = kshot_points(folds, args.subject, options, positions, no_grid)
    new = next(fold for fold in folds if fold.subject == args.subject)
    names = {"subject": args.subject, "fold": args.fold, "feature": args.feature}
    full = full_data_point(pd.read_parquet(args.full_data), new.train_rows)
    scores = pd.concat([p.scores for p in points] + [full], ignore_index=True).assign(**names)
    params = {**provenance(args, options), "backend": backend}
    out = KshotFiles(args.out)
    write_parquet(out.scores, scores, params)
    write_parquet(out.alignment, pd.DataFrame([p.alignment for p in points]).assign(**names), params)
    log.info("pool of %s; k-shot points of %s:\n%s", ", ".join(decoder.subjects_), args.subject,
             pd.DataFrame([p.alignment for p in points]).to_string(index=False))
    log_identification(scores.dropna(subset=["value"]))


def kshot_points(folds, subject: str, options: dict, positions: dict | None, no_grid: str):
    """Each k-shot point (``KshotOptions.minutes``) of ``subject``, left out of the pool of the other subjects'
    folds (``SubjectFold``s), and the pool's decoder; every subject's test clips are held out of every fit."""
    from b2m.models.decoders import POOLED
    from b2m.models.pooled import SharedTemplate, pool_options

    new = next(fold for fold in folds if fold.subject == subject)
    pool = [fold for fold in folds if fold.subject != subject]
    held_out = pd.concat([fold.test_rows["clip_id"] for fold in folds]).unique()  # the left-out subject's too
    [name] = POOLED
    decoder = fit_pooled(name, pool, {**options, PooledOptions: pool_options(options[PooledOptions], subject)},
                         held_out)
    template = SharedTemplate.of(decoder, [f.X_train for f in pool], [f.train_rows for f in pool])
    return [kshot_point(m, decoder, template, new, held_out, options, positions, no_grid)
            for m in options[KshotOptions].minutes], decoder


@dataclass
class KshotPoint:
    """One k-shot point of a left-out subject: its scores (score_predictions' rows with point, minutes,
    alignment_rows, reason; a point not made has NaN values and its reason) and its alignment's row."""

    scores: pd.DataFrame
    alignment: dict


def voxel_positions(responses: dict) -> tuple[dict | None, str]:
    """Each subject's voxel grid indices (subject → voxels × 3; ``responses``: subject → window-responses folder)
    where every subject's voxels lie on one grid, else None and the reason."""
    import nibabel as nib

    scans = {subject: WindowFiles(folder).scans for subject, folder in responses.items()}
    if not all(files.voxels.exists() and files.mask.exists() for files in scans.values()):
        return None, "no voxel positions (responses without a mask, such as the authors' arrays)"
    masks = {subject: nib.load(files.mask) for subject, files in scans.items()}
    first, *others = masks
    for subject in others:
        if masks[subject].shape[:3] != masks[first].shape[:3] or not np.allclose(masks[subject].affine,
                                                                                 masks[first].affine, atol=1e-3):
            return None, f"the voxel grids of {first} and {subject} differ (shape or affine of their masks)"
    return {subject: pd.read_parquet(files.voxels)[["i", "j", "k"]].to_numpy() for subject, files in scans.items()}, ""


def kshot_point(minutes: float, decoder, template, new, held_out, options: dict, positions, no_grid: str
                ) -> KshotPoint:
    """The left-out subject (``SubjectFold`` ``new``) aligned from its ``first_minutes`` (0: anatomically, from
    ``positions``, subject → voxel grid indices, or not at all where ``no_grid`` says why) and decoded by the
    pool's ``decoder``; its test rows scored against its targets standardised as the pool's."""
    from b2m.evaluate import score_predictions
    from b2m.evaluate.scores import IDENTIFICATION_METRICS
    from b2m.models.decoders import POOLED
    from b2m.models.pooled import Unaligned, align_new_subject, anatomical_alignment, first_minutes

    [name] = POOLED
    rows = first_minutes(new.train_rows, minutes)
    point = {"point": "zero-shot" if minutes == 0 else "k-shot", "minutes": float(minutes),
             "alignment_rows": len(rows)}
    try:
        if minutes == 0 and positions is None:
            raise Unaligned(no_grid)
        alignment = anatomical_alignment(decoder, positions, positions[new.subject]) if minutes == 0 else \
            align_new_subject(template, new.X_train[rows], new.train_rows.iloc[rows], held_out, options[RidgeOptions])
    except Unaligned as refused:
        log.warning("%s minutes: not available: %s", minutes, refused)
        levels = pd.DataFrame([{"level": level, "metric": metric, "value": np.nan}
                               for level in ("window", "clip") for metric in IDENTIFICATION_METRICS])
        return KshotPoint(levels.assign(model=name, reason=str(refused), **point),
                          {**point, "n_voxels": new.X_train.shape[1], "cv_r2": np.nan, "alpha": np.nan,
                           "reason": str(refused)})
    spec = options[PooledOptions]
    predicted = decoder.decoder_.predict(alignment.transform(new.X_test))
    scores = score_predictions(predicted, decoder.standardise(new.Y_test), new.test_rows, spec.n_permutations,
                               spec.n_bootstrap, options[RidgeOptions].seed)
    return KshotPoint(scores.assign(model=name, reason="", **point),
                      {**point, "n_voxels": new.X_train.shape[1], "cv_r2": alignment.cv_r2, "alpha": alignment.alpha,
                       "reason": ""})


def full_data_point(scores: pd.DataFrame, train_rows: pd.DataFrame) -> pd.DataFrame:
    """The left-out subject's own whole-mask decoder's scores (a decode job's ``scores``) as the curve's full-data
    end: every one of its training rows, at its whole training time in minutes."""
    from b2m.models.factors import WHOLE_MASK
    from b2m.models.pooled import run_lengths

    own = scores[scores["model"] == WHOLE_MASK].drop(columns=["subject", "fold", "feature"])
    return own.assign(point="full-data", minutes=float(run_lengths(train_rows).sum() / 60),
                      alignment_rows=len(train_rows),
                      reason="")


def write_encoding(out: EncodingFiles, result, positions: ScanFiles, params: dict, summary: dict) -> None:
    """voxels.parquet (one row per response column), NIfTI maps of each voxel column, and a one-row summary."""
    from b2m.io import write_parquet

    voxels = result.voxels
    write_parquet(out.voxels, voxels, params)
    write_voxel_maps(out, voxels, positions)
    significant = voxels["q"] < 0.05
    row = {**summary, "n_voxels": len(voxels), "n_test_rows": result.n_test, "median_r": float(voxels.r.median()),
           "n_significant_q05": int(significant.sum()),
           "median_r_significant": float(voxels.r[significant].median()) if significant.any() else np.nan,
           "null": "permutation" if "p_permutation" in voxels else "gaussian"}
    row["median_noise_ceiling"] = float(voxels.noise_ceiling.median()) if "noise_ceiling" in voxels else np.nan
    row["noise_ceiling"] = result.noise_ceiling
    write_parquet(out.summary, pd.DataFrame([row]), params)
    log.info("%s", row)


def write_voxel_maps(out: EncodingFiles, voxels: pd.DataFrame, positions: ScanFiles) -> None:
    """A NIfTI map of each column of the voxel table on the mask's grid, where the responses have voxel positions
    (not the authors' arrays)."""
    import nibabel as nib

    from b2m.io import atomic_path
    from b2m.models.encoding import voxel_map

    located = positions.voxels.exists() and positions.mask.exists()
    table = pd.read_parquet(positions.voxels) if located else None
    if table is None or len(table) != len(voxels):
        log.info("no voxel positions for these responses (the authors' arrays): no maps written")
        return
    mask = nib.load(positions.mask)
    for column in voxels.columns:
        with atomic_path(out.voxel_map(column)) as tmp:
            nib.save(voxel_map(voxels[column].to_numpy(np.float32), table, mask), tmp)


def predict_folds(responses, fold: str, pooled_folds, features: dict, predict, encoder):
    """Load → fit → predict of an encoding job: ``predict`` (``b2m.models.encoding.predict_held_out[_bands]``)
    given a fresh copy of ``encoder`` and the arrays of ``fold`` with the feature tables ``features`` (name →
    Parquet); of fold cv-all, of each of ``pooled_folds`` in turn (one fold's arrays in memory at a time),
    pooled (``held_out_predictions``)."""
    import dataclasses

    from b2m.data.windowed import load_encoding_fold
    from b2m.models.encoding import held_out_predictions

    return held_out_predictions(
        lambda one: predict(load_encoding_fold(responses, features, one), dataclasses.replace(encoder)),
        fold, pooled_folds, WindowFiles(responses).train_rows)


@stage("encode", "ridge encoding of responses from one embedding, voxelwise r, p, FDR, maps (fold cv-all: every "
       "pooled cv fold's held-out predictions together)", lambda parser: _model_arguments(parser, pooled=True))
def encode(args, options) -> None:
    from b2m.data.windowed import load_test_repeats
    from b2m.io import write_npy
    from b2m.models.backend import use_backend
    from b2m.models.encoding import RidgeEncoder, predict_held_out, score_encoding

    options = fold_options(args, options)
    encoding, ridge = options[EncodingOptions], options[RidgeOptions]
    params = {**fit_provenance(args, options, ridge.cv_folds), "backend": use_backend(ridge.backend)}
    encoder = RidgeEncoder.from_options(ridge, encoding)
    predictions = predict_folds(args.responses, args.fold, fitted_folds(args, options), {args.feature: args.features},
                                predict_held_out, encoder)
    result = score_encoding(predictions, args.fold, load_test_repeats(args.responses, args.fold),
                            encoding.n_permutations, ridge.seed, encoding.permutation_block_s)
    out = EncodingFiles(args.out)
    rows = f"each voxel's best alpha in each pooled fold: {', '.join(fitted_folds(args, options))}"
    write_npy(out.alphas, result.alphas, {**params, "rows": rows} if args.fold == CV_ALL else params)
    write_encoding(out, result, positions_of(args), params,
                   {"subject": args.subject, "fold": args.fold, "feature": args.feature})


@stage("encode-banded", "banded ridge over several embeddings, with variance partitioning (fold cv-all: every "
       "pooled cv fold's held-out predictions together)",
       lambda parser: _model_arguments(parser, features="bands", pooled=True))
def encode_banded(args, options) -> None:
    from b2m.data.windowed import load_test_repeats
    from b2m.models.backend import use_backend
    from b2m.models.encoding import BandedEncoder, predict_held_out_bands, score_banded

    spaces = dict(item.split("=", 1) for item in args.features)
    options = fold_options(args, options)
    banded, ridge = options[BandedOptions], options[RidgeOptions]
    params = {**fit_provenance(args, options, ridge.cv_folds), "backend": use_backend(ridge.backend)}
    encoder = BandedEncoder.from_options(ridge, banded)
    predictions = predict_folds(args.responses, args.fold, fitted_folds(args, options), spaces,
                                predict_held_out_bands, encoder)
    result = score_banded(predictions, list(spaces), args.fold, load_test_repeats(args.responses, args.fold),
                          banded.n_permutations, ridge.seed, banded.permutation_block_s)
    write_encoding(EncodingFiles(args.out), result, positions_of(args), params,
                   {"subject": args.subject, "fold": args.fold, "feature": "+".join(result.spaces),
                    **banded_shares(result)})


def banded_shares(result) -> dict:
    """The summary's mean share of the joint R² of each space over the voxels at q < 0.05 (NaN where none)."""
    significant = result.voxels[result.voxels.q < 0.05]
    return {f"mean_r2_{name}_significant": float(significant[f"r2_{name}"].mean()) if len(significant) else np.nan
            for name in result.spaces}
