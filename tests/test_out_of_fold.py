"""Every cv fold's out-of-fold predictions together (fold cv-all): two synthetic folds whose decoders
standardised their targets differently, pooled and scored as if the raw predictions were scored directly."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from b2m.errors import InputError
from b2m.evaluate import label_accuracy, score_level
from b2m.evaluate.out_of_fold import pool_folds, read_fold_predictions, score_pooled
from b2m.io import write_npy, write_parquet
from b2m.layout import Layout

MODELS = ("whole-mask", "contrastive")


def raw_rows(n_clips=24, dims=6, labels=False, seed=0):
    """Raw true rows (one-hot with ``labels``) and each model's raw predictions of them (clips × dims)."""
    rng = np.random.default_rng(seed)
    true = np.eye(dims)[np.arange(n_clips) % dims] if labels else rng.standard_normal((n_clips, dims)) * 3 + 5
    return true, {model: true + rng.standard_normal(true.shape) * (1 + k) for k, model in enumerate(MODELS)}


def write_fold(folder, clips, true, predicted, scale) -> None:
    """A decode job's predictions.parquet (window and clip rows, every model; standardised by ``scale``) and its
    target_scale.npy."""
    standardise = lambda rows: list(((rows - scale[0]) / scale[1]).astype(np.float32))  # noqa: E731
    tables = []
    for model, values in predicted.items():
        windows = pd.DataFrame({"clip_id": clips, "window": 0, "model": model, "level": "window",
                                "predicted": standardise(values + 9.0), "true": standardise(true)})
        tables += [windows, pd.DataFrame({"clip_id": clips, "model": model, "level": "clip",
                                          "predicted": standardise(values), "true": standardise(true)})]
    write_parquet(folder.predictions, pd.concat(tables, ignore_index=True), {})
    write_npy(folder.target_scale, scale.astype(np.float32), {})


def two_folds(tmp_path, labels=False):
    """Two cv folds of 12 clips each, whose decoders' target scales differ; the raw rows they hold."""
    true, predicted = raw_rows(labels=labels)
    clips = np.array([f"clip-{i:02d}" for i in range(len(true))])
    layout, rng = Layout(str(tmp_path)), np.random.default_rng(1)
    folds = {}
    for k, part in enumerate(np.array_split(rng.permutation(len(true)), 2), start=1):
        scale = np.stack([true[part].mean(axis=0) + k, true[part].std(axis=0) * k + 0.5])
        folder = layout.decoding("sub-001", f"cv-{k}", "space")
        write_fold(folder, clips[part], true[part], {m: v[part] for m, v in predicted.items()}, scale)
        folds[f"cv-{k}"] = folder.path
    return folds, clips, true, predicted


def standardised(raw, true):
    mean, sd = true.mean(axis=0), true.std(axis=0)
    return (raw - mean) / sd


def test_pooled_identification_equals_scoring_the_raw_predictions(tmp_path):
    folds, clips, true, predicted = two_folds(tmp_path)
    pooled = pool_folds([read_fold_predictions(f, folder) for f, folder in folds.items()])
    scores = score_pooled(pooled, False, n_permutations=20, n_bootstrap=20, seed=0)
    assert set(scores.level) == {"clip"} and "label_accuracy" not in set(scores.metric)
    for model in MODELS:
        order = pooled.rows.loc[pooled.rows.model == model, "clip_id"].map(dict(zip(clips, range(len(clips)))))
        reference = score_level("clip", standardised(predicted[model], true)[order], standardised(true, true)[order],
                                clips[order], 20, 20, 0)
        mine = scores[scores.model == model].drop(columns="model").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, reference, atol=1e-5)
        assert mine.n_items.tolist() == [24, 24]
    # the folds' own standardised rows, merely stacked, score otherwise: the test can tell
    stacked = pd.concat([pd.read_parquet(folder / "predictions.parquet") for folder in folds.values()])
    stacked = stacked[(stacked.level == "clip") & (stacked.model == "whole-mask")]
    naive = score_level("clip", np.stack(stacked.predicted), np.stack(stacked.true), stacked.clip_id.to_numpy(), 20,
                        20, 0)
    assert not np.allclose(naive.value, scores[scores.model == "whole-mask"].value)


def test_pooled_label_accuracy_in_a_label_space(tmp_path):
    folds, clips, true, predicted = two_folds(tmp_path, labels=True)
    pooled = pool_folds([read_fold_predictions(f, folder) for f, folder in folds.items()])
    scores = score_pooled(pooled, True, n_permutations=20, n_bootstrap=20, seed=0).set_index(["model", "metric"])
    for model in MODELS:
        expected = label_accuracy(predicted[model], true).mean()
        assert scores.loc[(model, "label_accuracy"), "value"] == pytest.approx(expected)
    np.testing.assert_allclose(pooled.scale, [true.mean(axis=0), true.std(axis=0)], atol=1e-5)


