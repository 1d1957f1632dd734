"""Brain-scored reconstruction: the scorer picks the candidate whose predicted response matches the measured one,
no test-fold response reaches an encoder fit or the voxel choice, the re-ranked retrieval and the chosen generated
samples are written as they say, and the workflow plans the brain-score job only where an option asks for it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from b2m.data.bids import BidsDataset
from b2m.data.simulate import DESIGN
from b2m.data.windowed import load_encoding_fold
from b2m.features import make_extractor
from b2m.features.audio import stimulus_path
from b2m.io import write_parquet
from b2m.layout import GenerationFiles
from b2m.models import brain_score, encoding
from b2m.models.brain_score import BrainScorer, chosen_voxels, fit_brain_scorer, inner_cv_r
from b2m.models.encoding import RidgeEncoder
from b2m.models.folds import LeakageError, inner_groups, run_splits
from b2m.reconstruct.brain import RERANKED, rerank, select_samples
from b2m.reconstruct.corpus import track_windows

ENCODER = RidgeEncoder(alphas=(0.1, 1.0, 10.0, 100.0), n_folds=3, delays=(0,))


def synthetic_training(seed=0, runs=6, clips=8, windows=4, dims=5, voxels=60, responsive=30):
    """Training rows (runs × clips × windows), features, and responses of which the first ``responsive`` voxels
    follow a planted linear map of the features; returns the map too."""
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame([(f"r{run}-c{clip}", run, run, clip, window) for run in range(runs) for clip in range(clips)
                         for window in range(windows)], columns=["clip_id", "run", "group", "event", "window"])
    X = rng.standard_normal((len(rows), dims))
    weights = np.zeros((dims, voxels))
    weights[:, :responsive] = rng.standard_normal((dims, responsive))
    Y = X @ weights + 0.5 * rng.standard_normal((len(rows), voxels))
    return rows, X, Y, weights


def test_the_scorer_picks_the_planted_candidate_over_the_voxels_the_inner_cv_finds():
    rows, X, Y, weights = synthetic_training()
    scorer = BrainScorer(ENCODER, voxels=20).fit(X, Y, rows, ["test-clip"])
    assert len(scorer.voxels_) == 20 and (scorer.voxels_ < 30).all()  # the best inner-CV r are planted voxels
    assert scorer.inner_r_[:30].min() > scorer.inner_r_[30:].max()
    rng = np.random.default_rng(1)
    for trial in range(5):
        true_windows = rng.standard_normal((4, 5))
        measured = (true_windows @ weights).mean(axis=0) + 0.3 * rng.standard_normal(60)
        candidates = [rng.standard_normal((4, 5)) for _ in range(6)]
        candidates[trial] = true_windows
        assert int(np.argmax(scorer.score(candidates, measured))) == trial


def test_voxels_are_the_best_above_the_threshold_capped_by_the_count():
    r = np.array([0.1, 0.5, -0.2, 0.3, 0.05, 0.4])
    assert chosen_voxels(r, 2, 0.0).tolist() == [1, 5]
    assert chosen_voxels(r, 0, 0.2).tolist() == [1, 3, 5]
    assert chosen_voxels(r, 10, 0.6).tolist() == []


def test_inner_cv_r_is_the_pearson_r_of_the_out_of_split_predictions():
    rows, X, Y, _ = synthetic_training(runs=3)
    predicted = np.zeros_like(Y)
    for train, validation in run_splits(inner_groups(rows), ENCODER.n_folds):
        fitted = dataclasses.replace(ENCODER).fit(X[train], Y[train], rows.iloc[train].reset_index(drop=True), [])
        predicted[validation] = fitted.predict(X[validation], rows.iloc[validation].reset_index(drop=True))
    expected = [np.corrcoef(Y[:, v], predicted[:, v])[0, 1] for v in range(Y.shape[1])]
    np.testing.assert_allclose(inner_cv_r(ENCODER, X, Y, rows, []), expected, atol=1e-6)


@pytest.fixture(scope="module")
def fold(planted):
    """The planted study's test fold, every third voxel (to keep the fits fast)."""
    fold = load_encoding_fold(planted / "clean/w", {"acoustic": planted / "acoustic.parquet"}, "test")
    data = fold.data
    return dataclasses.replace(fold, data=dataclasses.replace(data, X_train=np.ascontiguousarray(data.X_train[:, ::3]),
                                                              X_test=np.ascontiguousarray(data.X_test[:, ::3])))