def test_a_clip_held_out_by_two_folds_is_refused(tmp_path):
    folds, *_ = two_folds(tmp_path)
    one = read_fold_predictions("cv-1", folds["cv-1"])
    with pytest.raises(InputError, match="held out by fold cv-1 too"):
        pool_folds([one, read_fold_predictions("cv-2", folds["cv-1"])])


def test_pool_folds_stage_writes_cv_all(tmp_path):
    from b2m.cli import STAGES
    from b2m.features.labels import LabelExtractor
    from b2m.stages import add_option_flags, options_from_args

    folds, clips, true, _ = two_folds(tmp_path, labels=True)
    names = pd.DataFrame({"label": [f"label-{i}" for i in true.argmax(axis=1)]})  # the labels extractor's table
    features = tmp_path / "features.parquet"
    write_parquet(features, pd.DataFrame({"clip_id": clips, "window": 0,
                                          "embedding": list(LabelExtractor().embed_clips(names))}), {})
    # the stage's own parser, as b2m.cli.build_parser makes it (the whole CLI is mid-refactor: --test clashes)
    stage, parser = STAGES["pool-folds"], argparse.ArgumentParser()
    parser.set_defaults(command=stage.name)
    stage.arguments(parser)
    add_option_flags(parser, stage.options)
    out = Layout(str(tmp_path)).pooled_folds("sub-001", "space")
    args = parser.parse_args(["--folds", *(f"{f}={p}" for f, p in folds.items()), "--features", str(features),
                              "--out", str(out.path), "--subject", "sub-001", "--feature", "space",
                              "--n-permutations", "10", "--n-bootstrap", "10"])
    stage.run(args, options_from_args(args, stage.options))
    assert out.path == tmp_path / "sub-001" / "cv-all" / "space" / "decoding"
    scores, labels = pd.read_parquet(out.scores), pd.read_parquet(out.label_scores)
    assert set(scores.metric) == {"identification_accuracy", "embedding_correlation"}
    assert set(labels.metric) == {"label_accuracy"} and len(labels) == len(MODELS)
    assert set(scores.fold) == set(labels.fold) == {"cv-all"} and set(scores.subject) == {"sub-001"}
    table = pd.read_parquet(out.predictions)
    assert len(table) == 2 * len(clips) and set(table.source_fold) == {"cv-1", "cv-2"}
    assert np.load(out.target_scale).shape == (2, true.shape[1])


def labelled_responses(folder, n_stimuli=24, windows=2, voxels=40, seed=3):
    """A window-responses folder whose responses carry each stimulus's label (4 labels, 2 cv folds by stimulus,
    4 runs as the inner CV groups), and the labels extractor's feature table of its stimuli."""
    from b2m.features.labels import LabelExtractor
    from b2m.layout import WindowFiles

    rng = np.random.default_rng(seed)
    stimuli = pd.DataFrame({"clip_id": [f"s{i:02d}" for i in range(n_stimuli)],
                            "label": [f"l{i % 4}" for i in range(n_stimuli)]})
    one_hot = LabelExtractor().embed_clips(stimuli)
    pattern = rng.standard_normal((4, voxels))
    files = WindowFiles(folder / "responses")
    for split, ids in (("train", range(n_stimuli)), ("test", range(4))):
        rows = pd.DataFrame([{"clip_id": stimuli.clip_id[i], "label": stimuli.label[i], "genre": stimuli.label[i],
                              "window": w, "start_s": 1.5 * w, "end_s": 1.5 * w + 1.5, "run": i % 4,
                              "group": i % 4, "cv_fold": 1 + (i // 4) % 2} for i in ids for w in range(windows)])
        X = one_hot[[int(c[1:]) for c in rows.clip_id]] @ pattern + rng.standard_normal((len(rows), voxels))
        write_npy(files.array(split), X.astype(np.float32), {})
        write_parquet(files.rows(split), rows, {})
    features = pd.DataFrame({"clip_id": np.repeat(stimuli.clip_id, windows), "window": np.tile(range(windows),
                             n_stimuli), "embedding": list(np.repeat(one_hot, windows, axis=0))})
    write_parquet(folder / "labels.parquet", features, {})
    return files.path, folder / "labels.parquet"


def test_a_label_space_is_decoded_scored_by_label_accuracy_and_its_cv_folds_pooled(tmp_path):
    from b2m.data.decoding_inputs import load_target_fold
    from b2m.data.windowed import load_fold
    from b2m.models.decoding import label_space
    from b2m.models.factors import fold_factors
    from b2m.options import DecodingOptions, FactorOptions, RidgeOptions
    from b2m.stages.models import fit_decoders, prediction_table, score_decoders

    responses, features = labelled_responses(tmp_path)
    layout, folds = Layout(str(tmp_path)), []
    options = {RidgeOptions: RidgeOptions(alpha_max_exp=4, n_alphas=6),
               DecodingOptions: DecodingOptions(n_permutations=20, n_bootstrap=20)}
    for fold in ("cv-1", "cv-2"):
        data = load_fold(responses, fold)
        factors = fold_factors(data.X_train, data.train_rows, None, FactorOptions(n_iter=2))
        targets = load_target_fold(responses, pd.read_parquet(features), features, fold)
        fitted = fit_decoders(options, targets, factors)
        result = score_decoders(fitted, targets, label_space(pd.read_parquet(features)), options)
        labels = result.scores[result.scores.metric == "label_accuracy"].set_index("level")
        assert list(labels.index) == ["window", "clip"] and (labels.n_items == [24, 12]).all()
        assert (labels.value > labels.chance_mean + 3 * labels.chance_sd).all()  # the label is planted
        folder = layout.decoding("sub-001", fold, "labels")
        write_parquet(folder.predictions, prediction_table(result), {})
        decoder = fitted["whole-mask"]
        write_npy(folder.target_scale, np.stack([decoder.target_mean_, decoder.target_sd_]), {})
        folds.append(read_fold_predictions(fold, folder.path))
    scores = score_pooled(pool_folds(folds), True, 20, 20, 0).set_index("metric")
    assert scores.loc["label_accuracy", "n_items"] == 24 and scores.loc["label_accuracy", "value"] > 0.8


def test_pooled_segments_are_every_folds_window_time_courses_in_one_target_space(tmp_path):
    """With segment_s, each model's windows of every fold, brought back to the raw space and standardised by the
    pooled scale, are scored as segments among every fold's segments (``segment_courses``)."""
    from b2m.evaluate.scores import segment_courses

    rng = np.random.default_rng(4)
    layout, folds, raw = Layout(str(tmp_path)), {}, {}
    for k in (1, 2):
        clips = [f"piece-{k}{n}" for n in range(3)]
        rows = pd.DataFrame([(c, w, w * 1.5) for c in clips for w in range(21)], columns=["clip_id", "window",
                                                                                           "start_s"])
        true = rng.standard_normal((len(rows), 4)) + k
        predicted = true + rng.standard_normal(true.shape)
        scale = np.stack([true.mean(axis=0) - k, true.std(axis=0) * k])
        standardise = lambda values: list(((values - scale[0]) / scale[1]).astype(np.float32))  # noqa: E731
        means = {name: np.stack([values[(rows.clip_id == c).to_numpy()].mean(axis=0) for c in clips])
                 for name, values in (("t", true), ("p", predicted))}
        table = pd.concat([rows.assign(model="whole-mask", level="window", predicted=standardise(predicted),
                                       true=standardise(true)),
                           pd.DataFrame({"clip_id": clips, "model": "whole-mask", "level": "clip",
                                         "predicted": standardise(means["p"]), "true": standardise(means["t"])})])
        folder = layout.decoding("sub-001", f"cv-{k}", "space")
        write_parquet(folder.predictions, table, {})
        write_npy(folder.target_scale, scale.astype(np.float32), {})
        folds[f"cv-{k}"], raw[k] = folder.path, (rows, true, predicted)
    pooled = pool_folds([read_fold_predictions(f, folder) for f, folder in folds.items()])
    scores = score_pooled(pooled, False, 20, 20, 0, segment_s=15.0)
    segment = scores[scores.level == "segment"].drop(columns="model").reset_index(drop=True)
    rows = pd.concat([raw[k][0] for k in (1, 2)], ignore_index=True)
    mean, sd = pooled.scale
    reference = [segment_courses(rows, (np.vstack([raw[k][index] for k in (1, 2)]) - mean) / sd, 15.0)
                 for index in (2, 1)]
    assert len(reference[0][0]) == 2 * 3 * 2  # folds × pieces × whole 15 s segments of a 31.5 s piece
    expected = score_level("segment", reference[0][0], reference[1][0], reference[0][1], 20, 20, 0)
    pd.testing.assert_frame_equal(segment, expected, atol=1e-5)