def test_no_test_response_reaches_an_encoder_fit_or_the_voxel_choice(fold, monkeypatch):
    """Every encoder fit (each inner split's and the final one) is guarded with the test clips held out and none
    of its rows is a test clip; the voxels are chosen from the training responses alone: the r's inputs are the
    training responses, and other test responses leave the inner r and the voxels as they were."""
    test_clips, fits, correlated = set(fold.data.test_rows.clip_id), [], []
    original_check, original_r = encoding.check_training_rows, brain_score.pearson_per_column

    def check(X, rows, held_out):
        fits.append((set(rows.clip_id), set(held_out)))
        return original_check(X, rows, held_out)

    def r(true, predicted):
        correlated.append(true)
        return original_r(true, predicted)

    monkeypatch.setattr(encoding, "check_training_rows", check)
    monkeypatch.setattr(brain_score, "pearson_per_column", r)
    scorer = fit_brain_scorer(fold, BrainScorer(ENCODER, voxels=50))
    n_splits = len(run_splits(inner_groups(fold.data.train_rows), ENCODER.n_folds))
    assert len(fits) == n_splits + 1
    for rows, held_out in fits:
        assert rows.isdisjoint(test_clips) and test_clips <= held_out
    assert len(correlated) == 1 and np.array_equal(correlated[0], fold.data.X_train)
    noise = np.random.default_rng(0).standard_normal(fold.data.X_test.shape).astype(np.float32)
    other = dataclasses.replace(fold, data=dataclasses.replace(fold.data, X_test=noise))
    again = fit_brain_scorer(other, BrainScorer(ENCODER, voxels=50))
    np.testing.assert_array_equal(again.inner_r_, scorer.inner_r_)
    np.testing.assert_array_equal(again.voxels_, scorer.voxels_)


def test_a_test_clip_among_the_training_rows_is_refused(fold):
    rows = fold.data.train_rows.copy()
    rows.loc[0, "clip_id"] = fold.data.test_rows.clip_id.iloc[0]
    leaky = dataclasses.replace(fold, data=dataclasses.replace(fold.data, train_rows=rows))
    with pytest.raises(LeakageError, match="test clip"):
        fit_brain_scorer(leaky, BrainScorer(ENCODER))


def test_a_clips_own_audio_outscores_the_other_test_clips(tiny_study, fold):
    """The planted study's test clips as each other's candidates: a clip's own excerpt, cut into its windows and
    embedded, is predicted closest to its measured response more often than chance."""
    from b2m.evaluate import clip_means

    scorer = fit_brain_scorer(fold, BrainScorer(ENCODER, voxels=100))
    stimuli = BidsDataset(tiny_study["bids_root"], DESIGN).stimulus_table().set_index("clip_id")
    clips, measured = clip_means(fold.data.test_rows, fold.data.X_test)
    extractor = make_extractor("acoustic", 1.5, 1.5)
    n_windows = fold.data.test_rows.groupby("clip_id").window.nunique()
    candidates = {clip: track_windows(stimulus_path(tiny_study["stimuli"], stimuli.loc[clip, "path"]), extractor,
                                      stimuli.loc[clip, "end"] - stimuli.loc[clip, "start"],
                                      stimuli.loc[clip, "start"], int(n_windows[clip])) for clip in clips}
    ranks = []
    for clip, response in zip(clips, measured):
        scores = scorer.score([candidates[c] for c in clips], response)
        ranks.append(int((scores > scores[clips.index(clip)]).sum()) + 1)
    assert np.mean(ranks) < (len(clips) + 1) / 2 - 1, ranks


def tone_file(path, freq, seconds=4.0, rate=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
    return path


def peak_frequency(path) -> float:
    audio, rate = sf.read(path)
    return float(np.argmax(np.abs(np.fft.rfft(audio))) * rate / len(audio))


def closeness_to(targets: dict):
    """A score of candidate files for a clip: how close each file's peak frequency is to the clip's target."""
    return lambda clip_id, files: np.array([-abs(peak_frequency(f) - targets[clip_id]) for f in files])


@pytest.fixture()
def generated(tmp_path):
    """A b2m generate folder: 2 clips × 2 models × 3 samples, tones of distinct frequencies."""
    folder, rows = GenerationFiles(tmp_path / "musicldm"), []
    for c, clip in enumerate(["blues.00001", "jazz.00002"]):
        for model in ("whole-mask", "oracle"):
            for sample in range(3):
                name = f"{model}-{sample}.flac"
                tone_file(folder.clip_file(clip, name), 200 + 100 * sample + 400 * c)
                rows.append({"clip_id": clip, "label": clip.split(".")[0], "method": "musicldm", "model": model,
                             "sample": sample, "seed": sample, "file": folder.relative(clip, name), "caption": ""})
    write_parquet(folder.listing, pd.DataFrame(rows), {})
    return folder


def test_generation_selection_writes_the_best_sample_of_each_clip_and_model(generated, tmp_path):
    from b2m.stages.reconstruct import write_selected_samples

    targets = {"blues.00001": 300.0, "jazz.00002": 800.0}  # samples 1 (blues: 300 Hz) and 2 (jazz: 800 Hz)
    out = GenerationFiles(tmp_path / "brain" / "generation" / "musicldm")
    scores = write_selected_samples(generated, out, closeness_to(targets), {})
    listing = pd.read_parquet(out.listing)
    assert listing[["clip_id", "model", "source_sample"]].values.tolist() == [
        ["blues.00001", "whole-mask", 1], ["blues.00001", "oracle", 1], ["jazz.00002", "whole-mask", 2],
        ["jazz.00002", "oracle", 2]]
    assert (listing["sample"] == 0).all()  # one chosen piece per clip: the evaluation's one sample
    assert set(listing.method) == {"musicldm-brain"}
    for file in listing.file:
        assert (out.path / file).read_bytes() == (generated.path / file).read_bytes()
    assert sorted(p.name for p in out.path.rglob("*.flac")) == ["oracle-1.flac", "oracle-2.flac",
                                                                 "whole-mask-1.flac", "whole-mask-2.flac"]
    assert len(scores) == 12 and scores.chosen.sum() == 4 and set(scores.method) == {"musicldm-brain"}
    best = scores.loc[scores.groupby(["model", "clip_id"]).brain_r.idxmax()]
    assert best.chosen.all()


def test_ties_keep_the_lower_sample(generated):
    listing = pd.read_parquet(generated.listing)
    chosen, _ = select_samples(listing, generated.path, lambda clip_id, files: np.zeros(len(files)))
    assert (chosen["sample"] == 0).all() and len(chosen) == 4


def test_rerank_orders_the_top_k_by_score_and_leaves_the_rest_out():
    neighbours = pd.DataFrame([("c1", "blues", "whole-mask", rank, f"t{rank}", "rock", f"/x/t{rank}.wav", 1 - rank / 10)
                               for rank in range(1, 6)],
                              columns=["clip_id", "label", "model", "rank", "track_id", "track_genre", "path",
                                       "similarity"])
    scores_of = {"/x/t1.wav": 0.1, "/x/t2.wav": 0.2, "/x/t3.wav": 0.9, "/x/t4.wav": 0.5, "/x/t5.wav": 1.0}
    reranked, scores = rerank(neighbours, 4, lambda clip_id, files: np.array([scores_of[f] for f in files]))
    assert reranked.track_id.tolist() == ["t3", "t4", "t2", "t1"]  # t5, outside the top 4, is no candidate
    assert reranked["rank"].tolist() == [1, 2, 3, 4] and reranked.retrieval_rank.tolist() == [3, 4, 2, 1]
    assert list(reranked.columns[:len(neighbours.columns)]) == list(neighbours.columns)
    assert scores.chosen.tolist() == [True, False, False, False] and set(scores.method) == {RERANKED}


def test_the_listening_test_draws_brain_scored_trials_beside_the_unscored_ones(tmp_path):
    """--brain adds the re-ranked retrieval (its audio folder) and each generator's chosen samples as methods of
    their own, every clip heard once per method, each against a reconstruction of its own method."""
    import shutil

    from b2m.cli import main
    from b2m.layout import BrainScoreFiles
    from b2m.options import ListeningOptions, ListeningTestOptions, document
    from test_listening_test import CLIPS, study_audio

    audio, generated = study_audio(tmp_path / "plain", np.random.default_rng(0))
    brain = BrainScoreFiles(tmp_path / "brain")
    other_audio, other_generated = study_audio(tmp_path / "other", np.random.default_rng(1))
    shutil.copytree(other_audio, brain.audio_folder)
    chosen = brain.generation("musicldm")
    shutil.copytree(other_generated, chosen.path)
    listing = pd.read_parquet(chosen.listing)
    listing.query("sample == 0").assign(method="musicldm-brain").to_parquet(chosen.listing)
    options = document(ListeningOptions(subjects=("sub-001",), features=("acoustic",), model="whole-mask",
                                        generated={"acoustic": ["musicldm"]}), ListeningTestOptions())
    assert main(["listening-test", "--options", options, "--retrieved", f"sub-001:acoustic={audio}",
                 "--samples", f"sub-001:acoustic:musicldm={generated}", "--brain", f"sub-001:acoustic={brain.path}",
                 "--page", str(tmp_path / "test.html"), "--key", str(tmp_path / "key.tsv")]) == 0
    key = pd.read_csv(tmp_path / "key.tsv", sep="\t")
    assert key.method.value_counts().to_dict() == {"retrieval": 10, "musicldm": 10, RERANKED: 10,
                                                   "musicldm-brain": 10}
    for _, rows in key.groupby("method"):
        assert sorted(rows.clip_id) == CLIPS
    brain_trials = key[key.method.str.endswith("-brain")]
    assert all(str(brain.path) in path for path in brain_trials.reconstruction)


def test_the_stage_reranks_the_retrieved_tracks_by_their_scores_and_writes_them(planted, tiny_study, tmp_path):
    """b2m brain-score on the planted study's responses: each (model, clip)'s top-k corpus tracks, scored, re-ranked
    with their cosine rank kept, and the scores table saying which was chosen."""
    from b2m.cli import main
    from b2m.layout import BrainScoreFiles
    from b2m.options import BrainScoreOptions, EncodingOptions, ExcerptOptions, ExtractorOptions, RidgeOptions, document
    from b2m.reconstruct.corpus import corpus_tracks

    tracks = corpus_tracks([{"path": str(tiny_study["corpus"]), "layout": "gtzan"}]).head(4)
    clips = load_encoding_fold(planted / "clean/w", {"acoustic": planted / "acoustic.parquet"},
                               "test").data.test_rows.drop_duplicates("clip_id")[["clip_id", "label"]]
    neighbours = pd.concat([pd.DataFrame({"clip_id": clip, "label": label, "model": model, "rank": range(1, 5),
                                          "track_id": tracks.track_id, "track_genre": tracks.genre,
                                          "path": tracks.path, "similarity": np.linspace(0.9, 0.6, 4)})
                            for clip, label in clips.itertuples(index=False) for model in ("whole-mask", "oracle")],
                           ignore_index=True)
    write_parquet(tmp_path / "neighbours.parquet", neighbours, {})
    def options(voxels):
        return document(RidgeOptions(backend="numpy", cv_folds=3), EncodingOptions(delays=(0,)),
                        BrainScoreOptions(rerank=3, voxels=voxels), ExtractorOptions(), ExcerptOptions(seconds=6.0))

    inputs = ["--responses", str(planted / "clean/w"), "--features", str(planted / "acoustic.parquet"), "--feature",
              "acoustic", "--retrieval", str(tmp_path / "neighbours.parquet")]
    refused = tmp_path / "one-voxel"  # a correlation over one voxel says nothing: refused, nothing written
    assert main(["brain-score", "--options", options(1), *inputs, "--out", str(refused)]) == 2
    assert not refused.exists()
    out = BrainScoreFiles(tmp_path / "brain")
    assert main(["brain-score", "--options", options(100), *inputs, "--out", str(out.path)]) == 0
    reranked, scores = pd.read_parquet(out.neighbours), pd.read_parquet(out.scores)
    assert len(reranked) == len(scores) == 3 * 2 * len(clips) and set(scores.method) == {RERANKED}
    assert list(reranked.columns) == list(neighbours.columns) + ["retrieval_rank", "brain_r"]
    for _, rows in reranked.groupby(["model", "clip_id"]):
        assert rows["rank"].tolist() == [1, 2, 3] and sorted(rows.retrieval_rank) == [1, 2, 3]
        assert rows.brain_r.is_monotonic_decreasing and rows.brain_r.between(-1, 1).all()
    chosen = scores[scores.chosen].set_index(["model", "clip_id"]).candidate
    top = reranked[reranked["rank"] == 1].set_index(["model", "clip_id"]).track_id
    assert chosen.sort_index().equals(top.sort_index().rename("candidate"))
    assert not out.audio_folder.exists() and not out.generations()


def test_the_listening_page_shows_the_brain_scored_reconstructions(tmp_path):
    """--brain adds a section of the re-ranked retrieval and the chosen samples as a column of their own."""
    import json
    import shutil

    from b2m.cli import main
    from b2m.layout import BrainScoreFiles
    from test_report import listening_fixture

    rng = np.random.default_rng(3)
    audio, generated, predictions = listening_fixture(tmp_path / "plain", rng)
    other_audio, other_generated, _ = listening_fixture(tmp_path / "other", rng)
    predictions.to_parquet(tmp_path / "predictions.parquet")
    brain = BrainScoreFiles(tmp_path / "brain")
    shutil.copytree(other_audio, brain.audio_folder)
    shutil.copytree(other_generated, brain.generation("musicldm").path)
    listing = pd.read_parquet(brain.generation("musicldm").listing)
    listing.assign(method="musicldm-brain").to_parquet(brain.generation("musicldm").listing)
    options = {"listening": {"subjects": ["sub-001"], "features": ["acoustic"], "fold": "test",
                             "model": "whole-mask", "generated": {"acoustic": ["musicldm"]}}}
    page = tmp_path / "listening.html"
    assert main(["listening-page", "--options", json.dumps(options), "--out", str(page), "--predictions",
                 f"sub-001:acoustic={tmp_path / 'predictions.parquet'}", "--retrieved", f"sub-001:acoustic={audio}",
                 "--samples", f"sub-001:acoustic:musicldm={generated}",
                 "--brain", f"sub-001:acoustic={brain.path}"]) == 0
    html = page.read_text()
    assert f"sub-001, test fold, acoustic (whole-mask): {RERANKED}</h2>" in html
    assert "<th>musicldm 1</th><th>musicldm-brain 1</th>" in html
    assert html.count("<audio") == 3 * 5 + 3 * 3  # original, 2 retrieved, 2 samples; then original, 2 re-ranked


def test_the_study_plans_brain_scores_where_an_option_asks_and_refuses_more_than_it_retrieves():
    import yaml

    from b2m.study import ConfigError, Study
    from conftest import REPO

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    assert not Study(config).brain_scored("acoustic")  # the demo: off
    config["reconstruction"]["generation"] = {"select": "brain"}
    assert not Study(config).brain_scored("acoustic")  # no generator: nothing to choose among
    config["reconstruction"]["rerank"] = 10
    assert Study(config).brain_scored("acoustic") and not Study(config).brain_scored("genre")
    config["reconstruction"]["rerank"] = 11
    with pytest.raises(ConfigError, match="reconstruction.rerank 11 re-ranks more tracks than retrieval keeps"):
        Study(config)
